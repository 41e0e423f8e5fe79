package ghapi

import (
	"context"
	"sort"
	"strings"
)

// RunnerGroupAccess is the configured organisation runner group and the
// repositories it may serve, as GitHub describes them: GitHub hands the
// group's runners only jobs of those repositories.
type RunnerGroupAccess struct {
	ID   int64
	Name string
	// Visibility is "all", "selected" (Repositories only) or "private"
	// (private and internal repositories only).
	Visibility string
	// AllowsPublicRepositories lets the group serve public repositories.
	AllowsPublicRepositories bool
	// Repositories are the full names a "selected" group serves, sorted.
	Repositories []string
}

// RunnerGroupAccess reads the runner group for `tarty doctor`. ok is false
// with github.repository set: repository runners belong to no group. A
// missing group is an error with Fix naming the groups the organisation has;
// a refused read names the permission to grant.
func (c *Client) RunnerGroupAccess(ctx context.Context) (access RunnerGroupAccess, ok bool, err error) {
	if c.repo != "" {
		return RunnerGroupAccess{}, false, nil
	}
	g, err := c.runnerGroup(ctx)
	if err != nil {
		return RunnerGroupAccess{}, true, err
	}
	a, err := c.readAccess(ctx)
	if err != nil {
		return RunnerGroupAccess{}, true, withSetupFix(err, c.runnerPermissionFix())
	}
	out := RunnerGroupAccess{ID: g.id, Name: g.name, Visibility: a.visibility, AllowsPublicRepositories: a.allowsPublic}
	for fn := range a.selected {
		out.Repositories = append(out.Repositories, fn)
	}
	sort.Strings(out.Repositories)
	return out, true, nil
}

// EnterpriseVersion is the GitHub Enterprise Server's version ("3.9.2"),
// from the X-GitHub-Enterprise-Version of an answer to /rate_limit (which
// costs nothing against the rate limit); "" on github.com.
func (c *Client) EnterpriseVersion(ctx context.Context) (string, error) {
	_, resp, err := c.gh.RateLimit.Get(ctx)
	if err := c.check("get rate limit", resp, err, kindOther); err != nil {
		return "", withSetupFix(err, credentialsFix)
	}
	return strings.TrimSpace(enterpriseVersion(resp)), nil
}
