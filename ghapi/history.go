package ghapi

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/go-github/v62/github"
)

// The organisation's job history, for `tarty plan`: the repositories in
// scope, their workflow runs created in a window (one page at a time, so the
// caller can estimate the cost before reading everything), and every
// attempt's jobs of a run. Every GET goes through the client's ETag cache,
// so an unchanged answer is a free 304, and every error is classified as for
// the poller (RateLimitError with its wait, APIError). The cache's answers can
// be kept across processes with CachedAnswers and RestoreAnswers.

// HistoryRun is a workflow run as the history reader needs it.
type HistoryRun struct {
	ID        int64
	Attempt   int    // run_attempt: the latest attempt
	Status    string // queued, in_progress, completed, ...
	CreatedAt time.Time
	UpdatedAt time.Time
}

// HistoryJob is one job of one attempt of a run.
type HistoryJob struct {
	ID          int64
	RunID       int64
	RunAttempt  int
	Name        string
	Labels      []string
	Status      string // queued, in_progress, completed, waiting, ...
	Conclusion  string // success, failure, cancelled, skipped, ...; "" until completed
	CreatedAt   time.Time
	StartedAt   time.Time // GitHub sets it to created_at for a job no runner took
	CompletedAt time.Time
	RunnerName  string // "" when no runner took it
}

// HistoryRepositories lists the full names of the repositories whose jobs
// Tarty's runners could be handed, sorted: the configured repository, or the
// organisation's active repositories that the runner group serves (when the
// group cannot be read, every one, as for the poller).
func (c *Client) HistoryRepositories(ctx context.Context) ([]string, error) {
	if err := c.blocked("list repositories"); err != nil {
		return nil, err
	}
	repos, _, err := c.servableRepos(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range repos {
		out = append(out, r.fullName())
	}
	sort.Strings(out)
	return out, nil
}

// HistoryCreated is the created filter for runs created from since's UTC day
// to until's UTC day, both whole: the same all day, so that its pages keep
// their ETags until something changes.
func HistoryCreated(since, until time.Time) string {
	const day = "2006-01-02"
	return since.UTC().Format(day) + ".." + until.UTC().Format(day)
}

// HistoryRunsPage reads page (from 1) of the runs of repository ("owner/name")
// created in the whole UTC days from since to until, newest first, 100 a page.
// It returns the page's runs, how many runs the window holds, and the next
// page (0 after the last).
func (c *Client) HistoryRunsPage(ctx context.Context, repository string, since, until time.Time, page int) (runs []HistoryRun, total, next int, err error) {
	owner, name, err := splitRepository(repository)
	if err != nil {
		return nil, 0, 0, err
	}
	op := fmt.Sprintf("list workflow runs of %s (page %d)", repository, page)
	if err := c.blocked(op); err != nil {
		return nil, 0, 0, err
	}
	opts := &github.ListWorkflowRunsOptions{Created: HistoryCreated(since, until),
		ListOptions: github.ListOptions{PerPage: perPage, Page: page}}
	list, resp, err := c.gh.Actions.ListRepositoryWorkflowRuns(ctx, owner, name, opts)
	if err := c.check(op, resp, err, kindOther); err != nil {
		return nil, 0, 0, err
	}
	for _, r := range list.WorkflowRuns {
		runs = append(runs, HistoryRun{ID: r.GetID(), Attempt: r.GetRunAttempt(), Status: r.GetStatus(),
			CreatedAt: r.GetCreatedAt().Time, UpdatedAt: r.GetUpdatedAt().Time})
	}
	return runs, list.GetTotalCount(), resp.NextPage, nil
}

// HistoryJobs reads the jobs of every attempt of a run (filter=all), all pages.
func (c *Client) HistoryJobs(ctx context.Context, repository string, runID int64) ([]HistoryJob, error) {
	owner, name, err := splitRepository(repository)
	if err != nil {
		return nil, err
	}
	op := fmt.Sprintf("list jobs of run %d in %s", runID, repository)
	opts := &github.ListWorkflowJobsOptions{Filter: "all", ListOptions: github.ListOptions{PerPage: perPage}}
	var out []HistoryJob
	for {
		if err := c.blocked(op); err != nil {
			return nil, err
		}
		page, resp, err := c.gh.Actions.ListWorkflowJobs(ctx, owner, name, runID, opts)
		if err := c.check(op, resp, err, kindOther); err != nil {
			return nil, err
		}
		for _, j := range page.Jobs {
			hj := HistoryJob{
				ID: j.GetID(), RunID: j.GetRunID(), RunAttempt: int(j.GetRunAttempt()), Name: j.GetName(),
				Labels: append([]string(nil), j.Labels...), Status: j.GetStatus(), Conclusion: j.GetConclusion(),
				CreatedAt: j.GetCreatedAt().Time, StartedAt: j.GetStartedAt().Time, CompletedAt: j.GetCompletedAt().Time,
				RunnerName: j.GetRunnerName(),
			}
			if hj.RunID == 0 {
				hj.RunID = runID
			}
			out = append(out, hj)
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func splitRepository(repository string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(strings.TrimSpace(repository), "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("github: repository %q: want owner/name", repository)
	}
	return owner, name, nil
}

// CachedAnswer is one answer the ETag cache remembers: its key (the Accept
// header and the URL, never a credential), its ETag, headers and body.
type CachedAnswer struct {
	Key    string      `json:"key"`
	ETag   string      `json:"etag"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"body"`
}

// CachedAnswers returns the ETag cache's answers whose key keep accepts (all
// when keep is nil), least recently used first, so that restoring them in
// that order keeps the order. ETags are per token: restored answers of
// another token (or of an App's previous installation token) simply miss.
func (c *Client) CachedAnswers(keep func(key string) bool) []CachedAnswer {
	e := c.cache
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []CachedAnswer
	for el := e.lru.Back(); el != nil; el = el.Prev() {
		a := el.Value.(*etagEntry)
		if keep != nil && !keep(a.key) {
			continue
		}
		out = append(out, CachedAnswer{Key: a.key, ETag: a.etag, Header: a.header.Clone(), Body: a.body})
	}
	return out
}

// RestoreAnswers puts answers kept by CachedAnswers back into the ETag
// cache, within its bounds; the next GET of each URL is conditional.
func (c *Client) RestoreAnswers(answers []CachedAnswer) {
	for _, a := range answers {
		if a.Key == "" || a.ETag == "" || len(a.Body) > c.cache.maxEntry {
			continue
		}
		h := a.Header.Clone()
		if h == nil {
			h = http.Header{}
		}
		c.cache.put(&etagEntry{key: a.Key, etag: a.ETag, header: h, body: a.Body})
	}
}
