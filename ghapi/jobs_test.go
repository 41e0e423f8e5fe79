package ghapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/ghapi/fakegithub"
)

func sortedJobIDs(evs []tarty.JobEvent) []int64 {
	ids := make([]int64, len(evs))
	for i, e := range evs {
		ids[i] = e.JobID
	}
	slices.Sort(ids)
	return ids
}

func TestQueuedJobsAcrossOrgRepos(t *testing.T) {
	clk := newClockInHour()
	s := newFake(t, fakegithub.Config{Now: clk.Now})
	now := clk.Now()
	ourLabels := []string{"self-hosted", "macOS", "tarty"}

	// app: a queued run with two queued jobs.
	r1 := s.AddRun("app", "queued", now.Add(-10*time.Minute),
		fakegithub.JobSpec{Labels: ourLabels}, fakegithub.JobSpec{Labels: []string{"ubuntu-latest"}})
	// lib: a run in progress with one job done, one running, one still queued.
	r2 := s.AddRun("lib", "in_progress", now.Add(-30*time.Minute),
		fakegithub.JobSpec{Labels: ourLabels, Status: "completed"},
		fakegithub.JobSpec{Labels: ourLabels, Status: "in_progress"},
		fakegithub.JobSpec{Labels: ourLabels})
	// A job queued for more than 24 h is still reported, with its created_at:
	// the scheduler decides what is stale (a job approved after a long wait
	// is queued with an old created_at).
	r3 := s.AddRun("app", "queued", now.Add(-24*time.Hour-time.Second), fakegithub.JobSpec{Labels: ourLabels})
	// Not demand: a completed run, a waiting job, and a queued run in an archived repo.
	s.AddRun("app", "completed", now.Add(-time.Hour), fakegithub.JobSpec{Labels: ourLabels, Status: "completed"})
	s.AddRun("lib", "queued", now.Add(-time.Minute), fakegithub.JobSpec{Labels: ourLabels, Status: "waiting"})
	s.AddRun("old", "queued", now.Add(-time.Minute), fakegithub.JobSpec{Labels: ourLabels})
	if err := s.SetArchived("old", true); err != nil {
		t.Fatal(err)
	}
	s.AddRepo("quiet")

	rec := &recorder{next: http.DefaultTransport}
	c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now; o.Transport = rec })
	ctx := context.Background()

	resevs, err := c.QueuedJobs(ctx)
	evs := resevs.Jobs
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{r1.JobIDs[0], r1.JobIDs[1], r2.JobIDs[2], r3.JobIDs[0]}
	slices.Sort(want)
	if got := sortedJobIDs(evs); !slices.Equal(got, want) {
		t.Fatalf("queued jobs = %v, want %v", got, want)
	}
	for _, e := range evs {
		j, _ := s.Job(e.JobID)
		wantEv := tarty.JobEvent{
			Source: tarty.SourcePoller, Action: tarty.ActionQueued,
			JobID: j.ID, RunID: j.RunID, RunAttempt: 1, Status: "queued", Labels: j.Labels,
			Repository: j.Repo, Organization: "acme", CreatedAt: j.CreatedAt,
		}
		if !e.CreatedAt.Equal(wantEv.CreatedAt) || !slices.Equal(e.Labels, wantEv.Labels) {
			t.Errorf("event %+v, want %+v", e, wantEv)
		}
		e.CreatedAt, e.Labels, wantEv.CreatedAt, wantEv.Labels = time.Time{}, nil, time.Time{}, nil
		if !equalEvent(e, wantEv) {
			t.Errorf("event %+v, want %+v", e, wantEv)
		}
	}

	// The created filter in the URL is 30 days back (re-runs keep created_at),
	// as a date so that the URL stays the same all day.
	wantCreated := ">=" + now.Add(-30*24*time.Hour).UTC().Format("2006-01-02")
	for _, u := range rec.URLs() {
		if !strings.Contains(u, "/actions/runs?") {
			continue
		}
		pu, _ := url.Parse(strings.TrimPrefix(u, "GET "))
		if got := pu.Query().Get("created"); got != wantCreated {
			t.Errorf("created = %q, want %q (%s)", got, wantCreated, u)
		}
	}

	// A second poll within ten minutes: no repository relisting, and every
	// page unchanged, so it costs no rate-limit unit.
	before := s.RateRemaining()
	clk.Advance(5 * time.Minute)
	resevs2, err := c.QueuedJobs(ctx)
	evs2 := resevs2.Jobs
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sortedJobIDs(evs2), want) {
		t.Errorf("second poll = %v, want %v", sortedJobIDs(evs2), want)
	}
	if n := s.Calls("GET", "/orgs/acme/repos"); n != 1 {
		t.Errorf("repository list fetched %d times, want 1 (cached)", n)
	}
	if after := s.RateRemaining(); after != before {
		t.Errorf("second poll cost %d rate-limit units, want 0", before-after)
	}
	if c.RateLimitRemaining() != before {
		t.Errorf("client saw remaining %d, want %d", c.RateLimitRemaining(), before)
	}
	if _, _, hits := c.cache.stats(); hits == 0 {
		t.Error("no 304 served from the ETag cache")
	}

	// A change shows through the cache: the queued job of lib starts.
	if err := s.SetJobStatus(r2.JobIDs[2], "in_progress", "tarty-mac-1"); err != nil {
		t.Fatal(err)
	}
	resevs3, err := c.QueuedJobs(ctx)
	evs3 := resevs3.Jobs
	if err != nil {
		t.Fatal(err)
	}
	want3 := []int64{r1.JobIDs[0], r1.JobIDs[1], r3.JobIDs[0]}
	slices.Sort(want3)
	if got := sortedJobIDs(evs3); !slices.Equal(got, want3) {
		t.Errorf("after a job started: %v, want %v", got, want3)
	}

	// After ten minutes the repositories are listed again.
	clk.Advance(6 * time.Minute)
	if _, err := c.QueuedJobs(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.Calls("GET", "/orgs/acme/repos"); n != 2 {
		t.Errorf("repository list fetched %d times after 11 min, want 2", n)
	}
}

