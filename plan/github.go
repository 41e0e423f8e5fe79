package plan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tartyci/tarty/ghapi"
)

// GitHub is what the history reader needs of GitHub (*ghapi.Client).
type GitHub interface {
	HistoryRepositories(ctx context.Context) ([]string, error)
	HistoryRunsPage(ctx context.Context, repository string, since, until time.Time, page int) ([]ghapi.HistoryRun, int, int, error)
	HistoryJobs(ctx context.Context, repository string, runID int64) ([]ghapi.HistoryJob, error)
}

// DefaultBudget bounds the rate-limit units one `tarty plan` may spend.
const DefaultBudget = 2000

// ReadOptions bound and report a reading of the history.
type ReadOptions struct {
	// Since and Until bound the jobs' created_at. Runs are listed by whole
	// UTC days, then jobs outside the window are dropped.
	Since, Until time.Time
	// Budget is the most rate-limit units the reading may spend (DefaultBudget when 0).
	Budget int
	// Meter counts the units spent (the client's transport); required.
	Meter *Meter
	// Cache keeps completed runs' jobs between readings; nil: none.
	Cache *Cache
	// Progress, when set, is told how the reading goes.
	Progress func(Progress)
	// Workers read that many runs' jobs at once (default 4).
	Workers int
	// MaxWait is the longest rate-limit wait sat out; a longer one ends the
	// reading with the error (default 2 minutes).
	MaxWait time.Duration
	// Sleep waits (default: a timer); tests pass a fake.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Progress is how far a reading got.
type Progress struct {
	Phase string // "repositories" (the first page of runs of each), then "runs" (their jobs)
	Done  int
	Total int
	Units int    // rate-limit units spent so far
	Note  string // e.g. a rate-limit wait
}

// ReadStats say what a reading cost.
type ReadStats struct {
	Repositories int `json:"repositories"`
	Runs         int `json:"runs"`            // runs created in the window
	RunsCached   int `json:"runs_from_cache"` // whose jobs came from the cache
	Pages        int `json:"run_pages"`       // pages of runs read
	Estimate     int `json:"estimate"`        // units the reading was estimated to cost
	Units        int `json:"units"`           // units it spent
}

// BudgetError refuses a reading that would spend more than the bound.
type BudgetError struct {
	Estimate     int // units the whole reading would cost
	Budget       int
	Spent        int // units spent before refusing
	Repositories int
	Pages        int // pages of runs still to read
	Runs         int // runs whose jobs are not cached
	// Remaining and Reset are GitHub's budget for the hour, when known and
	// the reason for refusing.
	Remaining int
	Reset     time.Time
}

func (e *BudgetError) Error() string {
	what := fmt.Sprintf("reading the history would cost about %s rate-limit units (%s, %s more pages of runs, %s runs whose jobs are not cached)",
		thousands(e.Estimate), plural(e.Repositories, "repository", "repositories"), thousands(e.Pages), thousands(e.Runs))
	if e.Remaining >= 0 && e.Estimate-e.Spent > e.Remaining && e.Estimate <= e.Budget {
		return fmt.Sprintf("%s, and GitHub allows %s more until %s: run it again then (what was read is cached), shorten --days, or use --jobs",
			what, thousands(e.Remaining), e.Reset.Local().Format("15:04"))
	}
	return fmt.Sprintf("%s; the bound is %s (--budget): raise it, shorten --days, set github.repository, or use --jobs with a history exported elsewhere (%s units spent on the estimate)",
		what, thousands(e.Budget), thousands(e.Spent))
}

type repoRuns struct {
	name  string
	runs  []ghapi.HistoryRun
	total int
	next  int
}

// ReadHistory reads the jobs created between Since and Until in every
// repository in scope: all attempts of every run created in those days,
// jobs of completed runs from the cache when it has them. It first reads the
// first page of runs of each repository, estimates what the rest costs
// (the pages left, and one request for each run whose jobs are not cached),
// and refuses with a *BudgetError when that is above the budget (or above
// what GitHub allows this hour). It stops at the budget in any case. Rate
// limits with a wait up to MaxWait are sat out; the cache keeps what was
// read even when the reading fails.
func ReadHistory(ctx context.Context, gh GitHub, o ReadOptions) ([]Job, ReadStats, error) {
	if o.Budget <= 0 {
		o.Budget = DefaultBudget
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 2 * time.Minute
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Meter == nil {
		o.Meter = &Meter{}
	}
	r := &reader{gh: gh, o: o, start: o.Meter.Units()}
	return r.read(ctx)
}

type reader struct {
	gh    GitHub
	o     ReadOptions
	start int // the meter's units before the reading
	stats ReadStats

	mu    sync.Mutex
	done  int
	waits int // rate-limit waits sat out
}

// maxWaits bounds the rate-limit waits one reading sits out.
const maxWaits = 20

func (r *reader) spent() int { return r.o.Meter.Units() - r.start }

func (r *reader) progress(phase string, done, total int, note string) {
	if r.o.Progress != nil {
		r.o.Progress(Progress{Phase: phase, Done: done, Total: total, Units: r.spent(), Note: note})
	}
}

// errBudgetSpent: the reading spent its budget.
var errBudgetSpent = errors.New("rate-limit units (--budget) spent")

// call runs f, sitting out rate limits up to MaxWait, and refuses to start
// once the budget is spent.
func (r *reader) call(ctx context.Context, phase string, f func() error) error {
	for {
		if r.spent() >= r.o.Budget {
			return fmt.Errorf("stopped at the bound of %s %w; what was read is cached: run it again to go on",
				thousands(r.o.Budget), errBudgetSpent)
		}
		err := f()
		var rle *ghapi.RateLimitError
		if !errors.As(err, &rle) || rle.RetryAfter() > r.o.MaxWait {
			return err
		}
		r.mu.Lock()
		r.waits++
		tooMany := r.waits > maxWaits
		r.mu.Unlock()
		if tooMany {
			return fmt.Errorf("GitHub kept rate-limiting the reading (%d waits): %w", maxWaits, err)
		}
		r.progress(phase, 0, 0, fmt.Sprintf("GitHub's rate limit: waiting %s", FormatWait(rle.RetryAfter())))
		if err := r.o.Sleep(ctx, rle.RetryAfter()); err != nil {
			return err
		}
	}
}

func (r *reader) read(ctx context.Context) ([]Job, ReadStats, error) {
	var repos []string
	if err := r.call(ctx, "repositories", func() (err error) {
		repos, err = r.gh.HistoryRepositories(ctx)
		return err
	}); err != nil {
		return nil, r.stats, err
	}
	r.stats.Repositories = len(repos)

	// The first page of each repository: what the window holds.
	all := make([]*repoRuns, 0, len(repos))
	for i, name := range repos {
		r.progress("repositories", i, len(repos), "")
		rr := &repoRuns{name: name}
		if err := r.call(ctx, "repositories", func() (err error) {
			rr.runs, rr.total, rr.next, err = r.gh.HistoryRunsPage(ctx, name, r.o.Since, r.o.Until, 1)
			return err
		}); err != nil {
			if errors.Is(err, errBudgetSpent) {
				return nil, r.stats, r.refuseEarly(len(repos), i)
			}
			return nil, r.stats, err
		}
		r.stats.Pages++
		all = append(all, rr)
	}
	r.progress("repositories", len(repos), len(repos), "")

	// The estimate: the pages left, and one request per run not cached.
	pages, uncached := 0, 0
	for _, rr := range all {
		pages += (rr.total+99)/100 - 1
		for _, run := range rr.runs {
			if !r.cached(rr.name, run) {
				uncached++
			}
		}
		uncached += max(rr.total-len(rr.runs), 0) - r.cachedBeyond(rr)
	}
	r.stats.Estimate = r.spent() + pages + uncached
	if err := r.affordable(len(repos), pages, uncached); err != nil {
		return nil, r.stats, err
	}

	// The rest of the pages, then the jobs.
	for _, rr := range all {
		for rr.next != 0 {
			page := rr.next
			var more []ghapi.HistoryRun
			if err := r.call(ctx, "repositories", func() (err error) {
				more, _, rr.next, err = r.gh.HistoryRunsPage(ctx, rr.name, r.o.Since, r.o.Until, page)
				return err
			}); err != nil {
				return nil, r.stats, err
			}
			r.stats.Pages++
			rr.runs = append(rr.runs, more...)
		}
	}
	jobs, err := r.readJobs(ctx, all)
	if err != nil {
		return nil, r.stats, err
	}
	r.stats.Units = r.spent()
	return jobs, r.stats, nil
}

// refuseEarly turns running out of budget while listing the first pages
// into a BudgetError extrapolated from the repositories read.
func (r *reader) refuseEarly(repos, read int) *BudgetError {
	return &BudgetError{Estimate: max(r.spent(), 1) * repos / max(read, 1), Budget: r.o.Budget, Spent: r.spent(),
		Repositories: repos, Remaining: -1}
}

func (r *reader) affordable(repos, pages, uncached int) error {
	be := &BudgetError{Estimate: r.stats.Estimate, Budget: r.o.Budget, Spent: r.spent(), Repositories: repos,
		Pages: pages, Runs: uncached, Remaining: -1}
	if r.stats.Estimate > r.o.Budget {
		return be
	}
	if n, reset, ok := r.o.Meter.Remaining(); ok && pages+uncached > n {
		be.Remaining, be.Reset = n, reset
		return be
	}
	return nil
}

func runKey(repo string, id int64, attempt int) string {
	return fmt.Sprintf("%s#%d#%d", strings.ToLower(repo), id, attempt)
}

// cached reports whether the run's jobs can come from the cache: it is
// completed and its latest attempt's jobs were kept.
func (r *reader) cached(repo string, run ghapi.HistoryRun) bool {
	return run.Status == "completed" && r.o.Cache != nil && r.o.Cache.has(runKey(repo, run.ID, run.Attempt))
}

// cachedBeyond counts the cached runs of a repository created in the window
// but not on its first page: the estimate does not count them.
func (r *reader) cachedBeyond(rr *repoRuns) int {
	if r.o.Cache == nil || rr.next == 0 || len(rr.runs) == 0 {
		return 0
	}
	oldest := rr.runs[len(rr.runs)-1].CreatedAt
	return r.o.Cache.countBefore(strings.ToLower(rr.name)+"#", r.o.Since.UTC().Truncate(24*time.Hour), oldest, rr.total-len(rr.runs))
}

type runTask struct {
	repo string
	run  ghapi.HistoryRun
	jobs []Job
	err  error
}

func (r *reader) readJobs(ctx context.Context, all []*repoRuns) ([]Job, error) {
	var tasks []*runTask
	for _, rr := range all {
		seen := map[int64]bool{}
		for _, run := range rr.runs {
			if seen[run.ID] { // a run can move between pages as new ones arrive
				continue
			}
			seen[run.ID] = true
			tasks = append(tasks, &runTask{repo: rr.name, run: run})
		}
	}
	r.stats.Runs = len(tasks)
	work := make(chan *runTask)
	var wg sync.WaitGroup
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	for range r.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				t.jobs, t.err = r.runJobs(inner, t)
				if t.err != nil {
					cancel() // the first error ends the reading
				}
				r.mu.Lock()
				r.done++
				done := r.done
				r.mu.Unlock()
				r.progress("runs", done, len(tasks), "")
			}
		}()
	}
