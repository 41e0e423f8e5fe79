package ghapi

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty/ghapi/fakegithub"
)

var historyLabels = []string{"self-hosted", "macOS", "tarty"}

func readAllRuns(t *testing.T, c *Client, repo string, since, until time.Time) (runs []HistoryRun, total, pages int) {
	t.Helper()
	for page := 1; page != 0; {
		list, n, next, err := c.HistoryRunsPage(context.Background(), repo, since, until, page)
		if err != nil {
			t.Fatal(err)
		}
		runs, total, page = append(runs, list...), n, next
		pages++
	}
	return runs, total, pages
}

func TestPlanHistoryRunsPagedInWindowAndJobsOfEveryAttempt(t *testing.T) {
	clk := newClockInHour()
	s := newFake(t, fakegithub.Config{Now: clk.Now})
	now := clk.Now()
	since := now.Add(-14 * 24 * time.Hour)
	// 150 runs in the window (two pages), two before it.
	for i := 0; i < 150; i++ {
		at := now.Add(-time.Duration(i) * time.Hour)
		s.AddPastRun("app", at, fakegithub.PastJob{Labels: historyLabels, Started: at.Add(time.Minute), Completed: at.Add(5 * time.Minute)})
	}
	s.AddPastRun("app", since.Add(-48*time.Hour), fakegithub.PastJob{Labels: historyLabels, Started: since, Completed: since})
	s.AddPastRun("app", since.Add(-72*time.Hour), fakegithub.PastJob{Labels: historyLabels, Started: since, Completed: since})
	// A run with 120 jobs (two pages of jobs) and a re-run of one of them.
	at := now.Add(-30 * time.Minute)
	var many []fakegithub.PastJob
	for i := 0; i < 120; i++ {
		many = append(many, fakegithub.PastJob{Labels: historyLabels, Started: at.Add(time.Minute), Completed: at.Add(3 * time.Minute),
			RunnerName: "tarty-mac-0000000" + fmt.Sprint(i%10)})
	}
	big := s.AddPastRun("lib", at, many...)
	rerunAt := at.Add(10 * time.Minute)
	if _, err := s.AddPastAttempt(big.ID, rerunAt, fakegithub.PastJob{Labels: historyLabels, Started: rerunAt.Add(40 * time.Second),
		Completed: rerunAt.Add(2 * time.Minute), Conclusion: "failure"}); err != nil {
		t.Fatal(err)
	}

	c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now })
	runs, total, pages := readAllRuns(t, c, "acme/app", since, now)
	if total != 150 || len(runs) != 150 || pages != 2 {
		t.Fatalf("runs %d of %d in %d pages, want 150 in 2", len(runs), total, pages)
	}
	if !slices.IsSortedFunc(runs, func(a, b HistoryRun) int { return b.CreatedAt.Compare(a.CreatedAt) }) {
		t.Error("runs are not newest first")
	}
	if r := runs[0]; r.Status != "completed" || r.Attempt != 1 || !r.CreatedAt.Equal(now.UTC().Truncate(time.Second)) {
		t.Errorf("first run %+v", r)
	}

	lib, _, _ := readAllRuns(t, c, "acme/lib", since, now)
	if len(lib) != 1 || lib[0].Attempt != 2 || !lib[0].CreatedAt.Equal(at.UTC().Truncate(time.Second)) {
		t.Fatalf("lib runs %+v, want one run at attempt 2 keeping its created_at", lib)
	}
	jobs, err := c.HistoryJobs(context.Background(), "acme/lib", big.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 121 {
		t.Fatalf("%d jobs, want 120 of the first attempt and 1 of the re-run", len(jobs))
	}
	last := jobs[120]
	if last.RunAttempt != 2 || last.Conclusion != "failure" || !last.CreatedAt.Equal(rerunAt.UTC().Truncate(time.Second)) ||
		last.CompletedAt.Sub(last.StartedAt) != 80*time.Second || last.RunnerName != "" {
		t.Errorf("re-run job %+v", last)
	}
	if j := jobs[0]; j.RunAttempt != 1 || j.RunnerName != "tarty-mac-00000000" || !slices.Equal(j.Labels, historyLabels) ||
		j.StartedAt.Sub(j.CreatedAt) != time.Minute || j.RunID != big.ID {
		t.Errorf("first job %+v", j)
	}
	if got := s.CallsMatching("GET", "/repos/acme/lib/actions/runs/*/jobs"); got != 2 {
		t.Errorf("%d jobs pages read, want 2", got)
	}
}

