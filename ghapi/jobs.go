package ghapi

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/tartyci/tarty"
)

// How the poller finds queued jobs, and what bounds its cost.
//
// A job is queued wherever its run is: in a run that is queued, in progress,
// waiting (another job waits for an approval), requested or pending, and in a
// re-run of a run created up to 30 days ago (a re-run keeps the run's
// created_at). So "reading a repository in full" lists its runs in each of
// those five statuses created in the last 30 days, and the latest attempt's
// jobs of each. Five requests for every repository every poll would be too
// many for a large organisation (GitHub's secondary limit is 900 points a
// minute, and a 304 is still a request), so the poller keeps, per
// repository, what it last saw, and spends its requests where jobs can be:
//
//   - A repository whose last reading found a run in one of those statuses
//     ("live") is read in full every poll.
//   - The others are probed, least recently probed first, at most
//     probesPerPoll a poll: one request for the newest run (per_page=1), a
//     free 304 while nothing changed. A probe that shows a new run (or a
//     change to the newest one) within the last 30 days has the repository
//     read in full at once; so does a first probe that finds a run from the
//     last 24 hours.
//   - A repository whose newest run is older than 30 days holds nothing that
//     can be queued or re-run: its probe completes it.
//   - A re-run of an older run does not show in the probe. Repositories with
//     a run in the last 30 days are therefore re-read in full every
//     rescanEvery, oldest reading first, at most rescansPerPoll a poll.
//   - Up to smallScope repositories, every one is read in full every poll.
//
// Every GET is conditional (the ETag cache), and the URLs are stable from one
// poll to the next (the created filter is a date), so an unchanged answer is
// a free 304. A repository that was neither read in full nor completed by its
// probe this poll is in neither PollResult.Complete nor Failed: its demand is
// kept. Repositories the runner group cannot serve are complete without any
// request: none of their jobs is ours.
type pollTuning struct {
	probesPerPoll  int
	rescansPerPoll int
	rescanEvery    time.Duration
	smallScope     int
	workers        int // repositories read at once
}

var defaultPollTuning = pollTuning{
	probesPerPoll:  100,
	rescansPerPoll: 6,
	rescanEvery:    30 * time.Minute,
	smallScope:     10,
	workers:        4,
}

const (
	// rerunWindow: GitHub lets a run be re-run up to 30 days after it was created.
	rerunWindow = 30 * 24 * time.Hour
	// freshRun: a first probe that finds a run this young reads the repository at once.
	freshRun = 24 * time.Hour
)

// liveStatuses are the run statuses that can hold a queued job.
var liveStatuses = []string{"queued", "in_progress", "waiting", "requested", "pending"}

// repoPoll is what the poller remembers of a repository between polls.
type repoPoll struct {
	probed    bool
	probedAt  time.Time
	newest    time.Time // created_at of the newest run; zero when there is none
	newestKey string    // the newest run's ID, attempt, status and update time
	read      bool
	readAt    time.Time
	live      bool // the last reading found runs in a live status
}

func (st repoPoll) recent(now time.Time) bool {
	return !st.newest.IsZero() && now.Sub(st.newest) < rerunWindow
}

type pollTask struct {
	repo  repoRef
	st    repoPoll
	probe bool
	read  bool
	// results
	jobs     []tarty.JobEvent
	complete bool
	gone     bool
	err      error
}

