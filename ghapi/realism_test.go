package ghapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/ghapi/fakegithub"
)

// Tests for what issue 11 found wrong against GitHub's real behaviour. Each
// fails on the client as it was before.

var ours = []string{"self-hosted", "macOS", "tarty"}

func poll(t *testing.T, c *Client) tarty.PollResult {
	t.Helper()
	res, err := c.QueuedJobs(context.Background())
	if err != nil {
		t.Fatalf("QueuedJobs: %v", err)
	}
	for repo, err := range res.Failed {
		t.Errorf("%s failed: %v", repo, err)
	}
	return res
}

func jobIDs(res tarty.PollResult) []int64 { return sortedJobIDs(res.Jobs) }

// A re-run of a run created days ago keeps its created_at: the poll must
// still find its new, queued jobs.
func TestPollFindsRerunOfOldRun(t *testing.T) {
	for _, large := range []bool{false, true} {
		name := "small scope"
		if large {
			name = "large scope (probe and rescan)"
		}
		t.Run(name, func(t *testing.T) {
			clk := newClockInHour()
			s := newFake(t, fakegithub.Config{Now: clk.Now})
			created := clk.Now().Add(-3 * 24 * time.Hour)
			run := s.AddRun("app", "", created, fakegithub.JobSpec{Labels: ours, Status: "completed"},
				fakegithub.JobSpec{Labels: []string{"ubuntu-latest"}, Status: "completed"})
			c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now })
			if large {
				c.tune.smallScope = 0
			}
			if res := poll(t, c); len(res.Jobs) != 0 {
				t.Fatalf("jobs before the re-run: %+v", res.Jobs)
			}

			clk.Advance(time.Minute)
			rr, err := s.Rerun(run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if rr.RunAttempt != 2 || !rr.CreatedAt.Equal(created) || !rr.RunStartedAt.Equal(clk.Now().UTC().Truncate(time.Second)) || rr.Status != "queued" {
				t.Fatalf("re-run = %+v", rr)
			}
			newJobs := rr.JobIDs[2:]
			rerunAt := clk.Now().UTC().Truncate(time.Second)
			if large {
				// The probe sees nothing new (the newest run is the same one);
				// the rescan of a quiet repository with a recent run finds it.
				clk.Advance(c.tune.rescanEvery)
			}
			res := poll(t, c)
			want := slices.Clone(newJobs)
			slices.Sort(want)
			if got := jobIDs(res); !slices.Equal(got, want) {
				t.Fatalf("jobs after the re-run = %v, want %v (the new attempt's)", got, want)
			}
			for _, e := range res.Jobs {
				if e.RunID != run.ID || e.RunAttempt != 2 || e.Status != "queued" || e.Source != tarty.SourcePoller ||
					!e.CreatedAt.Equal(rerunAt) || !e.StartedAt.IsZero() {
					t.Errorf("event %+v", e)
				}
			}
			if !slices.Contains(res.Complete, "acme/app") {
				t.Errorf("complete = %v", res.Complete)
			}
		})
	}
}

// A run waits for an approval of one job while another is queued: its status
// is waiting. Runs requested or pending are looked at too.
func TestPollFindsQueuedJobsInEveryRunStatus(t *testing.T) {
	clk := newClockInHour()
	s := newFake(t, fakegithub.Config{Now: clk.Now})
	now := clk.Now()
	waiting := s.AddRun("app", "", now.Add(-time.Hour),
		fakegithub.JobSpec{Name: "deploy", Labels: ours, Status: "waiting"},
		fakegithub.JobSpec{Name: "build", Labels: ours})
	if r, _ := s.Run(waiting.ID); r.Status != "waiting" {
		t.Fatalf("the fake derived run status %q, want waiting", r.Status)
	}
	requested := s.AddRun("app", "requested", now.Add(-2*time.Minute), fakegithub.JobSpec{Labels: ours})
	pending := s.AddRun("lib", "pending", now.Add(-3*time.Minute), fakegithub.JobSpec{Labels: ours})
	c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now })

	res := poll(t, c)
	want := []int64{waiting.JobIDs[1], requested.JobIDs[0], pending.JobIDs[0]}
	slices.Sort(want)
	if got := jobIDs(res); !slices.Equal(got, want) {
		t.Fatalf("jobs = %v, want %v (the waiting job is not demand)", got, want)
	}
}