func TestPlanHistoryRepositoriesAreTheOnesTheGroupServes(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	s.AddRepo("app")
	s.AddRepo("lib")
	s.AddPublicRepo("site") // the Default group does not serve public repositories
	s.AddRepo("old")
	if err := s.SetArchived("old", true); err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, s, nil)
	got, err := c.HistoryRepositories(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"acme/app", "acme/lib"}; !slices.Equal(got, want) {
		t.Errorf("repositories %v, want %v", got, want)
	}
	one := newTestClient(t, s, func(o *Options) { o.Repository = "lib" })
	if got, _ := one.HistoryRepositories(context.Background()); !slices.Equal(got, []string{"acme/lib"}) {
		t.Errorf("repository scope: %v", got)
	}
}

func TestPlanCachedAnswersMakeTheNextProcessFree(t *testing.T) {
	clk := newClockInHour()
	s := newFake(t, fakegithub.Config{Now: clk.Now})
	now := clk.Now()
	for i := 0; i < 130; i++ {
		at := now.Add(-time.Duration(i) * time.Hour)
		s.AddPastRun("app", at, fakegithub.PastJob{Labels: historyLabels, Started: at, Completed: at.Add(time.Minute)})
	}
	since := now.Add(-7 * 24 * time.Hour)
	first := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now })
	before := s.RateRemaining()
	runs1, _, _ := readAllRuns(t, first, "acme/app", since, now)
	if spent := before - s.RateRemaining(); spent != 2 {
		t.Fatalf("cold read spent %d units, want 2", spent)
	}
	kept := first.CachedAnswers(func(key string) bool { return strings.Contains(key, "/actions/runs?") })
	if len(kept) != 2 {
		t.Fatalf("%d answers kept, want the 2 pages", len(kept))
	}

	// Another process: a new client with the answers restored.
	second := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now })
	second.RestoreAnswers(kept)
	before = s.RateRemaining()
	runs2, total, _ := readAllRuns(t, second, "acme/app", since, now)
	if spent := before - s.RateRemaining(); spent != 0 {
		t.Errorf("warm read spent %d units, want 0 (304s)", spent)
	}
	if total != 130 || !reflect.DeepEqual(runs1, runs2) {
		t.Errorf("warm read differs: %d runs of %d", len(runs2), total)
	}

	// A new run changes the pages: they cost again, and say so.
	s.AddPastRun("app", now, fakegithub.PastJob{Labels: historyLabels, Started: now, Completed: now})
	before = s.RateRemaining()
	runs3, _, _ := readAllRuns(t, second, "acme/app", since, now)
	if spent := before - s.RateRemaining(); spent != 2 || len(runs3) != 131 {
		t.Errorf("after a change: %d units, %d runs", spent, len(runs3))
	}
}

func TestPlanHistoryRateLimitIsTyped(t *testing.T) {
	clk := newClock()
	s := newFake(t, fakegithub.Config{Now: clk.Now})
	s.AddRepo("app")
	s.Inject(fakegithub.Fault{Method: "GET", Path: "/repos/acme/app/actions/runs", Kind: fakegithub.PrimaryRateLimit,
		Reset: clk.Now().Add(20 * time.Minute)})
	c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now })
	_, _, _, err := c.HistoryRunsPage(context.Background(), "acme/app", clk.Now().Add(-time.Hour), clk.Now(), 1)
	var rle *RateLimitError
	if !errors.As(err, &rle) || rle.Secondary || rle.RetryAfter() != 20*time.Minute {
		t.Fatalf("err = %v, want the primary limit with a 20-minute wait", err)
	}
	if _, _, _, err := c.HistoryRunsPage(context.Background(), "app", clk.Now(), clk.Now(), 1); err == nil {
		t.Error("a repository without its owner was accepted")
	}
}
