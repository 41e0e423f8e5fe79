package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/admin"
	"github.com/tartyci/tarty/config"
	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/orchard"
	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/sshexec"
	"github.com/tartyci/tarty/tartvm"
	"github.com/tartyci/tarty/webhook"
)

// eventQueue is how many job events may wait for the scheduler; beyond it
// the webhook answers 503 and the poller finds the job.
const eventQueue = 1024

// daemon is everything `tarty run` wires together.
type daemon struct {
	cfg     *config.Config
	log     zerolog.Logger
	reg     *prometheus.Registry
	tart    *tartvm.Client // nil with backend: orchard
	backend scheduler.Backend
	orchard *orchard.Backend // set with backend: orchard
	gh      *ghapi.Client
	sched   *scheduler.Scheduler
	hook    *webhook.Server
	admin   *admin.Server
	upkeep  *upkeepParts // runner version guard, webhook redelivery (upkeep.go)
}

// statePaths are Tarty's own files under state_dir.
type statePaths struct {
	dir        string
	knownHosts string
	tartLogs   string
}

func prepareState(dir string) (statePaths, error) {
	p := statePathsIn(dir)
	for _, d := range []string{p.dir, p.tartLogs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return p, fmt.Errorf("state directory: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return p, fmt.Errorf("state directory: %w", err)
		}
	}
	return p, nil
}

// daemonMode says what the parts are built for.
type daemonMode int

const (
	modeRun         daemonMode = iota // `tarty run`
	modeRebuildOnly                   // `tarty rebuild`/`rollback` with no daemon: no runners, no listeners
)

