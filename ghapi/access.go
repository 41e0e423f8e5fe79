package ghapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-github/v62/github"
)

// CheckAccess is `tarty doctor`'s GitHub check: the credentials work, the
// organisation (and repository) is visible, runners in scope can be listed,
// the runner group exists, and workflow runs can be read. Each failure names the permission to grant;
// several are joined. Creating and deleting runners needs write access that
// cannot be tested without side effects, so the advice names read & write.
func (c *Client) CheckAccess(ctx context.Context) error {
	_, resp, err := c.gh.Organizations.Get(ctx, c.org)
	if err = c.check("get organization "+c.org, resp, err, kindOther); err != nil {
		switch statusOf(err) {
		case http.StatusUnauthorized:
			return fmt.Errorf("%s: %w", credentialsFix, err)
		case http.StatusNotFound:
			return fmt.Errorf("organization %q is not visible to these credentials (check github.organization; a GitHub App must be installed on it): %w", c.org, err)
		}
		return err
	}

	var problems []error
	if c.repo != "" {
		_, resp, err := c.gh.Repositories.Get(ctx, c.org, c.repo)
		if err = c.check("get repository "+c.org+"/"+c.repo, resp, err, kindOther); err != nil {
			return denied(err, fmt.Sprintf("repository %s/%s is not visible: check github.repository and grant Metadata: read (fine-grained token or App) or the classic scope repo", c.org, c.repo))
		}
	}

	// Runners in scope.
	ropts := &github.ListRunnersOptions{ListOptions: github.ListOptions{PerPage: 1}}
	if c.repo != "" {
		_, resp, err = c.gh.Actions.ListRunners(ctx, c.org, c.repo, ropts)
	} else {
		_, resp, err = c.gh.Actions.ListOrganizationRunners(ctx, c.org, ropts)
	}
	if err = c.check("list runners", resp, err, kindOther); err != nil {
		problems = append(problems, denied(err, "cannot manage the self-hosted runners: "+c.runnerPermissionFix()))
	}

	// The runner group must exist (organisation runners only).
	if c.repo == "" {
		if _, err := c.runnerGroup(ctx); err != nil {
			problems = append(problems, err)
		}
	}

	// Workflow runs, on the repository or the first one of the organisation.
	var repo *repoRef
	if c.repo != "" {
		repo = &repoRef{owner: c.org, name: c.repo}
	} else if repos, err := c.listOrgRepos(ctx, 1); err != nil {
		problems = append(problems, denied(err, fmt.Sprintf("cannot list the repositories of %s: grant Metadata: read (fine-grained token or App) or the classic scope repo", c.org)))
	} else if len(repos) > 0 {
		repo = &repos[0]
	}
	if repo != nil {
		opts := &github.ListWorkflowRunsOptions{Status: "queued", ListOptions: github.ListOptions{PerPage: 1}}
		_, resp, err := c.gh.Actions.ListRepositoryWorkflowRuns(ctx, repo.owner, repo.name, opts)
		if err = c.check("list workflow runs of "+repo.fullName(), resp, err, kindOther); err != nil {
			problems = append(problems, denied(err, fmt.Sprintf(`cannot read the workflow runs of %s: grant the repository permission "Actions: read" (fine-grained token or App) or the classic scope repo`, repo.fullName())))
		}
	}
	return errors.Join(problems...)
}

// denied prefixes a permission error (401, 403, 404: GitHub hides what a token
// may not see) with advice; other errors (rate limits, 5xx) pass unchanged.
func denied(err error, advice string) error {
	switch statusOf(err) {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return fmt.Errorf("%s: %w", advice, err)
	}
	return err
}
