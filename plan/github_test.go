package plan

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/ghapi/fakegithub"
)

type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.slept = append(c.slept, d)
	return nil
}

// history is a fake organisation with a fortnight of finished jobs.
type history struct {
	s            *fakegithub.Server
	now, since   time.Time
	rerun        fakegithub.Run
	running      fakegithub.Run
	inWindowJobs int
}

// newHistory: acme/app has 130 finished runs in the window (two pages of
// runs), one of them re-run, and one run created before the window; acme/lib
// has three runs, one still running when read unless finished is set.
func newHistory(t *testing.T, finished bool) *history {
	t.Helper()
	h := &history{s: fakegithub.New(fakegithub.Config{})}
	t.Cleanup(h.s.Close)
	h.now = time.Now().UTC().Truncate(time.Second)
	h.since = h.now.Add(-14 * 24 * time.Hour)
	for i := 0; i < 130; i++ {
		at := h.now.Add(-time.Duration(i)*2*time.Hour - time.Hour)
		r := h.s.AddPastRun("app", at, fakegithub.PastJob{Labels: tartyLabels, Started: at.Add(30 * time.Second),
			Completed: at.Add(6 * time.Minute), RunnerName: fmt.Sprintf("tarty-mac1-%08x", i)})
		h.inWindowJobs++
		if i == 7 {
			again := at.Add(time.Hour)
			var err error
			h.rerun, err = h.s.AddPastAttempt(r.ID, again, fakegithub.PastJob{Labels: tartyLabels,
				Started: again.Add(20 * time.Second), Completed: again.Add(5 * time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			h.inWindowJobs++
		}
	}
	old := h.since.Add(-48 * time.Hour)
	h.s.AddPastRun("app", old, fakegithub.PastJob{Labels: tartyLabels, Started: old, Completed: old.Add(time.Minute)})
	for i := 0; i < 3; i++ {
		at := h.now.Add(-time.Duration(i+1) * 24 * time.Hour)
		jobs := []fakegithub.PastJob{
			{Labels: tartyLabels, Started: at.Add(time.Minute), Completed: at.Add(9 * time.Minute)},
			{Labels: []string{"ubuntu-latest"}, Started: at.Add(2 * time.Second), Completed: at.Add(4 * time.Minute)},
		}
		if i == 0 && !finished {
			jobs[0].Completed = time.Time{}
		}
		r := h.s.AddPastRun("lib", at, jobs...)
		if i == 0 {
			h.running = r
		}
		h.inWindowJobs += 2
	}
	return h
}

func (h *history) client(t *testing.T, meter *Meter, clk *fakeClock) *ghapi.Client {
	t.Helper()
	o := ghapi.Options{BaseURL: h.s.URL(), Token: h.s.Token(), Organization: h.s.Organization(), Labels: []string{"tarty"},
		Transport: meter}
	if clk != nil {
		o.Clock, o.Sleep = clk.Now, clk.Sleep
	}
	c, err := ghapi.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *history) read(t *testing.T, cache *Cache, mutate func(*ReadOptions)) ([]Job, ReadStats, *ghapi.Client, error) {
	t.Helper()
	meter := NewMeter(http.DefaultTransport)
	c := h.client(t, meter, nil)
	o := ReadOptions{Since: h.since, Until: h.now, Meter: meter, Cache: cache}
	if cache != nil {
		c.RestoreAnswers(cache.Answers())
	}
	if mutate != nil {
		mutate(&o)
	}
	before := h.s.RateRemaining()
	jobs, stats, err := ReadHistory(context.Background(), c, o)
	if spent := before - h.s.RateRemaining(); err == nil && spent != stats.Units {
		t.Errorf("the reading says it spent %d units, GitHub counted %d", stats.Units, spent)
	}
	return jobs, stats, c, err
}

func TestPlanReadHistoryPagesRerunsAndWindow(t *testing.T) {
	h := newHistory(t, false)
	jobs, stats, _, err := h.read(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != h.inWindowJobs {
		t.Fatalf("%d jobs, want %d", len(jobs), h.inWindowJobs)
	}
	if stats.Repositories != 2 || stats.Runs != 133 || stats.Pages != 3 || stats.RunsCached != 0 {
		t.Errorf("stats %+v", stats)
	}
	if !slices.IsSortedFunc(jobs, func(a, b Job) int { return a.CreatedAt.Compare(b.CreatedAt) }) {
		t.Error("jobs are not by created_at")
	}
	attempts := map[int]int{}
	for _, j := range jobs {
		if j.RunID == h.rerun.ID {
			attempts[j.RunAttempt]++
		}
		if j.CreatedAt.Before(h.since) {
			t.Errorf("job %d created before the window", j.ID)
		}
	}
	if !reflect.DeepEqual(attempts, map[int]int{1: 1, 2: 1}) {
		t.Errorf("jobs of the re-run run by attempt: %v, want one of each", attempts)
	}
	var running *Job
	for i, j := range jobs {
		if j.RunID == h.running.ID && slices.Contains(j.Labels, "tarty") {
			running = &jobs[i]
		}
	}
	if running == nil || !running.CompletedAt.IsZero() || running.Repository != "acme/lib" {
		t.Errorf("the running job: %+v", running)
	}
	j := jobs[len(jobs)-1]
	if j.RunnerName != "tarty-mac1-00000000" || j.StartedAt.Sub(j.CreatedAt) != 30*time.Second ||
		j.CompletedAt.Sub(j.StartedAt) != 330*time.Second || j.Conclusion != "success" {
		t.Errorf("newest job %+v", j)
	}
}

func TestPlanReadHistorySecondRunCostsNothing(t *testing.T) {
	h := newHistory(t, true)
	dir := t.TempDir()
	path := CachePath(dir, h.s.URL(), "acme")
	cache, err := OpenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	first, st1, c1, err := h.read(t, cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Repositories, the runner group, 3 pages of runs, 133 runs' jobs.
	if st1.Units < 136 {
		t.Errorf("a cold reading spent %d units", st1.Units)
	}
	keep := func(key string) bool { return !strings.Contains(key, "/jobs") }
	if err := cache.Save(c1.CachedAnswers(keep), h.since.Add(-30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}

	// Another process: the cache from disk, a new client.
	cache2, err := OpenCache(path)
	if err != nil || cache2.Note != "" || cache2.Runs() != 133 {
		t.Fatalf("reopened cache: %v %q %d runs", err, cache2.Note, cache2.Runs())
	}
	second, st2, _, err := h.read(t, cache2, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The estimate counts the second page of runs, which answers a free 304.
	if st2.Units != 0 || st2.RunsCached != 133 || st2.Estimate > 1 {
		t.Errorf("a warm reading: %+v, want no unit spent", st2)
	}
	if !reflect.DeepEqual(first, second) {
		t.Error("the cached reading differs")
	}

	// A re-run since: the run's new attempt is read (one unit for its jobs,
	// one for its page of runs, which changed), the rest still comes from
	// the cache.
	again := h.now.Add(-time.Minute)
	if _, err := h.s.AddPastAttempt(h.rerun.ID, again, fakegithub.PastJob{Labels: tartyLabels, Started: again,
		Completed: again.Add(30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	third, st3, _, err := h.read(t, cache2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(third) != len(first)+1 || st3.RunsCached != 132 || st3.Units != 2 {
		t.Errorf("after a re-run: %d jobs, %+v", len(third), st3)
	}
}

func TestPlanReadHistoryRefusesAboveTheBudget(t *testing.T) {
	h := newHistory(t, true)
	_, _, _, err := h.read(t, nil, func(o *ReadOptions) { o.Budget = 100 })
	var be *BudgetError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a BudgetError", err)
	}
	if be.Repositories != 2 || be.Pages != 1 || be.Runs != 133 || be.Estimate != be.Spent+134 || be.Budget != 100 {
		t.Errorf("refusal %+v", be)
	}
	for _, s := range []string{"would cost about", "133 runs whose jobs are not cached", "the bound is 100 (--budget)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q lacks %q", err, s)
		}
	}
	if n := h.s.CallsMatching("GET", "/repos/acme/*/actions/runs/*/jobs"); n != 0 {
		t.Errorf("%d jobs requests before refusing", n)
	}

	// A bound smaller than the repositories stops while listing them.
	_, _, _, err = h.read(t, nil, func(o *ReadOptions) { o.Budget = 3 })
	if !errors.As(err, &be) || be.Spent > 3 {
		t.Errorf("err = %v", err)
	}

	// Within the bound but beyond what GitHub allows this hour.
	h.s.SetRateRemaining(60)
	_, _, _, err = h.read(t, nil, nil)
	if !errors.As(err, &be) || be.Remaining < 50 || !strings.Contains(err.Error(), "GitHub allows") {
		t.Errorf("err = %v, want a refusal naming GitHub's budget", err)
	}
}

func TestPlanReadHistorySitsOutShortRateLimits(t *testing.T) {
	h := newHistory(t, true)
	// A 429 with budget left: a secondary limit, with Retry-After. (go-github
	// holds back requests after the 403 kind by the real clock, which a
	// fake one cannot advance.)
	h.s.Inject(fakegithub.Fault{Method: "GET", Path: "/repos/acme/lib/actions/runs/*/jobs", Kind: fakegithub.TooManyRequests,
		RetryAfter: 30 * time.Second})
	clk := &fakeClock{t: time.Now()}
	meter := NewMeter(http.DefaultTransport)
	c := h.client(t, meter, clk)
	jobs, _, err := ReadHistory(context.Background(), c, ReadOptions{Since: h.since, Until: h.now, Meter: meter,
		Workers: 1, Sleep: clk.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != h.inWindowJobs || len(clk.slept) != 1 || clk.slept[0] != 30*time.Second {
		t.Errorf("%d jobs; slept %d times, first %v", len(jobs), len(clk.slept), clk.slept[:min(len(clk.slept), 1)])
	}

	// An hour-long wait is not sat out.
	h.s.Inject(fakegithub.Fault{Method: "GET", Path: "/repos/acme/lib/actions/runs", Kind: fakegithub.PrimaryRateLimit,
		Reset: time.Now().Add(time.Hour)})
	_, _, err = ReadHistory(context.Background(), h.client(t, meter, nil), ReadOptions{Since: h.since, Until: h.now, Meter: meter})
	var rle *ghapi.RateLimitError
	if !errors.As(err, &rle) {
		t.Errorf("err = %v, want the rate limit", err)
	}
}

func TestPlanCacheFile(t *testing.T) {
	dir := t.TempDir()
	path := CachePath(filepath.Join(dir, "plan"), "https://api.github.com/", "Acme Corp")
	if filepath.Base(path) != "history-acme_corp-"+filepath.Base(path)[len("history-acme_corp-"):] || !strings.HasSuffix(path, ".gob.gz") {
		t.Errorf("path %s", path)
	}
	c, err := OpenCache(path)
	if err != nil || c.Runs() != 0 {
		t.Fatal(err)
	}
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.put(runKey("acme/app", 1, 1), old, []Job{{ID: 10}})
	c.put(runKey("acme/app", 2, 1), old.AddDate(0, 2, 0), []Job{{ID: 20}})
	if err := c.Save(nil, old.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	c2, _ := OpenCache(path)
	if c2.Runs() != 1 || !c2.has(runKey("ACME/app", 2, 1)) {
		t.Errorf("reopened: %d runs", c2.Runs())
	}
	if err := writeFile(path, "not a cache"); err != nil {
		t.Fatal(err)
	}
	c3, err := OpenCache(path)
	if err != nil || c3.Runs() != 0 || !strings.Contains(c3.Note, "starting afresh") {
		t.Errorf("a corrupt cache: %v %q", err, c3.Note)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