feed:
	for _, t := range tasks {
		select {
		case work <- t:
		case <-inner.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var jobs []Job
	for _, t := range tasks {
		if t.err != nil && !errors.Is(t.err, context.Canceled) {
			return nil, t.err
		}
		jobs = append(jobs, t.jobs...)
	}
	slices.SortStableFunc(jobs, byArrival)
	return jobs, nil
}

// runJobs returns the jobs of a run created in the window, from the cache
// or from GitHub; a completed run's are cached.
func (r *reader) runJobs(ctx context.Context, t *runTask) ([]Job, error) {
	key := runKey(t.repo, t.run.ID, t.run.Attempt)
	var jobs []Job
	if r.cached(t.repo, t.run) {
		jobs = r.o.Cache.get(key)
		r.mu.Lock()
		r.stats.RunsCached++
		r.mu.Unlock()
	} else {
		var hj []ghapi.HistoryJob
		if err := r.call(ctx, "runs", func() (err error) {
			hj, err = r.gh.HistoryJobs(ctx, t.repo, t.run.ID)
			return err
		}); err != nil {
			return nil, err
		}
		jobs = make([]Job, 0, len(hj))
		for _, j := range hj {
			jobs = append(jobs, Job{ID: j.ID, Repository: t.repo, Labels: j.Labels, CreatedAt: j.CreatedAt.UTC(),
				StartedAt: j.StartedAt.UTC(), CompletedAt: j.CompletedAt.UTC(), Conclusion: j.Conclusion,
				RunnerName: j.RunnerName, RunID: j.RunID, RunAttempt: j.RunAttempt, Name: j.Name})
			if j.Status != "completed" {
				jobs[len(jobs)-1].CompletedAt = time.Time{}
			}
		}
		if t.run.Status == "completed" && r.o.Cache != nil {
			r.o.Cache.put(key, t.run.CreatedAt, jobs)
		}
	}
	var in []Job
	for _, j := range jobs {
		if !j.CreatedAt.Before(r.o.Since) && j.CreatedAt.Before(r.o.Until) {
			in = append(in, j)
		}
	}
	return in, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
