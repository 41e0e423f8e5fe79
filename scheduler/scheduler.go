// Package scheduler is Tarty's brain: demand (a set of job IDs), the VM budget
// (slots), the runner lifecycle, the reconciliation poller, the watchdogs and
// restart safety. One goroutine (Run) owns all of it; webhooks, poll results,
// VM workers, timers and CLI requests reach it as events. Its decisions come
// from a pure function of the time and the state (decide.go), and the state
// lives in core, which does no I/O, so the same rules run in simulated time
// (replay.go) and in table tests. It reaches tart, SSH and GitHub only
// through the ports in ports.go. See docs/ARCHITECTURE.md.
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
)

// Deps are the scheduler's ports and plumbing.
type Deps struct {
	Backend Backend
	Guest   Guest
	Runners Runners
	Jobs    Jobs
	// Images and HostKeys serve the nightly rebuild; without them (a backend
	// whose images live in a registry) rebuild and rollback are refused.
	Images   Images
	HostKeys HostKeys
	// Events carries job events from the webhook. Its owner closes it, or
	// not: Run stops reading it once its context is done.
	Events <-chan tarty.JobEvent
	// Registerer gets the scheduler's metrics; nil means a private registry.
	Registerer prometheus.Registerer
	Logger     zerolog.Logger
}

// Scheduler runs the budget. Create it with New, then call Run once.
type Scheduler struct {
	opts     Options
	backend  Backend
	guest    Guest
	runners  Runners
	jobs     Jobs
	images   Images
	hostKeys HostKeys
	events   <-chan tarty.JobEvent
	log      zerolog.Logger
	met      *metrics

	core     *core                      // owned by the Run goroutine
	launches map[int]context.CancelFunc // owned by the Run goroutine

	results  chan func(now time.Time) // worker results, applied by Run
	requests chan request
	done     chan struct{} // closed when Run returns
	workers  sync.WaitGroup
	base     context.Context // workers' context, cancelled when Run returns

	// The rebuild worker's requests waiting for the state to allow them.
	rbReserveReply chan any
	rbHoldReply    chan any
	rbCancel       context.CancelFunc // cancels a running rebuild at shutdown

	rateRemaining atomic.Int64
	started       atomic.Bool
	// versionKnown is set once the runner image's runner version was read
	// (and cleared when a promote or rollback replaces the image).
	versionKnown atomic.Bool
	runnerStatus atomic.Pointer[RunnerStatus]
	builtVersion string // the last build's runner version; the rebuild worker's only
}

// New checks opts and deps and builds a Scheduler.
func New(opts Options, deps Deps) (*Scheduler, error) {
	err := opts.normalize()
	if deps.Backend == nil || deps.Guest == nil || deps.Runners == nil || deps.Jobs == nil {
		err = errors.Join(err, errors.New("backend, guest, runners and jobs are required"))
	}
	if err != nil {
		return nil, fmt.Errorf("scheduler options: %w", err)
	}
	reg := deps.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	met, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Scheduler{
		opts:     opts,
		backend:  deps.Backend,
		guest:    deps.Guest,
		runners:  deps.Runners,
		jobs:     deps.Jobs,
		images:   deps.Images,
		hostKeys: deps.HostKeys,
		events:   deps.Events,
		log:      deps.Logger.With().Str("component", "scheduler").Logger(),
		met:      met,
		launches: map[int]context.CancelFunc{},
		results:  make(chan func(time.Time), 64),
		requests: make(chan request),
		done:     make(chan struct{}),
	}
	s.rateRemaining.Store(-1)
	obs := met.observer()
	if opts.OnMissedJob != nil {
		count := obs.missedJob
		obs.missedJob = func() {
			count()
			opts.OnMissedJob()
		}
	}
	s.core = newCore(opts, s.log, obs)
	if s.images != nil && s.hostKeys != nil && opts.Rebuild.Enabled && !opts.RebuildOnly {
		s.core.rebuild.enabled = true
		s.core.rebuild.nextAt = nextRebuild(opts.Now(), opts.Rebuild.Hour, opts.Rebuild.Location)
	}
	if s.hostKeys == nil {
		s.images = nil // a rebuild without host keys to move would strand the runner image's key
	}
	return s, nil
}

// ObserveRateLimit records GitHub's X-RateLimit-Remaining (for /status and
// the metric). Safe from any goroutine.
func (s *Scheduler) ObserveRateLimit(remaining int) {
	s.rateRemaining.Store(int64(remaining))
	s.met.rateLimit.Set(float64(remaining))
}

