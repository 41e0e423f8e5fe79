package ghapi

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-github/v62/github"
)

// groupInfo is the configured organisation runner group as GitHub describes it.
type groupInfo struct {
	id           int64
	name         string
	visibility   string // all, selected or private
	allowsPublic bool
}

// groupAccess is which repositories the runner group can serve. GitHub never
// hands our runners a job of any other repository.
type groupAccess struct {
	group        string
	visibility   string          // all, selected or private (private repositories only)
	allowsPublic bool            // allows_public_repositories
	selected     map[string]bool // lower-case full names, for visibility "selected"
}

// serves applies GitHub's rule. fullName is lower case; known says whether
// the repository's visibility is known (private is meaningless otherwise).
func (a *groupAccess) serves(fullName string, private, known bool) bool {
	if known && !private && (!a.allowsPublic || a.visibility == "private") {
		return false
	}
	if a.visibility == "selected" && !a.selected[fullName] {
		return false
	}
	return true
}

// Serves reports whether Tarty's runners can be handed jobs of repository
// ("owner/name"): false for a public repository when the runner group does
// not allow public repositories (or is limited to private ones), and for a
// repository outside a group limited to selected repositories. It never does
// network I/O: it answers from what the last poll read (the group and the
// repository list are refreshed every 10 minutes), and true when that is not
// known yet. With github.repository set it is true for that repository only.
func (c *Client) Serves(repository string) bool {
	repository = strings.TrimSpace(repository)
	if c.repo != "" {
		return strings.EqualFold(repository, c.org+"/"+c.repo)
	}
	key := strings.ToLower(repository)
	c.mu.Lock()
	a := c.access
	private, known := c.visibility[key]
	c.mu.Unlock()
	return a == nil || a.serves(key, private, known)
}

// runnerGroup resolves the configured group by name, cached for groupCacheTTL.
// A name the organisation does not have is a permanent error naming the
// groups it has.
func (c *Client) runnerGroup(ctx context.Context) (groupInfo, error) {
	c.mu.Lock()
	if c.group.id != 0 && c.now().Sub(c.groupAt) < groupCacheTTL {
		g := c.group
		c.mu.Unlock()
		return g, nil
	}
	c.mu.Unlock()

	op := "resolve runner group " + c.groupName
	opts := &github.ListOrgRunnerGroupOptions{ListOptions: github.ListOptions{PerPage: perPage}}
	var names []string
	for {
		groups, resp, err := c.gh.Actions.ListOrganizationRunnerGroups(ctx, c.org, opts)
		if err := c.check(op, resp, err, kindOther); err != nil {
			return groupInfo{}, withSetupFix(err, c.runnerPermissionFix())
		}
		for _, g := range groups.RunnerGroups {
			if strings.EqualFold(g.GetName(), c.groupName) {
				info := groupInfo{id: g.GetID(), name: g.GetName(), visibility: g.GetVisibility(), allowsPublic: g.GetAllowsPublicRepositories()}
				if info.visibility == "" {
					info.visibility = "all"
				}
				c.mu.Lock()
				c.group, c.groupAt = info, c.now()
				c.mu.Unlock()
				c.log.Debug().Str("group", info.name).Int64("group_id", info.id).Str("visibility", info.visibility).
					Bool("allows_public_repositories", info.allowsPublic).Msg("resolved runner group")
				return info, nil
			}
			names = append(names, g.GetName())
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return groupInfo{}, &APIError{
		Op:      op,
		Message: fmt.Sprintf("organization %s has no such runner group (it has: %s)", c.org, strings.Join(names, ", ")),
		Fix:     "create the group in the organization's Settings > Actions > Runner groups, or set github.runner_group to one it has",
		kind:    kindGroup,
	}
}

func (c *Client) forgetRunnerGroup() {
	c.mu.Lock()
	c.group = groupInfo{}
	c.mu.Unlock()
}

// refreshAccess reads what the runner group can serve when the cached answer
// is older than groupCacheTTL: its visibility, whether it allows public
// repositories and, for a group limited to selected repositories, which.
// It never fails a poll: on error the previous answer is kept (or none,
// which serves every repository) and the error is logged.
func (c *Client) refreshAccess(ctx context.Context) {
	if c.repo != "" {
		return
	}
	c.mu.Lock()
	fresh := c.access != nil && c.now().Sub(c.accessAt) < groupCacheTTL
	c.mu.Unlock()
	if fresh {
		return
	}
	a, err := c.readAccess(ctx)
	if err != nil {
		c.log.Warn().Err(err).Str("group", c.groupName).
			Msg("cannot read the runner group's repository access; every repository is polled")
		return
	}
	c.mu.Lock()
	c.access, c.accessAt = a, c.now()
	c.mu.Unlock()
}

func (c *Client) readAccess(ctx context.Context) (*groupAccess, error) {
	g, err := c.runnerGroup(ctx)
	if err != nil {
		return nil, err
	}
	a := &groupAccess{group: g.name, visibility: g.visibility, allowsPublic: g.allowsPublic}
	if g.visibility != "selected" {
		return a, nil
	}
	a.selected = map[string]bool{}
	op := fmt.Sprintf("list repositories of runner group %s", g.name)
	opts := &github.ListOptions{PerPage: perPage}
	for {
		page, resp, err := c.gh.Actions.ListRepositoryAccessRunnerGroup(ctx, c.org, g.id, opts)
		if err := c.check(op, resp, err, kindOther); err != nil {
			if statusOf(err) == 404 {
				c.forgetRunnerGroup()
			}
			return nil, err
		}
		for _, r := range page.Repositories {
			a.selected[strings.ToLower(r.GetFullName())] = true
		}
		if resp.NextPage == 0 {
			return a, nil
		}
		opts.Page = resp.NextPage
	}
}
