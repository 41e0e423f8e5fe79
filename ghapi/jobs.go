package ghapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/tartyci/tarty"
)

// QueuedJobs returns every job in scope whose own status is queued, from
// workflow runs that are queued or in progress (a run in progress can still
// have queued jobs) and were created in the last 24 hours, per repository:
// a repository that cannot be read is reported in Failed and the others are
// still read, so that the scheduler never mistakes a repository it could not
// read for one without queued jobs. Unchanged pages come back as free 304s
// thanks to the ETag cache. An organisation repository that vanished since it
// was listed (404) is skipped, but the configured one is a failure.
func (c *Client) QueuedJobs(ctx context.Context) (tarty.PollResult, error) {
	var res tarty.PollResult
	repos, err := c.reposInScope(ctx)
	if err != nil {
		return res, err
	}
	now := c.now()
	since := now.Add(-pollWindow)
	// The URL's created filter is rounded down to the hour so that polls within
	// the hour send the same URL and get 304s; the exact cut is made below.
	created := ">=" + since.UTC().Truncate(time.Hour).Format(time.RFC3339)

	seen := map[int64]bool{}
	for _, repo := range repos {
		events, err := c.queuedJobsIn(ctx, repo, created, since)
		if c.repo == "" && statusOf(err) == http.StatusNotFound {
			c.log.Debug().Str("repository", repo.fullName()).Msg("repository gone; skipped")
			c.forgetRepos()
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return tarty.PollResult{}, err
			}
			if res.Failed == nil {
				res.Failed = map[string]error{}
			}
			res.Failed[repo.fullName()] = err
			continue
		}
		res.Complete = append(res.Complete, repo.fullName())
		for _, e := range events {
			if !seen[e.JobID] {
				seen[e.JobID] = true
				res.Jobs = append(res.Jobs, e)
			}
		}
	}
	return res, nil
}

func (c *Client) queuedJobsIn(ctx context.Context, repo repoRef, created string, since time.Time) ([]tarty.JobEvent, error) {
	var out []tarty.JobEvent
	for _, status := range []string{"queued", "in_progress"} {
		runs, err := c.runs(ctx, repo, status, created)
		if err != nil {
			return nil, err
		}
		for _, run := range runs {
			if run.GetCreatedAt().Time.Before(since) {
				continue
			}
			jobs, err := c.jobs(ctx, repo, run.GetID())
			if err != nil {
				return nil, err
			}
			for _, j := range jobs {
				if j.GetStatus() != "queued" {
					continue
				}
				runID := j.GetRunID()
				if runID == 0 {
					runID = run.GetID()
				}
				attempt := j.GetRunAttempt()
				if attempt == 0 {
					attempt = int64(run.GetRunAttempt())
				}
				out = append(out, tarty.JobEvent{
					Source:       tarty.SourcePoller,
					Action:       tarty.ActionQueued,
					Status:       j.GetStatus(),
					JobID:        j.GetID(),
					RunID:        runID,
					RunAttempt:   attempt,
					Labels:       append([]string(nil), j.Labels...),
					Repository:   repo.fullName(),
					Organization: repo.owner,
					CreatedAt:    j.GetCreatedAt().Time,
				})
			}
		}
	}
	return out, nil
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

// reposInScope is the configured repository, or the organisation's
// repositories that are neither archived nor disabled, listed at most once
// per repoCacheTTL.
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
	c.mu.Lock()
	c.repos, c.reposAt, c.reposSet = repos, c.now(), true
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
			out = append(out, repoRef{owner: owner, name: r.GetName()})
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
