package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/upkeep"
)

// upkeepParts are the runner version guard and the webhook redelivery
// (package upkeep), beside the scheduler.
type upkeepParts struct {
	store     *upkeep.Store
	guard     *upkeep.Guard
	redeliver *upkeep.Redeliverer // nil unless the daemon runs (modeRun)
}

// newUpkeep builds the guard (in every mode: a rebuild without a daemon
// still records the new image's runner) and, for the daemon, the
// redelivery. It needs d.gh and d.sched; it starts nothing.
func newUpkeep(d *daemon, mode daemonMode) (*upkeepParts, error) {
	cfg := d.cfg
	store, err := upkeep.OpenStore(filepath.Join(cfg.StateDir, upkeep.StateFile), d.log)
	if err != nil {
		return nil, err
	}
	met, err := upkeep.NewMetrics(d.reg)
	if err != nil {
		return nil, err
	}
	u := &upkeepParts{store: store}
	u.guard = upkeep.NewGuard(upkeep.GuardOptions{
		Image: cfg.Images.Runner, GitHub: d.gh, Scheduler: d.sched, Store: store,
		MaxAge: cfg.Rebuild.RunnerMaxAge, RebuildEnabled: cfg.Rebuild.Enabled && d.tart != nil,
		Metrics: met, Logger: d.log,
	})
	if mode == modeRun {
		u.redeliver = upkeep.NewRedeliverer(upkeep.RedeliverOptions{
			GitHub: d.gh, HookID: cfg.GitHub.HookID, Path: cfg.Server.WebhookPath, Store: store,
			Metrics: met, Logger: d.log,
		})
	}
	return u, nil
}

// onRunnerVersion is the scheduler's OnRunnerVersion.
func (d *daemon) onRunnerVersion(image, version string) {
	if d.upkeep != nil {
		d.upkeep.guard.ObserveVersion(image, version)
	}
}

// onMissedJob is the scheduler's OnMissedJob (from its owner goroutine:
// Gap never blocks).
func (d *daemon) onMissedJob() {
	if d.upkeep != nil && d.upkeep.redeliver != nil {
		d.upkeep.redeliver.Gap()
	}
}

// start runs the guard and the redelivery until ctx ends; wait returns once
// they stopped. Called once both listeners are up, so that the first
// redeliveries find the webhook listening.
func (u *upkeepParts) start(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	if u == nil {
		return wg.Wait
	}
	wg.Go(func() { _ = u.guard.Run(ctx) })
	if u.redeliver != nil {
		wg.Go(func() { _ = u.redeliver.Run(ctx) })
	}
	return wg.Wait
}

// printRunnerStatus writes the runner image's actions runner against the
// latest, for `tarty status`.
func printRunnerStatus(w io.Writer, st scheduler.Status) {
	r := st.Runner
	if r.CheckedAt == nil && r.ImageVersion == "" {
		return
	}
	line := "Actions runner in the image: " + dash(r.ImageVersion)
	if r.Latest != "" {
		line += ", latest " + r.Latest
	}
	switch {
	case r.BehindDays > 0:
		line += fmt.Sprintf(" (%.1f days behind", r.BehindDays)
		days := func(d time.Duration) float64 { return d.Hours() / 24 }
		if r.BehindDays >= days(upkeep.FailBehind) {
			line += ": GitHub stops sending jobs to a runner this old"
		} else if r.BehindDays >= days(upkeep.WarnBehind) {
			line += fmt.Sprintf(": rebuild the image before %.0f", days(upkeep.FailBehind))
		}
		line += ")"
	case r.ImageVersion != "" && r.Latest != "" && ghapi.CompareRunnerVersions(r.ImageVersion, r.Latest) >= 0:
		line += " (current)"
	}
	fmt.Fprintln(w, line)
	if r.Note != "" {
		fmt.Fprintf(w, "  %s\n", r.Note)
	}
}
