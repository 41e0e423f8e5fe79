package ghapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/go-github/v62/github"

	"github.com/tartyci/tarty"
)

// JITConfig registers a just-in-time runner called name with the configured
// labels and returns its ID and encoded config. The config is a credential:
// it never appears in an error or a log line. Registrations and removals are
// spaced at least a second apart, one at a time.
//
// Errors say what GitHub meant: a taken name is NameTaken() (errors.Is
// ErrRunnerNameTaken: pick another name); the rest of what GitHub refuses for
// a reason only an operator can fix is Permanent() with a Fix (and HostFix):
// Actions disabled (409, ErrActionsDisabled), repository-level runners
// disabled by policy (403, ErrRepositoryRunnersDisabled), a runner group that
// is missing or may not be used (404/403, ErrRunnerGroup), a GitHub
// Enterprise Server older than 3.10 (404, ErrJITUnsupported), and missing
// credentials or permissions.
func (c *Client) JITConfig(ctx context.Context, name string) (int64, string, error) {
	op := "generate JIT config for " + name
	if err := c.blocked(op); err != nil {
		return 0, "", err
	}
	req := &github.GenerateJITConfigRequest{
		Name:       name,
		Labels:     c.Labels(),
		WorkFolder: github.String(workFolder),
	}
	var group groupInfo
	if c.repo != "" {
		req.RunnerGroupID = repoRunnerGroupID
	} else {
		var err error
		if group, err = c.runnerGroup(ctx); err != nil {
			return 0, "", err
		}
		req.RunnerGroupID = group.id
	}
	var (
		cfg  *github.JITRunnerConfig
		resp *github.Response
		err  error
	)
	if gerr := c.write(ctx, op, func() {
		if c.repo != "" {
			cfg, resp, err = c.gh.Actions.GenerateRepoJITConfig(ctx, c.org, c.repo, req)
		} else {
			cfg, resp, err = c.gh.Actions.GenerateOrgJITConfig(ctx, c.org, req)
		}
	}); gerr != nil {
		return 0, "", gerr
	}
	if err := c.check(op, resp, err, kindOther); err != nil {
		return 0, "", c.jitError(err, resp, group)
	}
	if cfg.GetRunner().GetID() == 0 || cfg.GetEncodedJITConfig() == "" {
		return 0, "", fmt.Errorf("github: %s: answer has no runner ID or config", op)
	}
	c.log.Debug().Str("runner", name).Int64("runner_id", cfg.GetRunner().GetID()).Msg("registered JIT runner")
	return cfg.GetRunner().GetID(), cfg.GetEncodedJITConfig(), nil
}

// jitError types a refused JIT registration by what GitHub's answer means.
func (c *Client) jitError(err error, resp *github.Response, g groupInfo) error {
	var ae *APIError
	if !errors.As(err, &ae) {
		return err
	}
	msg := strings.ToLower(ae.Message)
	where := "organization " + c.org
	if c.repo != "" {
		where = "repository " + c.org + "/" + c.repo
	}
	switch ae.StatusCode {
	case http.StatusConflict:
		// The same status means two things; only the message tells them apart.
		if strings.Contains(msg, "disabled") {
			ae.kind = kindActionsDisabled
			ae.Fix = fmt.Sprintf("enable GitHub Actions for %s (Settings > Actions > General > Actions permissions; an enterprise policy can disable it too)", where)
		} else {
			ae.kind = kindNameTaken
		}
	case http.StatusForbidden:
		switch {
		case strings.Contains(msg, "self-hosted runners are disabled") ||
			(strings.Contains(msg, "repository level") && strings.Contains(msg, "disabled")):
			ae.kind = kindRepoRunnersDisabled
			ae.Fix = fmt.Sprintf("an organization or enterprise policy forbids repository-level self-hosted runners: allow them for %s (organization Settings > Actions > Runners, or the enterprise's Actions policies), or unset github.repository to use organization runners", c.org)
		case c.repo == "" && !permissionMessage(msg):
			ae.kind = kindGroup
			ae.Fix = fmt.Sprintf("GitHub refuses to register runners in runner group %q (id %d), for example a group of GitHub-hosted runners: set github.runner_group to a group of self-hosted runners", g.name, g.id)
		default:
			ae.kind, ae.Fix = kindSetup, c.runnerPermissionFix()
		}
	case http.StatusNotFound:
		if v := enterpriseVersion(resp); v != "" && versionBefore(v, 3, 10) {
			ae.kind = kindJITUnsupported
			ae.Fix = fmt.Sprintf("GitHub Enterprise Server %s has no just-in-time runner registration: upgrade it to 3.10 or later", v)
		} else if c.repo == "" {
			c.forgetRunnerGroup() // deleted or recreated: resolve it again next time
			ae.kind = kindGroup
			ae.Fix = fmt.Sprintf("runner group %q (id %d) was not found, or these credentials cannot manage its runners: check github.runner_group; %s", g.name, g.id, c.runnerPermissionFix())
		} else {
			ae.kind = kindSetup
			ae.Fix = fmt.Sprintf("repository %s/%s was not found, or these credentials cannot administer it: check github.repository; %s", c.org, c.repo, c.runnerPermissionFix())
		}
	case http.StatusUnauthorized:
		ae.kind, ae.Fix = kindSetup, credentialsFix
	}
	return err
}