// QueuedJobs returns every job in scope whose own status is queued, per
// repository (see pollTuning for how and at what cost). A repository that
// cannot be read is reported in Failed and the others are still read; an
// organisation repository that vanished since it was listed (404) is
// skipped, but the configured one is a failure. The error is non-nil only
// when the scope itself could not be listed (or ctx ended).
//
// Each event carries the job's own status ("queued"), its run and attempt,
// labels, repository and created_at, and the runner GitHub names for it if
// any. No age cut is made: the scheduler decides what is stale.
func (c *Client) QueuedJobs(ctx context.Context) (tarty.PollResult, error) {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	var res tarty.PollResult
	if err := c.blocked("poll queued jobs"); err != nil {
		return res, err
	}
	servable, others, err := c.servableRepos(ctx)
	if err != nil {
		return res, err
	}
	for _, r := range others {
		res.Complete = append(res.Complete, r.fullName())
	}

	now := c.now()
	tasks := c.plan(servable, now)
	c.runTasks(ctx, tasks, now)
	if err := ctx.Err(); err != nil {
		return tarty.PollResult{}, err
	}

	seen := map[int64]bool{}
	keep := map[string]bool{}
	var read, probed, skipped int
	for _, t := range tasks {
		name := t.repo.fullName()
		switch {
		case t.gone:
			c.log.Debug().Str("repository", name).Msg("repository gone; skipped")
			c.forgetRepos()
			continue
		case t.err != nil:
			if res.Failed == nil {
				res.Failed = map[string]error{}
			}
			res.Failed[name] = t.err
		case t.complete:
			res.Complete = append(res.Complete, name)
		default:
			skipped++
		}
		keep[strings.ToLower(name)] = true
		if t.err == nil {
			c.polls[strings.ToLower(name)] = &t.st
		}
		if t.read {
			read++
		}
		if t.probe {
			probed++
		}
		for _, e := range t.jobs {
			if !seen[e.JobID] {
				seen[e.JobID] = true
				res.Jobs = append(res.Jobs, e)
			}
		}
	}
	for k := range c.polls {
		if !keep[k] {
			delete(c.polls, k)
		}
	}
	c.log.Debug().Int("repositories", len(servable)+len(others)).Int("servable", len(servable)).Int("read", read).
		Int("probed", probed).Int("not_checked", skipped).Int("failed", len(res.Failed)).
		Int("queued_jobs", len(res.Jobs)).Msg("polled queued jobs")
	return res, nil
}

// plan decides what each repository gets this poll.
func (c *Client) plan(repos []repoRef, now time.Time) []*pollTask {
	tasks := make([]*pollTask, len(repos))
	small := len(repos) <= c.tune.smallScope
	var background, rescan []*pollTask
	for i, r := range repos {
		t := &pollTask{repo: r}
		if st := c.polls[strings.ToLower(r.fullName())]; st != nil {
			t.st = *st
		}
		tasks[i] = t
		switch {
		case small || t.st.live:
			t.read = true
		case !t.st.probed:
			t.probe = true
		default:
			background = append(background, t)
			if t.st.recent(now) && (!t.st.read || now.Sub(t.st.readAt) >= c.tune.rescanEvery) {
				rescan = append(rescan, t)
			}
		}
	}
	sort.SliceStable(background, func(i, j int) bool { return background[i].st.probedAt.Before(background[j].st.probedAt) })
	for i := 0; i < len(background) && i < c.tune.probesPerPoll; i++ {
		background[i].probe = true
	}
	sort.SliceStable(rescan, func(i, j int) bool { return rescan[i].st.readAt.Before(rescan[j].st.readAt) })
	for i := 0; i < len(rescan) && i < c.tune.rescansPerPoll; i++ {
		rescan[i].read = true
	}
	return tasks
}

// runTasks carries the plan out, a few repositories at a time.
func (c *Client) runTasks(ctx context.Context, tasks []*pollTask, now time.Time) {
	// A date, so the URL (and its ETag) stays the same all day.
	created := ">=" + now.Add(-rerunWindow).UTC().Truncate(24*time.Hour).Format("2006-01-02")
	work := make(chan *pollTask)
	var wg sync.WaitGroup
	for i := 0; i < max(1, c.tune.workers); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				c.runTask(ctx, t, now, created)
			}
		}()
	}
	for _, t := range tasks {
		if t.probe || t.read {
			work <- t
		}
	}
	close(work)
	wg.Wait()
}