// The fake derives run statuses from jobs as GitHub does.
func TestFakeRunStatusFollowsJobs(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	r := s.AddRun("app", "", time.Time{}, fakegithub.JobSpec{Status: "pending"}, fakegithub.JobSpec{Status: "pending"})
	steps := []struct {
		job    int
		status string
		want   string
	}{
		{-1, "", "pending"},
		{0, "queued", "queued"},
		{1, "waiting", "waiting"},
		{0, "in_progress", "in_progress"},
		{0, "completed", "waiting"},
		{1, "queued", "in_progress"},
		{1, "completed", "completed"},
	}
	for _, st := range steps {
		if st.job >= 0 {
			if err := s.SetJobStatus(r.JobIDs[st.job], st.status, ""); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := s.Run(r.ID); got.Status != st.want {
			t.Errorf("after job %d %s: run %s, want %s", st.job, st.status, got.Status, st.want)
		}
	}
	r2 := s.AddRun("app", "", time.Time{}, fakegithub.JobSpec{Status: "requested"})
	if got, _ := s.Run(r2.ID); got.Status != "requested" {
		t.Errorf("all jobs requested: run %s", got.Status)
	}
}

// The runner group decides which repositories are demand: public ones only
// when it allows them, selected ones only when it is limited to them.
func TestPollAndServesFollowRunnerGroupAccess(t *testing.T) {
	clk := newClockInHour()
	s := newFake(t, fakegithub.Config{Now: clk.Now})
	macs := s.AddRunnerGroupWith(fakegithub.RunnerGroup{Name: "macs"})
	priv := s.AddRun("priv", "", time.Time{}, fakegithub.JobSpec{Labels: ours})
	s.AddPublicRepo("pub")
	pub := s.AddRun("pub", "", time.Time{}, fakegithub.JobSpec{Labels: ours})
	intern := s.AddRun("intern", "", time.Time{}, fakegithub.JobSpec{Labels: ours})
	if err := s.SetVisibility("intern", "internal"); err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now; o.RunnerGroup = "macs" })

	// Unknown before the first poll: served.
	for _, r := range []string{"acme/pub", "acme/priv"} {
		if !c.Serves(r) {
			t.Errorf("Serves(%s) before any poll = false, want true (unknown)", r)
		}
	}

	steps := []struct {
		name         string
		visibility   string
		allowsPublic bool
		selected     []string
		want         []int64
		served       map[string]bool
	}{
		{"default: no public repositories", "all", false, nil, []int64{priv.JobIDs[0], intern.JobIDs[0]},
			map[string]bool{"acme/priv": true, "ACME/Pub": false, "acme/intern": true, "acme/brand-new": true}},
		{"public allowed", "all", true, nil, []int64{priv.JobIDs[0], pub.JobIDs[0], intern.JobIDs[0]},
			map[string]bool{"acme/pub": true, "acme/priv": true}},
		{"selected", "selected", true, []string{"priv", "pub"}, []int64{priv.JobIDs[0], pub.JobIDs[0]},
			map[string]bool{"acme/pub": true, "acme/intern": false, "acme/brand-new": false}},
		{"selected, public not allowed", "selected", false, []string{"priv", "pub"}, []int64{priv.JobIDs[0]},
			map[string]bool{"acme/pub": false, "acme/priv": true}},
		{"private repositories only", "private", true, nil, []int64{priv.JobIDs[0], intern.JobIDs[0]},
			map[string]bool{"acme/pub": false, "acme/intern": true}},
	}
	for i, st := range steps {
		if err := s.SetRunnerGroupAccess(macs, st.visibility, st.allowsPublic, st.selected...); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			clk.Advance(11 * time.Minute) // past the group cache
		}
		s.ResetCalls()
		res := poll(t, c)
		want := slices.Clone(st.want)
		slices.Sort(want)
		if got := jobIDs(res); !slices.Equal(got, want) {
			t.Errorf("%s: jobs = %v, want %v", st.name, got, want)
		}
		for _, repo := range []string{"acme/priv", "acme/pub", "acme/intern"} {
			if !slices.Contains(res.Complete, repo) {
				t.Errorf("%s: %s not complete (%v)", st.name, repo, res.Complete)
			}
			short := strings.TrimPrefix(repo, "acme/")
			served := slices.ContainsFunc(st.want, func(id int64) bool { j, _ := s.Job(id); return j.Repo == repo })
			if n := s.Calls("GET", "/repos/acme/"+short+"/actions/runs"); served != (n > 0) {
				t.Errorf("%s: %d requests for %s (served: %v)", st.name, n, repo, served)
			}
		}
		if wantSel := st.visibility == "selected"; wantSel != (s.CallsMatching("GET", "/orgs/acme/actions/runner-groups/*/repositories") > 0) {
			t.Errorf("%s: selected repositories read: %v", st.name, s.CallLog())
		}
		before := s.CallsMatching("", "")
		for repo, want := range st.served {
			if got := c.Serves(repo); got != want {
				t.Errorf("%s: Serves(%s) = %v, want %v", st.name, repo, got, want)
			}
		}
		if s.CallsMatching("", "") != before {
			t.Errorf("Serves made a request")
		}
	}
}

