package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tartyci/tarty/ghapi"
)

const githubPermissions = "grant the permissions in the README's \"GitHub permissions\" table"

// githubScope names where the runners register.
func (e *doctorEnv) githubScope() string {
	if r := e.cfg.RepositoryFullName(); r != "" {
		return "repository " + r
	}
	return "organization " + e.cfg.GitHub.Organization
}

func checkGitHub(ctx context.Context, e *doctorEnv) checkResult {
	if e.ghErr != nil {
		return checkFail("check github.app.id, github.app.installation_id and github.app.private_key_file",
			"cannot build the GitHub client: %s", oneLineErr(e.ghErr))
	}
	auth := "token"
	if e.cfg.GitHub.App.Enabled() {
		auth = fmt.Sprintf("GitHub App %d, installation %d", e.cfg.GitHub.App.ID, e.cfg.GitHub.App.InstallationID)
	}
	if err := e.gh.CheckAccess(ctx); err != nil {
		return checkFailErr(err, githubPermissions, "%s (%s)", e.githubScope(), auth)
	}
	server := "github.com"
	if v, err := e.gh.EnterpriseVersion(ctx); err == nil && v != "" {
		server = "GitHub Enterprise Server " + v
	} else if e.cfg.GitHub.URL != ghapi.DefaultBaseURL {
		server = e.cfg.GitHub.URL
	}
	return checkPass("%s on %s (%s): credentials work, runners and workflow runs readable", e.githubScope(), server, auth)
}

// checkJIT registers a just-in-time runner under a throwaway name and removes
// it at once, whatever happens next: the only way to know runners can be
// created. Its config is a credential and is dropped unread.
func checkJIT(ctx context.Context, e *doctorEnv) checkResult {
	name := e.newName()
	id, _, err := e.gh.JITConfig(ctx, name)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cleanupTimeout)
	defer cancel()
	if err != nil {
		// GitHub may have registered it all the same (an answer lost to an
		// interruption or a timeout): remove it by name.
		e.removeRunnerNamed(rctx, name)
		if errors.Is(err, ghapi.ErrJITUnsupported) {
			return checkFailErr(err, "upgrade GitHub Enterprise Server to 3.10 or later",
				"this GitHub Enterprise Server is too old for just-in-time runners, which Tarty needs")
		}
		return checkFailErr(err, githubPermissions, "cannot register a runner in %s", e.githubScope())
	}
	if err := e.gh.RemoveRunner(rctx, id); err != nil {
		return checkWarn(fmt.Sprintf("remove runner %s in %s's Settings > Actions > Runners (GitHub drops an unused one after a day)", name, e.githubScope()),
			"registered runner %s (id %d) but could not remove it: %s", name, id, oneLineErr(err))
	}
	return checkPass("registered just-in-time runner %s in %s with labels %s, and removed it",
		name, e.githubScope(), strings.Join(e.gh.Labels(), ","))
}

// removeRunnerNamed removes the runner called name, if GitHub has one; best
// effort.
func (e *doctorEnv) removeRunnerNamed(ctx context.Context, name string) {
	runners, err := e.gh.ListRunners(ctx, name)
	if err != nil {
		return
	}
	for _, r := range runners {
		if r.Name == name {
			_ = e.gh.RemoveRunner(ctx, r.ID)
		}
	}
}

// maxListedRepositories bounds the repositories a "selected" group's line names.
const maxListedRepositories = 10

func checkRunnerGroup(ctx context.Context, e *doctorEnv) checkResult {
	a, ok, err := e.gh.RunnerGroupAccess(ctx)
	switch {
	case err != nil:
		return checkFailErr(err, "check github.runner_group", "runner group %q", e.cfg.GitHub.RunnerGroup)
	case !ok:
		return checkSkip("%s: repository runners belong to no runner group", e.githubScope())
	}
	var serves string
	switch a.Visibility {
	case "selected":
		if len(a.Repositories) == 0 {
			return checkWarn(fmt.Sprintf("add repositories to group %q in the organization's Settings > Actions > Runner groups, or give it access to all repositories", a.Name),
				"group %q (id %d) is limited to selected repositories and has none: no job will ever reach Tarty", a.Name, a.ID)
		}
		names := a.Repositories
		more := ""
		if len(names) > maxListedRepositories {
			more = fmt.Sprintf(" and %d more", len(names)-maxListedRepositories)
			names = names[:maxListedRepositories]
		}
		serves = fmt.Sprintf("%d selected repositories: %s%s", len(a.Repositories), strings.Join(names, ", "), more)
	case "private":
		serves = "private and internal repositories only"
	default:
		serves = "all repositories"
	}
	public := "public repositories not allowed: their jobs are never served"
	if a.AllowsPublicRepositories && a.Visibility != "private" {
		public = "public repositories allowed: anyone who can open a pull request there may run code on this Mac"
	}
	return checkPass("group %q (id %d) serves %s; %s", a.Name, a.ID, serves, public)
}