func (c *Client) runTask(ctx context.Context, t *pollTask, now time.Time, created string) {
	fail := func(err error) {
		if c.repo == "" && statusOf(err) == http.StatusNotFound {
			t.gone = true
		}
		t.err = err
	}
	if err := c.blocked("poll " + t.repo.fullName()); err != nil {
		t.err = err
		return
	}
	if t.probe {
		newest, key, err := c.probe(ctx, t.repo)
		if err != nil {
			fail(err)
			return
		}
		changed := t.st.probed && key != t.st.newestKey
		first := !t.st.probed
		t.st.probed, t.st.probedAt, t.st.newest, t.st.newestKey = true, now, newest, key
		if !t.read && ((changed && t.st.recent(now)) || (first && !newest.IsZero() && now.Sub(newest) < freshRun)) {
			t.read = true
		}
		if !t.read && !t.st.recent(now) {
			t.complete = true // nothing there can be queued or re-run
		}
	}
	if t.read {
		jobs, live, err := c.readRepo(ctx, t.repo, created)
		if err != nil {
			fail(err)
			return
		}
		t.jobs, t.complete = jobs, true
		t.st.read, t.st.readAt, t.st.live = true, now, live
	}
}

// probe returns the created_at of the repository's newest run and a key that
// changes whenever that run changes (zero and "" when it has none).
func (c *Client) probe(ctx context.Context, repo repoRef) (time.Time, string, error) {
	op := "probe workflow runs of " + repo.fullName()
	opts := &github.ListWorkflowRunsOptions{ListOptions: github.ListOptions{PerPage: 1}}
	page, resp, err := c.gh.Actions.ListRepositoryWorkflowRuns(ctx, repo.owner, repo.name, opts)
	if err := c.check(op, resp, err, kindOther); err != nil {
		return time.Time{}, "", err
	}
	if len(page.WorkflowRuns) == 0 {
		return time.Time{}, "", nil
	}
	r := page.WorkflowRuns[0]
	key := strconv.FormatInt(r.GetID(), 10) + "/" + strconv.Itoa(r.GetRunAttempt()) + "/" + r.GetStatus() + "/" +
		r.GetUpdatedAt().UTC().Format(time.RFC3339)
	return r.GetCreatedAt().Time, key, nil
}

// readRepo lists the repository's runs in every live status created since
// created, and returns the queued jobs of their latest attempts, and whether
// there was any such run.
func (c *Client) readRepo(ctx context.Context, repo repoRef, created string) ([]tarty.JobEvent, bool, error) {
	seenRun := map[int64]bool{}
	var runs []*github.WorkflowRun
	for _, status := range liveStatuses {
		page, err := c.runs(ctx, repo, status, created)
		if err != nil {
			return nil, false, err
		}
		for _, r := range page {
			if !seenRun[r.GetID()] { // a run can change status between two lists
				seenRun[r.GetID()] = true
				runs = append(runs, r)
			}
		}
	}
	var out []tarty.JobEvent
	for _, run := range runs {
		jobs, err := c.jobs(ctx, repo, run.GetID())
		if err != nil {
			return nil, false, err
		}
		for _, j := range jobs {
			if j.GetStatus() != "queued" {
				continue
			}
			ev := tarty.JobEvent{
				Source:       tarty.SourcePoller,
				Action:       tarty.ActionQueued,
				Status:       j.GetStatus(),
				JobID:        j.GetID(),
				RunID:        j.GetRunID(),
				RunAttempt:   j.GetRunAttempt(),
				Labels:       append([]string(nil), j.Labels...),
				Repository:   repo.fullName(),
				Organization: repo.owner,
				RunnerName:   j.GetRunnerName(),
				RunnerID:     j.GetRunnerID(),
				CreatedAt:    j.GetCreatedAt().Time,
			}
			if ev.RunID == 0 {
				ev.RunID = run.GetID()
			}
			if ev.RunAttempt == 0 {
				ev.RunAttempt = int64(run.GetRunAttempt())
			}
			if ev.RunnerName != "" { // GitHub's started_at of a job nobody took is its creation
				ev.StartedAt = j.GetStartedAt().Time
			}
			out = append(out, ev)
		}
	}
	return out, len(runs) > 0, nil
}