// With github.repository set there is no group: Serves is about that repository.
func TestServesRepositoryScope(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	s.AddPublicRepo("app")
	c := newTestClient(t, s, func(o *Options) { o.Repository = "app" })
	if !c.Serves("acme/app") || !c.Serves("Acme/App") || c.Serves("acme/other") {
		t.Error("Serves in repository scope")
	}
}

// Large organisations: repositories take turns, and a poll's cost is bounded.
func TestPollBudgetProbesAndCompleteness(t *testing.T) {
	clk := newClockInHour()
	s := newFake(t, fakegithub.Config{Now: clk.Now})
	now := clk.Now()
	for _, r := range []string{"d1", "d2", "d3", "d4"} {
		s.AddRepo(r) // no runs: dormant
	}
	s.AddRun("old", "", now.Add(-40*24*time.Hour), fakegithub.JobSpec{Labels: ours, Status: "completed"})
	quiet := s.AddRun("quiet", "", now.Add(-3*24*time.Hour), fakegithub.JobSpec{Labels: ours, Status: "completed"})
	busy := s.AddRun("busy", "", now.Add(-time.Hour), fakegithub.JobSpec{Labels: ours})
	c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now })
	c.tune = pollTuning{probesPerPoll: 2, rescansPerPoll: 1, rescanEvery: 30 * time.Minute, smallScope: 0, workers: 2}

	// Cold: every repository is probed once; the one with a fresh run is read.
	res := poll(t, c)
	if got := jobIDs(res); !slices.Equal(got, busy.JobIDs) {
		t.Fatalf("cold poll jobs = %v", got)
	}
	if slices.Contains(res.Complete, "acme/quiet") {
		t.Error("quiet (a run 3 days old, re-runnable) complete without a reading")
	}
	for _, r := range []string{"acme/d1", "acme/old", "acme/busy"} {
		if !slices.Contains(res.Complete, r) {
			t.Errorf("%s not complete: %v", r, res.Complete)
		}
	}

	// Warm: the live repository is read, two others probed, one rescan.
	clk.Advance(time.Minute)
	s.ResetCalls()
	res = poll(t, c)
	probes := s.CallsMatching("GET", "/repos/acme/*/actions/runs") - 5*2 // busy and the rescan read 5 statuses
	if probes != 2 {
		t.Errorf("probes = %d, want 2 (%v)", probes, s.CallLog())
	}
	if !slices.Contains(res.Complete, "acme/quiet") {
		t.Errorf("the rescan did not read quiet: %v", res.Complete)
	}

	// A new run in a dormant repository (its webhook missed) is found within
	// ceil(6 background repositories / 2 probes) polls.
	fresh := s.AddRun("d4", "", clk.Now(), fakegithub.JobSpec{Labels: ours})
	found := false
	for i := 0; i < 3 && !found; i++ {
		clk.Advance(time.Minute)
		found = slices.Contains(jobIDs(poll(t, c)), fresh.JobIDs[0])
	}
	if !found {
		t.Error("a new run in a dormant repository was not found within 3 polls")
	}

	// The busy job starts and ends: busy stops being read every poll.
	if err := s.SetJobStatus(busy.JobIDs[0], "completed", "tarty-x"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetJobStatus(fresh.JobIDs[0], "completed", "tarty-y"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		clk.Advance(time.Minute)
		poll(t, c)
	}
	s.ResetCalls()
	clk.Advance(time.Minute)
	poll(t, c)
	if n := s.CallsMatching("GET", "/repos/acme/*/actions/runs"); n > 2+5 {
		t.Errorf("an idle organisation cost %d run lists in a poll, want at most 2 probes and one rescan (%v)", n, s.CallLog())
	}
	_ = quiet
}

