package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty/config"
	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/upkeep"
)

// The doctor's checks of the upkeep (package upkeep): the runner image's
// actions runner against the latest, and whether failed webhook deliveries
// can be redelivered.

const rebuildRunnerFix = "rebuild the runner image now (tarty rebuild), with a rebuild.command that installs the newest actions runner " +
	"(README: \"Runner freshness and lost deliveries\")"

// imageRunner is what is known of the runner image's actions runner: the
// daemon's /status when one runs, else what the daemon recorded in
// state_dir.
func (e *doctorEnv) imageRunner(ctx context.Context) (upkeep.ImageRunner, string) {
	if up, _ := e.daemon(ctx); up {
		if st, err := e.admin.status(ctx); err == nil && st.Runner.ImageVersion != "" {
			return upkeep.ImageRunner{Version: st.Runner.ImageVersion}, "the running daemon"
		}
	}
	path := filepath.Join(e.cfg.StateDir, upkeep.StateFile)
	store, err := upkeep.OpenStore(path, zerolog.Nop())
	if err != nil {
		return upkeep.ImageRunner{}, ""
	}
	r, _ := store.ImageRunner(e.cfg.Images.Runner)
	return r, path
}

// checkRunnerVersion compares the runner image's actions runner with the
// newest GitHub offers: WARN from 20 days behind, FAIL from 30 (GitHub then
// stops sending jobs to the runner).
func checkRunnerVersion(ctx context.Context, e *doctorEnv) checkResult {
	now := time.Now()
	img, from := e.imageRunner(ctx)
	l := upkeep.FetchLatest(ctx, e.gh, now)
	a := upkeep.Assess(now, img, l)
	switch {
	case a.Latest == "":
		return checkWarn("check the GitHub access above (reading the runner downloads needs the permission that manages runners)",
			"%s", a.Note)
	case a.ImageVersion == "":
		return checkInfo("latest actions runner %s; the runner image's is not known yet (the daemon reads it in its first runner VM and after each rebuild)", a.Latest)
	}
	detail := fmt.Sprintf("%s has actions runner %s (from %s), latest %s", e.cfg.Images.Runner, a.ImageVersion, from, a.Latest)
	if a.Note != "" {
		detail += "; " + a.Note
	}
	if !a.Behind {
		return checkPass("%s: current", detail)
	}
	behind := fmt.Sprintf("%s: %.1f days behind since %s", detail, a.BehindDays, a.Since.Local().Format(time.DateOnly))
	switch age := a.Age(now); {
	case age >= upkeep.FailBehind:
		return checkFail(rebuildRunnerFix, "%s: GitHub stops sending jobs to a runner 30 days behind", behind)
	case age >= upkeep.WarnBehind:
		return checkWarn(rebuildRunnerFix, "%s: GitHub stops sending jobs to it at 30 days, and until then each job's runner updates itself first (about a minute)", behind)
	}
	auto := "the daemon rebuilds early once it is " + e.cfg.Rebuild.RunnerMaxAge.String() + " behind (rebuild.runner_max_age)"
	if !e.cfg.Rebuild.Enabled || e.cfg.Backend != config.BackendLocal {
		auto = "no nightly rebuild here: update the image before 30 days"
	}
	return checkPass("%s; each job's runner updates itself first (about a minute) until the image is rebuilt; %s", behind, auto)
}

// checkRedelivery finds the webhook (github.hook_id, or its URL's path
// server.webhook_path) and reads its recent deliveries: what the daemon
// needs to redeliver what failed while it was down. A missing permission is
// a warning: everything else works, and the detail says what it costs.
func checkRedelivery(ctx context.Context, e *doctorEnv) checkResult {
	h, err := e.gh.FindHook(ctx, e.cfg.GitHub.HookID, e.cfg.Server.WebhookPath)
	if err == nil {
		var ds []ghapi.HookDelivery
		ds, _, err = e.gh.HookDeliveries(ctx, h, 0, time.Now().Add(-upkeep.DefaultMaxAge), 100)
		if err == nil {
			return hookVerdict(h, ds)
		}
	}
	var ae *ghapi.APIError
	switch {
	case errors.Is(err, ghapi.ErrHookAccess):
		fix := "grant the webhooks permission (README: \"GitHub permissions\")"
		if errors.As(err, &ae) && ae.Fix != "" {
			fix = ae.Fix
		}
		return checkWarn(fix, "cannot read the webhooks of %s (%s): %s", e.githubScope(), oneLineErr(err), upkeep.Cost)
	case errors.Is(err, ghapi.ErrHookAmbiguous):
		return checkWarn("set github.hook_id to this host's webhook (its ID is in the hook's settings URL)", "%s", oneLineErr(err))
	case errors.Is(err, ghapi.ErrHookNotFound):
		return checkWarn("add the organization webhook (README: Quick start, step 4) or set github.hook_id to its ID",
			"%s: failed deliveries cannot be redelivered", oneLineErr(err))
	}
	return checkWarn("run tarty doctor again; "+githubPermissions, "reading the webhook: %s", oneLineErr(err))
}

func hookVerdict(h ghapi.Hook, ds []ghapi.HookDelivery) checkResult {
	where := fmt.Sprintf("webhook %d of %s (%s)", h.ID, h.Where(), safeURL(h.URL))
	switch {
	case !h.Active:
		return checkWarn("activate it in the webhook's settings", "%s is inactive: GitHub sends Tarty nothing", where)
	case !slices.Contains(h.Events, "workflow_job") && !slices.Contains(h.Events, "*"):
		return checkWarn("tick \"Workflow jobs\" in the webhook's events", "%s does not send workflow_job events", where)
	}
	ok := map[string]bool{}
	for _, d := range ds {
		if d.OK() {
			ok[d.GUID] = true
		}
	}
	failed := map[string]bool{}
	for _, d := range ds {
		if !d.OK() && !ok[d.GUID] && d.Event == "workflow_job" {
			failed[d.GUID] = true
		}
	}
	return checkPass("%s: %d of its %d latest deliveries (3 days) failed and never got through; the daemon asks GitHub to redeliver such ones at start and after a gap (redelivering needs the webhooks permission read and write, which this check cannot test without redelivering)",
		where, len(failed), len(ds))
}

// safeURL is a payload URL without credentials or query.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
