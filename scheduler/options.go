package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults for zero Options fields (DESIGN.md sections 2 and 3).
const (
	DefaultBootTimeout       = 5 * time.Minute
	DefaultIdleTimeout       = 15 * time.Minute
	DefaultMaxLifetime       = 6 * time.Hour
	DefaultReconcileInterval = 60 * time.Second
	DefaultWorkDir           = "~/actions-runner"
	DefaultShutdownCommand   = "sudo -n shutdown -h now"

	// DefaultJobDoneGrace is how long a VM may keep running after its job
	// completed, or its registration vanished, before Tarty stops it from the
	// host: the guest normally powers itself off within seconds.
	DefaultJobDoneGrace = 2 * time.Minute
	// DefaultAdoptedCheck is how often VMs adopted after a restart, whose
	// `tart run` is not Tarty's child, are looked up to see whether they stopped.
	DefaultAdoptedCheck = 15 * time.Second
	// DefaultDrainTimeout bounds the shutdown: booting and idle VMs are torn
	// down within it, and the daemon exits even if one hangs.
	DefaultDrainTimeout = 25 * time.Second
)

// Options configure a Scheduler. cmd/tarty fills them from the config; the
// scheduler never sees the config itself.
type Options struct {
	// Prefix is runners.name_prefix: every VM and runner Tarty owns is
	// "<Prefix>-<8 hex>"; it never touches a name without it.
	Prefix string
	// Image is images.runner, the image runner VMs are made from.
	Image string
	// Labels are github.labels: a job is demand only when its runs-on labels
	// match (tarty.LabelMatcher).
	Labels []string

	Max  int // runners.max: slots (the backend's capacity may be lower)
	Warm int // runners.warm: runners kept listening with no demand

	BootTimeout time.Duration // clone to runner listening
	IdleTimeout time.Duration // listening with no job and no demand it could serve
	MaxLifetime time.Duration // hard cap from clone

	// WorkDir is runners.work_dir in the guest, where run.sh lives.
	WorkDir string
	// ShutdownCommand runs in the guest after the runner exits, so that the VM
	// powers off and `tart run` returns.
	ShutdownCommand string

	ReconcileInterval time.Duration
	JobDoneGrace      time.Duration
	AdoptedCheck      time.Duration
	DrainTimeout      time.Duration

	// Rebuild configures the nightly rebuild.
	Rebuild RebuildOptions
	// RebuildOnly runs no runners and polls nothing: `tarty rebuild` and
	// `tarty rollback` with no daemon use the loop only for its budget.
	RebuildOnly bool

	// OnMissedJob is called (from the owner goroutine; it must not block)
	// when the poller finds a queued job no webhook announced: a sign that
	// deliveries failed, worth asking GitHub to redeliver.
	OnMissedJob func()
	// OnRunnerVersion receives the actions runner version found in an image
	// (the runner image, learnt from a runner VM once per image, or a build
	// before its promote). It may be called from any goroutine.
	OnRunnerVersion func(image, version string)

	// Now is the clock; time.Now when nil. Timers use the time package, so a
	// testing/synctest bubble simulates both.
	Now func() time.Time
	// NewName returns a fresh "<8 hex>" suffix; crypto/rand when nil.
	NewName func() string
}

func (o *Options) normalize() error {
	var errs []error
	o.Prefix = strings.TrimSpace(o.Prefix)
	if o.Prefix == "" {
		errs = append(errs, errors.New("name prefix is required"))
	}
	if o.Image == "" {
		errs = append(errs, errors.New("runner image is required"))
	}
	if len(o.Labels) == 0 {
		errs = append(errs, errors.New("at least one label is required"))
	}
	if o.Max < 1 {
		errs = append(errs, fmt.Errorf("max runners %d: want at least 1", o.Max))
	}
	if o.Warm < 0 || o.Warm > o.Max {
		errs = append(errs, fmt.Errorf("warm runners %d: want 0..%d", o.Warm, o.Max))
	}
	setDefault(&o.BootTimeout, DefaultBootTimeout)
	setDefault(&o.IdleTimeout, DefaultIdleTimeout)
	setDefault(&o.MaxLifetime, DefaultMaxLifetime)
	setDefault(&o.ReconcileInterval, DefaultReconcileInterval)
	setDefault(&o.JobDoneGrace, DefaultJobDoneGrace)
	setDefault(&o.AdoptedCheck, DefaultAdoptedCheck)
	setDefault(&o.DrainTimeout, DefaultDrainTimeout)
	if o.WorkDir == "" {
		o.WorkDir = DefaultWorkDir
	}
	if o.ShutdownCommand == "" {
		o.ShutdownCommand = DefaultShutdownCommand
	}
	o.Rebuild.normalize()
	if o.Rebuild.Enabled && (o.Rebuild.Base == "" || o.Rebuild.Command == "") {
		errs = append(errs, errors.New("the nightly rebuild needs a base image and a command"))
	}
	if o.Rebuild.Hour < 0 || o.Rebuild.Hour > 23 {
		errs = append(errs, fmt.Errorf("rebuild hour %d: want 0..23", o.Rebuild.Hour))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewName == nil {
		o.NewName = randomSuffix
	}
	return errors.Join(errs...)
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}