// A rate limit in the middle of a poll stops it: the repositories not read
// yet fail with the same error, and no more requests are made.
func TestPollStopsAtSecondaryLimit(t *testing.T) {
	clk := newClockInHour()
	s := newFake(t, fakegithub.Config{Now: clk.Now})
	for _, r := range []string{"a1", "a2", "a3", "a4"} {
		s.AddRun(r, "", time.Time{}, fakegithub.JobSpec{Labels: ours})
	}
	c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now })
	c.tune.workers = 1
	s.Inject(fakegithub.Fault{Method: "GET", Path: "/repos/acme/a2/actions/runs", Kind: fakegithub.TooManyRequests, RetryAfter: 40 * time.Second})
	res, err := c.QueuedJobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Complete, []string{"acme/a1"}) || len(res.Failed) != 3 {
		t.Fatalf("complete %v, failed %v", res.Complete, res.Failed)
	}
	for _, r := range []string{"acme/a2", "acme/a3", "acme/a4"} {
		if d, ok := tarty.RetryAfter(res.Failed[r]); !ok || d != 40*time.Second {
			t.Errorf("%s: %v (wait %v)", r, res.Failed[r], d)
		}
	}
	if n := s.Calls("GET", "/repos/acme/a3/actions/runs") + s.Calls("GET", "/repos/acme/a4/actions/runs"); n != 0 {
		t.Errorf("%d requests after the limit", n)
	}
	// The whole next poll waits too; after the wait it works.
	if _, err := c.QueuedJobs(context.Background()); err == nil {
		t.Error("a poll during the wait was sent")
	} else if d, _ := tarty.RetryAfter(err); d != 40*time.Second {
		t.Errorf("wait %v", d)
	}
	clk.Advance(41 * time.Second)
	if res := poll(t, c); len(res.Jobs) != 4 {
		t.Errorf("after the wait: %d jobs", len(res.Jobs))
	}
}

// A secondary limit recognised by this package (429, or 403 without the
// documentation URL) holds back every call until its wait is over.
func TestSecondaryLimitHoldsBackCalls(t *testing.T) {
	for _, f := range []fakegithub.Fault{
		{Kind: fakegithub.TooManyRequests, RetryAfter: 30 * time.Second},
		{Kind: fakegithub.SecondaryRateLimit, NoDocURL: true, RetryAfter: 30 * time.Second},
		{Kind: fakegithub.SecondaryRateLimit, Status: 429, NoDocURL: true, RetryAfter: 30 * time.Second},
	} {
		clk := newClock()
		s := newFake(t, fakegithub.Config{Now: clk.Now})
		s.Inject(f)
		c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now })
		ctx := context.Background()
		if _, err := c.ListRunners(ctx, ""); err == nil {
			t.Fatal("no error")
		}
		calls := s.CallsMatching("", "")
		clk.Advance(10 * time.Second)
		_, _, err := c.JITConfig(ctx, "tarty-1")
		var rle *RateLimitError
		if !errors.As(err, &rle) || !rle.Secondary || rle.RetryAfter() != 20*time.Second || !strings.Contains(err.Error(), "not sent") {
			t.Fatalf("%+v: during the wait: %v", f, err)
		}
		if s.CallsMatching("", "") != calls {
			t.Errorf("%+v: a request left during the wait", f)
		}
		clk.Advance(20 * time.Second)
		if _, err := c.ListRunners(ctx, ""); err != nil {
			t.Errorf("after the wait: %v", err)
		}
	}
}