// newDaemon builds every part from the config; it starts nothing.
func newDaemon(cfg *config.Config, log zerolog.Logger, version string, mode daemonMode) (*daemon, error) {
	d := &daemon{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	paths, err := prepareState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	prefix := cfg.Runners.NamePrefix

	var dial sshexec.DialFunc
	if cfg.Backend == config.BackendOrchard {
		if d.orchard, err = newOrchardBackend(cfg, log, version); err != nil {
			return nil, err
		}
		d.backend, dial = d.orchard, d.orchard.Dial
		registerOrchardMetrics(d.reg, d.orchard)
	} else {
		d.tart, d.backend = newTart(cfg, paths.tartLogs, log)
	}

	guest, err := newGuest(cfg, paths.knownHosts, dial, log)
	if err != nil {
		return nil, err
	}
	// The nightly rebuild and rollback need local images: an Orchard fleet's
	// live in a registry, so the scheduler refuses them with that reason.
	var images scheduler.Images
	var hostKeys scheduler.HostKeys
	if d.tart != nil {
		images, hostKeys = tartvm.NewImages(d.tart), guest
	}

	d.gh, err = newGitHub(cfg, log, version, func(n int) {
		if d.sched != nil {
			d.sched.ObserveRateLimit(n)
		}
	})
	if err != nil {
		return nil, err
	}

	events := make(chan tarty.JobEvent, eventQueue)
	d.sched, err = scheduler.New(scheduler.Options{
		Prefix: prefix, Image: cfg.Images.Runner, Labels: cfg.GitHub.Labels,
		Max: cfg.Runners.Max, Warm: cfg.Runners.Warm,
		OnRunnerVersion: d.onRunnerVersion, OnMissedJob: d.onMissedJob,
		BootTimeout: cfg.Runners.BootTimeout, IdleTimeout: cfg.Runners.IdleTimeout, MaxLifetime: cfg.Runners.MaxLifetime,
		WorkDir: cfg.Runners.WorkDir, ShutdownCommand: cfg.Runners.ShutdownCommand,
		ReconcileInterval: cfg.Reconcile.Interval,
		Rebuild: scheduler.RebuildOptions{
			Enabled: cfg.Rebuild.Enabled && d.tart != nil, Base: cfg.Images.Base, Command: cfg.Rebuild.Command,
			VerifyCommand: cfg.Rebuild.VerifyCommand, Hour: cfg.Rebuild.Hour, Timeout: cfg.Rebuild.Timeout,
		},
		RebuildOnly: mode == modeRebuildOnly,
	}, scheduler.Deps{Backend: d.backend, Guest: guest, Runners: d.gh, Jobs: d.gh, Events: events,
		Images: images, HostKeys: hostKeys, Registerer: d.reg, Logger: log})
	if err != nil {
		return nil, err
	}
	if d.upkeep, err = newUpkeep(d, mode); err != nil {
		return nil, err
	}
	if mode == modeRebuildOnly {
		return d, nil
	}

	d.hook, err = webhook.New(webhook.Options{
		Listen: cfg.Server.Listen, Path: cfg.Server.WebhookPath, Secret: []byte(cfg.GitHub.WebhookSecret.Reveal()),
		Organization: cfg.GitHub.Organization, Repository: cfg.GitHub.Repository,
		Matcher: tarty.NewLabelMatcher(cfg.GitHub.Labels), RunnerPrefix: prefix, Events: events,
		Serves: d.gh.Serves, Registerer: d.reg, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	d.admin, err = admin.New(admin.Options{Listen: cfg.Server.AdminListen, Daemon: d.sched, Controls: d.sched,
		Gatherer: d.reg, Logger: log})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// newOrchardBackend builds the Orchard backend from the orchard section:
// the controller's certificate pinned, our own User-Agent.
func newOrchardBackend(cfg *config.Config, log zerolog.Logger, version string) (*orchard.Backend, error) {
	o := cfg.Orchard
	c, err := orchard.NewClient(orchard.Options{URL: o.URL, ServiceAccount: o.ServiceAccount, Token: o.Token.Reveal(),
		BootstrapToken: o.BootstrapToken.Reveal(), CAFile: o.CAFile, UserAgent: "tarty/" + version, Logger: log})
	if err != nil {
		return nil, err
	}
	return orchard.NewBackend(c, orchard.BackendOptions{Prefix: cfg.Runners.NamePrefix, WorkerLabels: o.WorkerLabels,
		CPU: cfg.Runners.CPU, MemoryMB: cfg.Runners.MemoryMB, Softnet: cfg.Runners.Softnet, Logger: log}), nil
}

// registerOrchardMetrics exports the Orchard backend's counters.
func registerOrchardMetrics(reg prometheus.Registerer, b *orchard.Backend) {
	for _, m := range []struct {
		name, help string
		get        func(orchard.BackendStats) int
	}{
		{"tarty_orchard_creates_refused_total", "VM creates refused because no matching worker had a free slot.",
			func(s orchard.BackendStats) int { return s.Refused }},
		{"tarty_orchard_vms_unplaced_total", "VMs deleted because no worker took them within the placement bound.",
			func(s orchard.BackendStats) int { return s.Unplaced }},
		{"tarty_orchard_vms_lost_total", "VMs that failed with their worker (offline, restarted or deleted).",
			func(s orchard.BackendStats) int { return s.Lost }},
		{"tarty_orchard_guest_exits_total", "Runner VMs whose guest powered off (the normal end of a job).",
			func(s orchard.BackendStats) int { return s.Exited }},
	} {
		get := m.get
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help},
			func() float64 { return float64(get(b.Stats())) }))
	}
}

// checkOrchard refuses a controller that rejects Tarty's account or lacks a
// role it needs; one that does not answer yet is only logged (start-up
// recovery retries until it does).
func (d *daemon) checkOrchard(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := d.orchard.Client()
	info, err := c.Check(ctx)
	switch {
	case errors.Is(err, orchard.ErrUnauthorized), errors.Is(err, orchard.ErrMissingRole), errors.Is(err, orchard.ErrForbidden):
		return fmt.Errorf("the Orchard controller at %s refuses service account %s (it needs compute:read and compute:write): %w",
			c.URL(), c.ServiceAccount(), err)
	case err != nil:
		d.log.Warn().Err(err).Str("controller", c.URL()).Msg("the Orchard controller does not answer yet")
		return nil
	}
	d.log.Info().Str("controller", c.URL()).Str("orchard_version", info.Version).Str("account", c.ServiceAccount()).
		Msg("Orchard controller found")
	return nil
}

// checkBackend refuses a tart that is missing or older than every flag Tarty
// uses; with backend: orchard it checks the controller instead.
func (d *daemon) checkBackend(ctx context.Context) error {
	if d.tart == nil {
		if d.orchard == nil {
			return nil
		}
		return d.checkOrchard(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := d.tart.CheckVersion(ctx)
	if err != nil {
		return err
	}
	d.log.Info().Str("tart_version", v).Str("tart", d.cfg.Tart.Path).Msg("tart found")
	return nil
}

// run serves until ctx is done, then stops in order: the webhook first (no
// new work), then the scheduler's drain, then the admin listener.
func (d *daemon) run(ctx context.Context) error {
	if err := d.checkBackend(ctx); err != nil {
		return err
	}
	base := context.WithoutCancel(ctx)
	hookCtx, stopHook := context.WithCancel(base)
	schedCtx, stopSched := context.WithCancel(base)
	adminCtx, stopAdmin := context.WithCancel(base)
	defer stopHook()
	defer stopSched()
	defer stopAdmin()

	hookDone := make(chan error, 1)
	schedDone := make(chan error, 1)
	adminDone := make(chan error, 1)
	go func() { hookDone <- d.hook.Run(hookCtx) }()
	go func() { adminDone <- d.admin.Run(adminCtx) }()

	// Both listeners must be up before the scheduler starts acting.
	for _, l := range []struct {
		ready <-chan struct{}
		done  chan error
	}{{d.hook.Ready(), hookDone}, {d.admin.Ready(), adminDone}} {
		select {
		case <-l.ready:
		case err := <-l.done:
			return errors.Join(err, d.stopListeners(stopHook, hookDone, stopAdmin, adminDone))
		}
	}
	go func() { schedDone <- d.sched.Run(schedCtx) }()
	upkeepDone := d.upkeep.start(schedCtx)
	if d.tart != nil {
		go d.pruneTartLogs(schedCtx)
	}
	d.log.Info().Str("webhook", d.hook.Addr().String()).Str("admin", d.admin.Addr().String()).
		Str("prefix", d.cfg.Runners.NamePrefix).Int("max", d.cfg.Runners.Max).Msg("tarty running")

	var failed error
	select {
	case <-ctx.Done():
		d.log.Info().Msg("signal received: stopping (a second signal exits at once)")
	case err := <-hookDone:
		failed = fmt.Errorf("webhook listener stopped: %w", err)
		hookDone <- nil
	case err := <-adminDone:
		failed = fmt.Errorf("admin listener stopped: %w", err)
		adminDone <- nil
	case err := <-schedDone:
		failed = fmt.Errorf("scheduler stopped: %w", err)
		schedDone <- nil
	}
	stopHook()
	hookErr := <-hookDone
	stopSched()
	schedErr := <-schedDone
	upkeepDone()
	stopAdmin()
	adminErr := <-adminDone
	if failed != nil {
		return failed
	}
	return errors.Join(hookErr, schedErr, adminErr)
}

func (d *daemon) stopListeners(stopHook context.CancelFunc, hookDone chan error, stopAdmin context.CancelFunc, adminDone chan error) error {
	stopHook()
	stopAdmin()
	return errors.Join(<-hookDone, <-adminDone)
}

func cmdRun(ctx context.Context, inv *invocation) int {
	cfg, code := loadConfig(inv)
	if cfg == nil {
		return code
	}
	log := newLogger(cfg.Log, inv.stderr)
	ver, _ := buildVersion()
	d, err := newDaemon(cfg, log, ver, modeRun)
	if err != nil {
		log.Error().Err(err).Msg("tarty cannot start")
		return exitFailure
	}
	if err := d.run(ctx); err != nil {
		log.Error().Err(err).Msg("tarty stopped with an error")
		return exitFailure
	}
	log.Info().Msg("tarty stopped")
	return exitOK
}

// tartLogKeep is how long `tart run` logs stay in state_dir/tart-logs: long
// enough to read a failed VM's log the next week.
const tartLogKeep = 7 * 24 * time.Hour

// pruneTartLogs deletes old `tart run` logs at start and then hourly.
func (d *daemon) pruneTartLogs(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := d.tart.PruneLogs(tartLogKeep, time.Now()); err != nil {
			d.log.Warn().Err(err).Msg("pruning tart run logs")
		} else if n > 0 {
			d.log.Info().Int("deleted", n).Msg("pruned tart run logs older than a week")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