const credentialsFix = "the GitHub credentials were rejected: check github.token, or the App ID, installation ID and private key"

// runnerPermissionFix names the permission that manages runners in scope.
func (c *Client) runnerPermissionFix() string {
	if c.repo != "" {
		return fmt.Sprintf(`grant the repository permission "Administration: read and write" on %s/%s (fine-grained token or App) or the classic scope repo; the token's user must be a repository admin`, c.org, c.repo)
	}
	return fmt.Sprintf(`grant the organization permission "Self-hosted runners: read and write" on %s (fine-grained token or App; "Administration" is not enough) or the classic scope admin:org; the token's user must be an organization owner`, c.org)
}

// withSetupFix marks an answer that means bad credentials (401) or missing
// permissions (403, and 404, which GitHub uses to hide what a token may not
// see) as permanent with a fix; other errors pass unchanged.
func withSetupFix(err error, permissionFix string) error {
	var ae *APIError
	if !errors.As(err, &ae) || ae.kind != kindOther {
		return err
	}
	switch ae.StatusCode {
	case http.StatusUnauthorized:
		ae.kind, ae.Fix = kindSetup, credentialsFix
	case http.StatusForbidden, http.StatusNotFound:
		ae.kind, ae.Fix = kindSetup, permissionFix
	}
	return err
}

func permissionMessage(msg string) bool {
	for _, s := range []string{"resource not accessible", "must have admin", "not authorized", "requires authentication", "permission"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// enterpriseVersion is the X-GitHub-Enterprise-Version of an answer ("" on github.com).
func enterpriseVersion(resp *github.Response) string {
	if resp == nil || resp.Response == nil {
		return ""
	}
	return strings.TrimSpace(resp.Header.Get("X-GitHub-Enterprise-Version"))
}

// versionBefore reports whether a dotted version ("3.9.2") is older than
// major.minor; an unreadable one is not.
func versionBefore(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma < major || (ma == major && mi < minor)
}

// ListRunners returns every runner in scope whose name starts with prefix.
func (c *Client) ListRunners(ctx context.Context, prefix string) ([]tarty.Runner, error) {
	op := "list runners"
	if err := c.blocked(op); err != nil {
		return nil, err
	}
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
			return nil, withSetupFix(err, c.runnerPermissionFix())
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
// Removals and registrations are spaced at least a second apart.
func (c *Client) RemoveRunner(ctx context.Context, id int64) error {
	op := fmt.Sprintf("remove runner %d", id)
	var (
		resp *github.Response
		err  error
	)
	if gerr := c.write(ctx, op, func() {
		if c.repo != "" {
			resp, err = c.gh.Actions.RemoveRunner(ctx, c.org, c.repo, id)
		} else {
			resp, err = c.gh.Actions.RemoveOrganizationRunner(ctx, c.org, id)
		}
	}); gerr != nil {
		return gerr
	}
	k := kindOther
	if resp != nil && resp.Response != nil && resp.StatusCode == http.StatusUnprocessableEntity {
		k = kindBusy
	}
	err = c.check(op, resp, err, k)
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	if k == kindOther {
		err = withSetupFix(err, c.runnerPermissionFix())
	}
	return err
}