// timedRecorder notes the clock at each write that reaches the transport.
type timedRecorder struct {
	next http.RoundTripper
	now  func() time.Time
	mu   sync.Mutex
	at   []time.Time
}

func (r *timedRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost || req.Method == http.MethodDelete {
		r.mu.Lock()
		r.at = append(r.at, r.now())
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

// Writes (JIT registrations, removals) go one at a time, a second apart.
func TestWritesAreSpaced(t *testing.T) {
	clk := newClock()
	s := newFake(t, fakegithub.Config{Now: clk.Now})
	rec := &timedRecorder{next: http.DefaultTransport, now: clk.Now}
	c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now; o.Sleep = clk.Sleep; o.Transport = rec })
	ctx := context.Background()
	var wg sync.WaitGroup
	ids := make(chan int64, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, _, err := c.JITConfig(ctx, "tarty-w-"+string(rune('a'+i)))
			if err != nil {
				t.Error(err)
			}
			ids <- id
		}()
	}
	wg.Wait()
	close(ids)
	for id := range ids {
		if err := c.RemoveRunner(ctx, id); err != nil {
			t.Error(err)
		}
	}
	// Reads are not gated.
	if _, err := c.ListRunners(ctx, ""); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.at) != 12 {
		t.Fatalf("%d writes", len(rec.at))
	}
	for i := 1; i < len(rec.at); i++ {
		if gap := rec.at[i].Sub(rec.at[i-1]); gap < time.Second {
			t.Errorf("write %d came %v after the previous one", i, gap)
		}
	}
	if n := len(clk.Slept()); n != 11 {
		t.Errorf("slept %d times, want 11", n)
	}

	// A writer waiting for its turn gives up with its context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := c.JITConfig(cctx, "tarty-w-late"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled writer: %v", err)
	}
}