func equalEvent(a, b tarty.JobEvent) bool {
	return a.Source == b.Source && a.Action == b.Action && a.JobID == b.JobID && a.RunID == b.RunID &&
		a.RunAttempt == b.RunAttempt && a.Repository == b.Repository && a.Organization == b.Organization &&
		a.RunnerName == b.RunnerName && a.DeliveryID == b.DeliveryID
}

func TestQueuedJobsRepositoryScopeAndPaging(t *testing.T) {
	clk := newClock()
	s := newFake(t, fakegithub.Config{Now: clk.Now})
	s.AddRepo("other")
	specs := make([]fakegithub.JobSpec, 150)
	for i := range specs {
		specs[i] = fakegithub.JobSpec{Labels: []string{"tarty"}}
	}
	run := s.AddRun("app", "queued", clk.Now().Add(-time.Minute), specs...)
	for i := 0; i < 120; i++ {
		s.AddRun("app", "in_progress", clk.Now().Add(-time.Duration(i+2)*time.Minute), fakegithub.JobSpec{Labels: []string{"tarty"}})
	}
	s.AddRun("other", "queued", clk.Now(), fakegithub.JobSpec{Labels: []string{"tarty"}})

	c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now; o.Repository = "acme/app" })
	resevs, err := c.QueuedJobs(context.Background())
	evs := resevs.Jobs
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 150+120 {
		t.Fatalf("got %d jobs, want 270", len(evs))
	}
	for _, e := range evs {
		if e.Repository != "acme/app" {
			t.Fatalf("job from %s", e.Repository)
		}
	}
	if n := s.CallsMatching("GET", "/orgs/*/repos"); n != 0 {
		t.Errorf("listed organisation repositories %d times with a repository configured", n)
	}
	if n := s.Calls("GET", "/repos/acme/app/actions/runs/"+itoa(run.ID)+"/jobs"); n != 2 {
		t.Errorf("job pages of the big run = %d, want 2", n)
	}
	// 1 page of queued runs, 2 pages of in-progress runs, 1 each of waiting,
	// requested and pending runs.
	if n := s.Calls("GET", "/repos/acme/app/actions/runs"); n != 6 {
		t.Errorf("run pages = %d, want 6", n)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestQueuedJobsFailureIsPerRepository(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	s.AddRun("app", "queued", time.Time{}, fakegithub.JobSpec{Labels: []string{"tarty"}})
	s.AddRun("lib", "queued", time.Time{}, fakegithub.JobSpec{Labels: []string{"tarty"}})
	s.Inject(fakegithub.Fault{Method: "GET", Path: "/repos/acme/lib/actions/runs/*/jobs", Kind: fakegithub.ServerError, Status: 503})
	c := newTestClient(t, s, nil)
	res, err := c.QueuedJobs(context.Background())
	if err != nil || len(res.Jobs) != 1 || !slices.Equal(res.Complete, []string{"acme/app"}) {
		t.Fatalf("QueuedJobs = %+v, %v; want app's job, app complete, lib failed", res, err)
	}
	err = res.Failed["acme/lib"]
	var tmp interface{ Temporary() bool }
	if !errors.As(err, &tmp) || !tmp.Temporary() {
		t.Errorf("err %v is not temporary", err)
	}
	if !strings.Contains(err.Error(), "503 Service Unavailable") || !strings.Contains(err.Error(), "in acme/lib") {
		t.Errorf("err = %v", err)
	}
	// The fault was one-shot: the next poll works.
	if res, err := c.QueuedJobs(context.Background()); err != nil || len(res.Jobs) != 2 || len(res.Failed) != 0 {
		t.Fatalf("retry: %+v, %v", res, err)
	}
}

func TestQueuedJobsVanishedAndForbiddenRepositories(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	r := s.AddRun("app", "queued", time.Time{}, fakegithub.JobSpec{Labels: []string{"tarty"}})
	s.AddRepo("gone")
	c := newTestClient(t, s, nil)
	ctx := context.Background()
	if _, err := c.QueuedJobs(ctx); err != nil {
		t.Fatal(err)
	}

	// A repository deleted since it was listed (404) is skipped, and the
	// repository list is refreshed on the next poll.
	s.RemoveRepo("gone")
	resevs, err := c.QueuedJobs(ctx)
	evs := resevs.Jobs
	if err != nil || len(evs) != 1 || evs[0].JobID != r.JobIDs[0] {
		t.Fatalf("QueuedJobs = %+v, %v", evs, err)
	}
	if _, err := c.QueuedJobs(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.Calls("GET", "/orgs/acme/repos"); n != 2 {
		t.Errorf("repository list fetched %d times, want 2", n)
	}

	// A 403 is not "gone": the repository is reported as failed, so its
	// demand is kept rather than lost.
	s.Inject(fakegithub.Fault{Method: "GET", Path: "/repos/acme/app/actions/runs", Kind: fakegithub.Forbidden})
	if res, err := c.QueuedJobs(ctx); err != nil || res.Jobs != nil || statusOf(res.Failed["acme/app"]) != http.StatusForbidden {
		t.Fatalf("QueuedJobs = %+v, %v; want acme/app failed with 403", res, err)
	}
}

func TestQueuedJobsConfiguredRepositoryMissing(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	c := newTestClient(t, s, func(o *Options) { o.Repository = "nope" })
	res, err := c.QueuedJobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Failed["acme/nope"]; statusOf(err) != http.StatusNotFound {
		t.Fatalf("err = %v, want a 404", err)
	}
}

// The client is shared by the poller and the VM workers.
func TestConcurrentUse(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	for i := 0; i < 4; i++ {
		s.AddRun(fmt.Sprintf("repo%d", i), "queued", time.Time{}, fakegithub.JobSpec{Labels: []string{"tarty"}})
	}
	c := newTestClient(t, s, nil)
	ctx := context.Background()
	errs := make(chan error, 40)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, _, err := c.JITConfig(ctx, fmt.Sprintf("tarty-c-%d", i))
			errs <- err
			_, err = c.QueuedJobs(ctx)
			errs <- err
			_, err = c.ListRunners(ctx, "tarty-c-")
			errs <- err
			errs <- c.RemoveRunner(ctx, id)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(s.Runners()); n != 0 {
		t.Errorf("%d runners left", n)
	}
	if n := s.Calls("GET", "/orgs/acme/repos"); n < 1 || n > 10 {
		t.Errorf("repository lists = %d", n)
	}
}

// BenchmarkQueuedJobsWarm measures a poll of 10 repositories × 2 runs whose
// pages are all unchanged (every request a 304 served from the ETag cache).
func BenchmarkQueuedJobsWarm(b *testing.B) {
	s := fakegithub.New(fakegithub.Config{RateLimit: 1 << 30})
	defer s.Close()
	for i := 0; i < 10; i++ {
		for j := 0; j < 2; j++ {
			s.AddRun(fmt.Sprintf("repo%d", i), "queued", time.Time{}, fakegithub.JobSpec{Labels: []string{"tarty"}}, fakegithub.JobSpec{Labels: []string{"tarty"}})
		}
	}
	c, err := New(Options{BaseURL: s.EnterpriseURL(), Token: s.Token(), Organization: s.Organization()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.QueuedJobs(ctx); err != nil {
		b.Fatal(err)
	}
	before := s.RateRemaining()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resevs, err := c.QueuedJobs(ctx)
		evs := resevs.Jobs
		if err != nil || len(evs) != 40 {
			b.Fatalf("%d jobs, %v", len(evs), err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(before-s.RateRemaining())/float64(b.N), "ratelimit-units/op")
}