// Run owns the scheduler until ctx is done, then drains: it launches nothing
// more, tears down booting and idle VMs and their runners, leaves VMs running
// a job alive (the next start adopts them) and returns within the drain
// timeout. It returns nil after a drain.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("scheduler: Run called twice")
	}
	// Workers outlive ctx during the drain; they are cancelled at the end,
	// after done is closed so that none blocks reporting to a loop that left.
	base, cancelWorkers := context.WithCancel(context.WithoutCancel(ctx))
	s.base = base
	defer func() {
		close(s.done)
		cancelWorkers()
		s.workers.Wait()
	}()

	s.spawn(func() { s.recoverVMs(base) })
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var drainTimeout <-chan time.Time
	stop := ctx.Done()
	events := s.events

	for {
		now := s.opts.Now()
		acts := s.core.step(now)
		s.execute(base, acts)
		s.answerRebuild()
		s.met.update(s.core)
		if s.core.draining && s.drained() {
			s.log.Info().Msg("scheduler drained")
			return nil
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if next := s.core.nextDeadline(now); !next.IsZero() {
			timer.Reset(next.Sub(now))
		}

		select {
		case <-stop:
			stop = nil
			s.log.Info().Msg("scheduler stopping: launching nothing more, tearing down booting and idle VMs")
			s.core.draining = true
			if s.rbCancel != nil {
				s.rbCancel() // the build VM is deleted; the runner image stays as it was
			}
			drainTimeout = time.After(s.opts.DrainTimeout)
		case <-drainTimeout:
			s.log.Warn().Msg("scheduler drain timed out; exiting with work in flight")
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			s.onJob(ev)
		case apply := <-s.results:
			apply(s.opts.Now())
		case r := <-s.requests:
			s.handle(r)
		case <-timer.C:
		}
	}
}

// drained reports whether nothing is left to wait for: no launch or tear-down
// in flight and no idle runner.
func (s *Scheduler) drained() bool {
	for _, sl := range s.core.slots {
		switch sl.state {
		case SlotLaunching, SlotStopping, SlotIdle:
			return false
		}
	}
	for _, r := range s.core.removals {
		if r.inFlight {
			return false
		}
	}
	return len(s.launches) == 0 && !s.core.rebuild.running
}

func (s *Scheduler) onJob(ev tarty.JobEvent) {
	now := s.opts.Now()
	log := s.log.With().Int64("job_id", ev.JobID).Int64("run_id", ev.RunID).Str("repo", ev.Repository).
		Str("action", string(ev.Action)).Str("source", string(ev.Source)).Logger()
	if s.core.onJob(now, ev) {
		log.Info().Strs("labels", ev.Labels).Msg("job queued")
	} else if ev.RunnerName != "" {
		log.Debug().Str("runner", ev.RunnerName).Msg("job event")
	}
}

// send hands a worker's result to the Run goroutine; after Run returned it is
// dropped.
func (s *Scheduler) send(apply func(now time.Time)) {
	select {
	case s.results <- apply:
	case <-s.done:
	}
}

func (s *Scheduler) spawn(f func()) {
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		f()
	}()
}

// execute starts the workers for a decision's actions.
func (s *Scheduler) execute(base context.Context, acts []Action) {
	for _, a := range acts {
		log := s.log.With().Int("slot", a.Slot).Str("vm", a.VM).Logger()
		switch a.Kind {
		case ActLaunch:
			ctx, cancel := context.WithCancel(base)
			s.launches[a.Slot] = cancel
			log.Info().Msg("launching runner VM")
			s.spawn(func() { s.launch(ctx, a.Slot, a.VM) })
		case ActCancel:
			log.Info().Str("reason", a.Reason).Msg("cancelling launch")
			if cancel, ok := s.launches[a.Slot]; ok {
				cancel()
			}
		case ActTeardown:
			log.Info().Str("reason", a.Reason).Int64("runner_id", a.RunnerID).Msg("tearing down runner VM")
			s.spawn(func() { s.teardown(base, a.Slot, a.VM) })
		case ActReserve:
			log.Info().Msg("slot reserved for the nightly rebuild")
		case ActRemoveRunner:
			s.spawn(func() { s.removeRunner(base, a.RunnerID, a.VM) })
		case ActPoll:
			s.spawn(func() { s.poll(base) })
		case ActCheckVMs:
			s.spawn(func() { s.checkVMs(base) })
		case ActRebuild:
			s.startRebuildWorker(a.Reason)
		}
	}
}

// randomSuffix is 8 lower-case hex digits from crypto/rand.
func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics on failure)
	return hex.EncodeToString(b[:])
}
