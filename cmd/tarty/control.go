package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tartyci/tarty/config"
	"github.com/tartyci/tarty/scheduler"
)

// cmdRebuild asks the daemon for a rebuild; with no daemon it rebuilds
// directly, inside the same budget.
func cmdRebuild(ctx context.Context, inv *invocation) int {
	return control(ctx, inv, "/rebuild", "rebuild requested: `tarty status` shows its progress, the daemon's log its output",
		func(ctx context.Context, cfg *config.Config) int { return offlineRebuild(ctx, inv, cfg, false) })
}

// cmdRollback asks the daemon to swap <runner>-previous back; with no daemon
// it does it directly.
func cmdRollback(ctx context.Context, inv *invocation) int {
	return control(ctx, inv, "/rollback", "rolled back: the previous runner image is the runner image again",
		func(ctx context.Context, cfg *config.Config) int { return offlineRebuild(ctx, inv, cfg, true) })
}

// control posts a control request to the daemon, or runs offline when no
// daemon answers.
func control(ctx context.Context, inv *invocation, path, done string, offline func(context.Context, *config.Config) int) int {
	cfg, code := loadConfig(inv)
	if cfg == nil {
		return code
	}
	err := newAdminClient(cfg.Server.AdminListen).post(ctx, path)
	var ref *refusedError
	switch {
	case err == nil:
		fmt.Fprintln(inv.stdout, done)
		return exitOK
	case errors.As(err, &ref):
		fmt.Fprintf(inv.stderr, "tarty: refused: %s\n", ref.reason)
		return exitFailure
	case errors.Is(err, errNoDaemon):
		fmt.Fprintf(inv.stderr, "no daemon answers on %s: working directly\n", cfg.Server.AdminListen)
		return offline(ctx, cfg)
	default:
		fmt.Fprintf(inv.stderr, "tarty: %v\n", err)
		return exitFailure
	}
}

// offlineRebuild runs the scheduler with no runners, for its budget and its
// rebuild, and waits for the rebuild (or rollback) to end.
func offlineRebuild(ctx context.Context, inv *invocation, cfg *config.Config, rollback bool) int {
	log := newLogger(cfg.Log, inv.stderr)
	ver, _ := buildVersion()
	d, err := newDaemon(cfg, log, ver, modeRebuildOnly)
	if err != nil {
		log.Error().Err(err).Msg("tarty cannot start")
		return exitFailure
	}
	if err := d.checkBackend(ctx); err != nil {
		log.Error().Err(err).Msg("tarty cannot start")
		return exitFailure
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- d.sched.Run(runCtx) }()
	defer func() {
		stop()
		<-done
	}()
	if rollback {
		if err := d.sched.Rollback(ctx); err != nil {
			fmt.Fprintf(inv.stderr, "tarty rollback: %v\n", err)
			return exitFailure
		}
		fmt.Fprintln(inv.stdout, "rolled back: the previous runner image is the runner image again")
		return exitOK
	}
	if err := d.sched.Rebuild(ctx); err != nil {
		fmt.Fprintf(inv.stderr, "tarty rebuild: %v\n", err)
		return exitFailure
	}
	for {
		st, err := d.sched.Status(ctx)
		if err != nil {
			fmt.Fprintf(inv.stderr, "tarty rebuild: %v\n", err)
			return exitFailure
		}
		if rb := st.Rebuild; rb.Since == nil && rb.LastAt != nil {
			if rb.LastResult != scheduler.ResultSuccess {
				fmt.Fprintf(inv.stderr, "tarty rebuild: %s\n", rb.LastResult)
				return exitFailure
			}
			fmt.Fprintln(inv.stdout, "rebuilt: a new runner image is in place; the old one is "+cfg.Images.Runner+"-previous")
			return exitOK
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(inv.stderr, "tarty rebuild: interrupted; the build VM is deleted and the runner image left as it was")
			return exitFailure
		case <-time.After(time.Second):
		}
	}
}

// cmdReconcile asks the daemon to poll now; with no daemon it syncs once.
func cmdReconcile(ctx context.Context, inv *invocation) int {
	return control(ctx, inv, "/reconcile", "reconcile requested: the daemon polls GitHub now",
		func(ctx context.Context, cfg *config.Config) int { return oneShotSync(ctx, inv, cfg) })
}