func (c *Client) runs(ctx context.Context, repo repoRef, status, created string) ([]*github.WorkflowRun, error) {
	op := fmt.Sprintf("list %s workflow runs of %s", status, repo.fullName())
	opts := &github.ListWorkflowRunsOptions{Status: status, Created: created, ListOptions: github.ListOptions{PerPage: perPage}}
	var out []*github.WorkflowRun
	for {
		page, resp, err := c.gh.Actions.ListRepositoryWorkflowRuns(ctx, repo.owner, repo.name, opts)
		if err := c.check(op, resp, err, kindOther); err != nil {
			return nil, err
		}
		out = append(out, page.WorkflowRuns...)
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (c *Client) jobs(ctx context.Context, repo repoRef, runID int64) ([]*github.WorkflowJob, error) {
	op := fmt.Sprintf("list jobs of run %d in %s", runID, repo.fullName())
	opts := &github.ListWorkflowJobsOptions{Filter: "latest", ListOptions: github.ListOptions{PerPage: perPage}}
	var out []*github.WorkflowJob
	for {
		page, resp, err := c.gh.Actions.ListWorkflowJobs(ctx, repo.owner, repo.name, runID, opts)
		if err := c.check(op, resp, err, kindOther); err != nil {
			return nil, err
		}
		out = append(out, page.Jobs...)
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// servableRepos splits the repositories in scope into those the runner group
// can serve and the others, from the repository list and the group's access
// (each read at most once per 10 minutes).
func (c *Client) servableRepos(ctx context.Context) (servable, others []repoRef, err error) {
	repos, err := c.reposInScope(ctx)
	if err != nil {
		return nil, nil, err
	}
	c.refreshAccess(ctx)
	for _, r := range repos {
		if c.Serves(r.fullName()) {
			servable = append(servable, r)
		} else {
			others = append(others, r)
		}
	}
	return servable, others, nil
}

// reposInScope is the configured repository, or the organisation's
// repositories that are neither archived nor disabled, listed at most once
// per repoCacheTTL. Listing records each repository's visibility for Serves.
func (c *Client) reposInScope(ctx context.Context) ([]repoRef, error) {
	if c.repo != "" {
		return []repoRef{{owner: c.org, name: c.repo}}, nil
	}
	c.mu.Lock()
	if c.reposSet && c.now().Sub(c.reposAt) < repoCacheTTL {
		repos := c.repos
		c.mu.Unlock()
		return repos, nil
	}
	c.mu.Unlock()

	repos, err := c.listOrgRepos(ctx, 0)
	if err != nil {
		return nil, err
	}
	vis := make(map[string]bool, len(repos))
	for _, r := range repos {
		vis[strings.ToLower(r.fullName())] = r.private
	}
	c.mu.Lock()
	c.repos, c.reposAt, c.reposSet, c.visibility = repos, c.now(), true, vis
	c.mu.Unlock()
	c.log.Debug().Int("repositories", len(repos)).Msg("listed organization repositories")
	return repos, nil
}

// listOrgRepos lists the organisation's active repositories, stopping after
// limit of them when limit > 0.
func (c *Client) listOrgRepos(ctx context.Context, limit int) ([]repoRef, error) {
	op := "list repositories of " + c.org
	opts := &github.RepositoryListByOrgOptions{Type: "all", Sort: "full_name", ListOptions: github.ListOptions{PerPage: perPage}}
	var out []repoRef
	for {
		page, resp, err := c.gh.Repositories.ListByOrg(ctx, c.org, opts)
		if err := c.check(op, resp, err, kindOther); err != nil {
			return nil, err
		}
		for _, r := range page {
			if r.GetArchived() || r.GetDisabled() {
				continue
			}
			owner := r.GetOwner().GetLogin()
			if owner == "" {
				owner = c.org
			}
			out = append(out, repoRef{owner: owner, name: r.GetName(), private: r.GetPrivate()})
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (c *Client) forgetRepos() {
	c.mu.Lock()
	c.reposSet = false
	c.mu.Unlock()
}