// JIT refusals are typed by what GitHub means, with a fix for the operator.
func TestJITErrorsSayWhatGitHubMeans(t *testing.T) {
	type check struct {
		is        error
		permanent bool
		status    int
		fix       []string // in the fix and the error
		msg       []string // in the error
	}
	tests := []struct {
		name  string
		cfg   fakegithub.Config
		repo  string
		group string
		setup func(s *fakegithub.Server)
		want  check
	}{
		{"name taken", fakegithub.Config{}, "", "", func(s *fakegithub.Server) { s.AddRunner("", "tarty-x-1") },
			check{ErrRunnerNameTaken, false, 409, nil, nil}},
		{"Actions disabled for the organization", fakegithub.Config{}, "", "", func(s *fakegithub.Server) { s.SetActionsEnabled("", false) },
			check{ErrActionsDisabled, true, 409, []string{"enable GitHub Actions for organization acme"}, nil}},
		{"Actions disabled for the repository", fakegithub.Config{}, "app", "", func(s *fakegithub.Server) { s.SetActionsEnabled("app", false) },
			check{ErrActionsDisabled, true, 409, []string{"enable GitHub Actions for repository acme/app"}, nil}},
		{"repository runners disabled by policy", fakegithub.Config{}, "app", "", func(s *fakegithub.Server) { s.SetRepositoryRunnersDisabled(true) },
			check{ErrRepositoryRunnersDisabled, true, 403, []string{"policy forbids repository-level self-hosted runners", "unset github.repository"}, nil}},
		{"group of hosted runners", fakegithub.Config{}, "", "larger", func(s *fakegithub.Server) {
			s.AddRunnerGroupWith(fakegithub.RunnerGroup{Name: "larger", Hosted: true})
		}, check{ErrRunnerGroup, true, 403, []string{`runner group "larger"`, "github.runner_group"}, nil}},
		{"group missing", fakegithub.Config{}, "", "macs", nil,
			check{ErrRunnerGroup, true, 0, []string{"github.runner_group"}, []string{"no such runner group (it has: Default)"}}},
		{"GHES too old", fakegithub.Config{EnterpriseVersion: "3.9.4"}, "", "", nil,
			check{ErrJITUnsupported, true, 404, []string{"GitHub Enterprise Server 3.9.4", "3.10 or later"}, nil}},
		{"no permission", fakegithub.Config{}, "app", "", func(s *fakegithub.Server) {
			s.Inject(fakegithub.Fault{Method: "POST", Kind: fakegithub.Forbidden})
		}, check{nil, true, 403, []string{`"Administration: read and write"`}, nil}},
		{"bad token", fakegithub.Config{}, "", "", nil, check{nil, true, 401, []string{"credentials were rejected"}, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, tt.cfg)
			s.AddRepo("app")
			if tt.setup != nil {
				tt.setup(s)
			}
			c := newTestClient(t, s, func(o *Options) {
				o.Repository, o.RunnerGroup = tt.repo, tt.group
				if tt.name == "bad token" {
					o.Token = "ghp_nope"
				}
			})
			_, enc, err := c.JITConfig(context.Background(), "tarty-x-1")
			if err == nil || enc != "" {
				t.Fatalf("JITConfig succeeded")
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err %T %v", err, err)
			}
			if tt.want.is != nil && !errors.Is(err, tt.want.is) {
				t.Errorf("err %v is not %v", err, tt.want.is)
			}
			for _, other := range []error{ErrRunnerNameTaken, ErrActionsDisabled, ErrRepositoryRunnersDisabled, ErrRunnerGroup, ErrJITUnsupported} {
				if other != tt.want.is && errors.Is(err, other) {
					t.Errorf("err %v is also %v", err, other)
				}
			}
			if ae.StatusCode != tt.want.status || ae.Permanent() != tt.want.permanent {
				t.Errorf("status %d permanent %v", ae.StatusCode, ae.Permanent())
			}
			fix, ok := tarty.HostFix(err)
			if ok != tt.want.permanent {
				t.Errorf("HostFix = %q, %v", fix, ok)
			}
			for _, f := range tt.want.fix {
				if !strings.Contains(fix, f) || !strings.Contains(err.Error(), f) {
					t.Errorf("fix %q / error %q lacks %q", fix, err, f)
				}
			}
			for _, m := range tt.want.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q lacks %q", err, m)
				}
			}
			if strings.Contains(err.Error(), s.Token()) {
				t.Error("token in error")
			}
		})
	}
	// A GHES new enough registers.
	s := newFake(t, fakegithub.Config{EnterpriseVersion: "3.10.0"})
	if _, _, err := newTestClient(t, s, nil).JITConfig(context.Background(), "tarty-x-1"); err != nil {
		t.Errorf("GHES 3.10: %v", err)
	}
}

// A group deleted after it was resolved: the 404 makes the next
// registration resolve the name again.
func TestJITGroupDeletedIsResolvedAgain(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	c := newTestClient(t, s, nil)
	ctx := context.Background()
	if _, _, err := c.JITConfig(ctx, "tarty-g-1"); err != nil {
		t.Fatal(err)
	}
	s.Inject(fakegithub.Fault{Method: "POST", Path: "/orgs/acme/actions/runners/generate-jitconfig", Kind: fakegithub.NotFound})
	_, _, err := c.JITConfig(ctx, "tarty-g-2")
	if !errors.Is(err, ErrRunnerGroup) {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := c.JITConfig(ctx, "tarty-g-3"); err != nil {
		t.Fatal(err)
	}
	if n := s.Calls("GET", "/orgs/acme/actions/runner-groups"); n != 2 {
		t.Errorf("group resolved %d times, want 2", n)
	}
}
