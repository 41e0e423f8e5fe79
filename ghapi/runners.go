package ghapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-github/v62/github"

	"github.com/tartyci/tarty"
)

// JITConfig registers a just-in-time runner called name with the configured
// labels and returns its ID and encoded config. The config is a credential:
// it never appears in an error or a log line. A taken name gives an error
// with NameTaken() true (errors.Is ErrRunnerNameTaken).
func (c *Client) JITConfig(ctx context.Context, name string) (int64, string, error) {
	op := "generate JIT config for " + name
	req := &github.GenerateJITConfigRequest{
		Name:       name,
		Labels:     c.Labels(),
		WorkFolder: github.String(workFolder),
	}
	var (
		cfg  *github.JITRunnerConfig
		resp *github.Response
		err  error
	)
	if c.repo != "" {
		req.RunnerGroupID = repoRunnerGroupID
		cfg, resp, err = c.gh.Actions.GenerateRepoJITConfig(ctx, c.org, c.repo, req)
	} else {
		if req.RunnerGroupID, err = c.runnerGroupID(ctx); err != nil {
			return 0, "", err
		}
		cfg, resp, err = c.gh.Actions.GenerateOrgJITConfig(ctx, c.org, req)
	}
	k := kindOther
	if resp != nil && resp.Response != nil && resp.StatusCode == http.StatusConflict {
		k = kindNameTaken
	}
	if err := c.check(op, resp, err, k); err != nil {
		if c.repo == "" && (statusOf(err) == http.StatusNotFound || statusOf(err) == http.StatusForbidden) {
			c.forgetRunnerGroup() // the group may have been deleted or renamed
		}
		return 0, "", err
	}
	if cfg.GetRunner().GetID() == 0 || cfg.GetEncodedJITConfig() == "" {
		return 0, "", fmt.Errorf("github: %s: answer has no runner ID or config", op)
	}
	c.log.Debug().Str("runner", name).Int64("runner_id", cfg.GetRunner().GetID()).Msg("registered JIT runner")
	return cfg.GetRunner().GetID(), cfg.GetEncodedJITConfig(), nil
}

// runnerGroupID resolves the configured group name, cached for groupCacheTTL.
func (c *Client) runnerGroupID(ctx context.Context) (int64, error) {
	c.mu.Lock()
	if c.groupID != 0 && c.now().Sub(c.groupAt) < groupCacheTTL {
		id := c.groupID
		c.mu.Unlock()
		return id, nil
	}
	c.mu.Unlock()

	op := "resolve runner group " + c.group
	opts := &github.ListOrgRunnerGroupOptions{ListOptions: github.ListOptions{PerPage: perPage}}
	var names []string
	for {
		groups, resp, err := c.gh.Actions.ListOrganizationRunnerGroups(ctx, c.org, opts)
		if err := c.check(op, resp, err, kindOther); err != nil {
			return 0, err
		}
		for _, g := range groups.RunnerGroups {
			if strings.EqualFold(g.GetName(), c.group) {
				c.mu.Lock()
				c.groupID, c.groupAt = g.GetID(), c.now()
				c.mu.Unlock()
				c.log.Debug().Str("group", g.GetName()).Int64("group_id", g.GetID()).Msg("resolved runner group")
				return g.GetID(), nil
			}
			names = append(names, g.GetName())
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return 0, fmt.Errorf("github: %s: organization %s has no such runner group (it has: %s)",
		op, c.org, strings.Join(names, ", "))
}

func (c *Client) forgetRunnerGroup() {
	c.mu.Lock()
	c.groupID = 0
	c.mu.Unlock()
}

// ListRunners returns every runner in scope whose name starts with prefix.
func (c *Client) ListRunners(ctx context.Context, prefix string) ([]tarty.Runner, error) {
	op := "list runners"
	opts := &github.ListRunnersOptions{ListOptions: github.ListOptions{PerPage: perPage}}
	var out []tarty.Runner
	for {
		var (
			page *github.Runners
			resp *github.Response
			err  error
		)
		if c.repo != "" {
			page, resp, err = c.gh.Actions.ListRunners(ctx, c.org, c.repo, opts)
		} else {
			page, resp, err = c.gh.Actions.ListOrganizationRunners(ctx, c.org, opts)
		}
		if err := c.check(op, resp, err, kindOther); err != nil {
			return nil, err
		}
		for _, r := range page.Runners {
			if strings.HasPrefix(r.GetName(), prefix) {
				out = append(out, tarty.Runner{
					ID:     r.GetID(),
					Name:   r.GetName(),
					Online: r.GetStatus() == "online",
					Busy:   r.GetBusy(),
				})
			}
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// RemoveRunner deletes a runner registration. One already gone is success; one
// still running a job gives an error with Busy() true, to retry later.
func (c *Client) RemoveRunner(ctx context.Context, id int64) error {
	op := fmt.Sprintf("remove runner %d", id)
	var (
		resp *github.Response
		err  error
	)
	if c.repo != "" {
		resp, err = c.gh.Actions.RemoveRunner(ctx, c.org, c.repo, id)
	} else {
		resp, err = c.gh.Actions.RemoveOrganizationRunner(ctx, c.org, id)
	}
	k := kindOther
	if resp != nil && resp.Response != nil && resp.StatusCode == http.StatusUnprocessableEntity {
		k = kindBusy
	}
	err = c.check(op, resp, err, k)
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	return err
}
