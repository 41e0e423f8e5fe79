package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tartyci/tarty"
)

// Bounds of the launch steps. The whole launch is bounded by boot_timeout,
// enforced by the owner loop cancelling it.
const (
	addressWait    = 30 * time.Second // one `tart ip --wait`
	addressRetry   = 2 * time.Second  // between failed address look-ups while the VM runs
	cleanupTimeout = 3 * time.Minute  // tearing down what a failed launch made
)

var errVMExited = errors.New("the VM stopped while booting")

// launch makes, boots and registers one runner VM and reports the outcome to
// the owner loop: launched (then, later, the VM's exit), or failed after
// cleaning up what it made. It is cancelled by the owner loop at boot_timeout
// or shutdown.
func (s *Scheduler) launch(ctx context.Context, slot int, vm string) {
	log := s.log.With().Int("slot", slot).Str("vm", vm).Logger()
	w := &vmWatch{}
	stage, runnerID, err := s.bringUp(ctx, vm, w)
	if err == nil {
		w.launched(func() {
			s.send(func(now time.Time) {
				delete(s.launches, slot)
				s.core.onLaunched(now, slot, vm, runnerID)
			})
		}, func(exitErr error) { s.reportExit(slot, vm, exitErr) })
		log.Info().Int64("runner_id", runnerID).Msg("runner started in its VM")
		return
	}

	if ctx.Err() != nil && !errors.Is(err, errVMExited) {
		err = fmt.Errorf("%s: %w", stage, context.Cause(ctx))
	}
	log.Warn().Err(err).Str("stage", stage).Msg("launch failed; cleaning up")
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if stage != "create" {
		if serr := s.backend.Stop(cctx, vm); serr != nil {
			log.Warn().Err(serr).Msg("stopping the VM of a failed launch")
		}
		w.wait(cctx)
	}
	if derr := s.backend.Delete(cctx, vm); derr != nil {
		// The next sweep deletes it: it carries the prefix and no slot has it.
		log.Warn().Err(derr).Msg("deleting the VM of a failed launch")
	}
	var capacity *tarty.Capacity
	if tarty.IsVMLimit(err) {
		if c, cerr := s.backend.Capacity(cctx); cerr == nil {
			capacity = &c
		}
	}
	s.send(func(now time.Time) {
		delete(s.launches, slot)
		if sl := s.core.slotAt(slot, vm); sl != nil && runnerID != 0 {
			sl.runnerID = runnerID // removed with the slot's other leftovers
		}
		s.core.onLaunchFailed(now, slot, vm, launchFailure{stage: stage, err: err, capacity: capacity})
	})
}

// bringUp runs the launch steps. It returns the stage that failed, and the
// runner ID as soon as one was registered (so a failure can remove it).
func (s *Scheduler) bringUp(ctx context.Context, vm string, w *vmWatch) (stage string, runnerID int64, err error) {
	image := s.opts.Image
	ctx, release, addr, stage, err := s.bootToSSH(ctx, image, vm, image, 0, w)
	defer release()
	if err != nil {
		return stage, 0, err
	}
	fail := func(stage string, err error) (string, int64, error) {
		return stage, runnerID, exitCause(ctx, err)
	}

	if s.opts.OnRunnerVersion != nil && s.versionKnown.CompareAndSwap(false, true) {
		if v, err := s.runnerVersion(ctx, image, addr); err == nil {
			s.opts.OnRunnerVersion(image, v)
		} else {
			s.versionKnown.Store(false) // try again with the next VM
			s.log.Warn().Err(err).Str("vm", vm).Msg("reading the runner version in the guest")
		}
	}
	// Refuse an image without the runner before registering anything: a
	// missing run.sh would otherwise power the guest off at once, launch after
	// launch.
	if err := s.guest.Run(ctx, image, addr, RunnerCheckCommand(s.opts.WorkDir), nil, nil, nil); err != nil {
		return fail("start", fmt.Errorf("no executable run.sh in %s in image %s: %w", s.opts.WorkDir, image, err))
	}
	id, config, err := s.runners.JITConfig(ctx, vm)
	if err != nil {
		return fail("register", err)
	}
	runnerID = id
	// The JIT config travels on the SSH session's stdin only; the guest hands
	// it to run.sh as ACTIONS_RUNNER_INPUT_JITCONFIG.
	if err := s.guest.Start(ctx, image, addr, runnerCommand(vm, s.opts.WorkDir, s.opts.ShutdownCommand), strings.NewReader(config)); err != nil {
		return fail("start", err)
	}
	return "", runnerID, nil
}

// bootToSSH makes VM name from image, boots it and waits until its guest
// answers SSH (trusting keyImage's host key), within readyWithin when it is
// positive. From the boot on, w follows the VM: the returned context ends,
// with errVMExited as its cause, when the VM stops, so that no step waits on
// a dead guest; release frees it. On failure, stage names the step (create,
// boot, address, ssh) and err says why, the VM's exit when that was the cause.
func (s *Scheduler) bootToSSH(ctx context.Context, image, name, keyImage string, readyWithin time.Duration, w *vmWatch) (
	vmCtx context.Context, release func(), addr, stage string, err error) {
	release = func() {}
	if err := s.backend.Create(ctx, image, name); err != nil {
		return ctx, release, "", "create", err
	}
	exited, err := s.backend.Boot(ctx, name)
	if err != nil {
		return ctx, release, "", "boot", err
	}
	vmCtx, cancel := context.WithCancelCause(ctx)
	release = func() { cancel(nil) }
	w.start(exited, func(exitErr error) {
		cause := errVMExited
		if exitErr != nil {
			cause = fmt.Errorf("%w: %w", errVMExited, exitErr)
		}
		cancel(cause)
	})
	fail := func(stage string, err error) (context.Context, func(), string, string, error) {
		return vmCtx, release, "", stage, exitCause(vmCtx, err)
	}
	rctx, rcancel := vmCtx, context.CancelFunc(func() {})
	if readyWithin > 0 {
		rctx, rcancel = context.WithTimeout(vmCtx, readyWithin)
	}
	defer rcancel()
	if addr, err = s.address(rctx, name); err != nil {
		return fail("address", err)
	}
	if err := s.guest.WaitReady(rctx, keyImage, addr); err != nil {
		return fail("ssh", err)
	}
	return vmCtx, release, addr, "", nil
}

// exitCause is err, unless ctx (from bootToSSH) ended because the VM
// stopped: then the VM's exit is the better explanation.
func exitCause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); errors.Is(c, errVMExited) {
		return c
	}
	return err
}

// address waits for the guest's address, retrying while the VM runs: a fresh
// VM has no DHCP lease for a while, and tart's lease file can be caught
// mid-rewrite.
func (s *Scheduler) address(ctx context.Context, vm string) (string, error) {
	for {
		addr, err := s.backend.Address(ctx, vm, addressWait)
		if err == nil {
			return addr, nil
		}
		if ctx.Err() != nil {
			return "", err
		}
		s.log.Debug().Err(err).Str("vm", vm).Msg("no address yet")
		t := time.NewTimer(addressRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", err
		case <-t.C:
		}
	}
}

// runnerCommand is what the guest runs, detached: the runner with its JIT
// config from stdin in ACTIONS_RUNNER_INPUT_JITCONFIG (the runner reads no
// stdin and removes the variable from its environment), then the power-off.
// The config never appears in a command line. TARTY_RUNNER_NAME (the VM's and
// the runner's name, not a secret) is there for the image's own scripts and
// the shutdown command.
func runnerCommand(name, workDir, shutdown string) string {
	return "export TARTY_RUNNER_NAME=" + shQuote(name) + "; cd " + shellPath(workDir) +
		` && ACTIONS_RUNNER_INPUT_JITCONFIG="$(cat)" ./run.sh; ` + shutdown
}

// shellPath quotes a guest path for the shell, expanding a leading ~/.
func shellPath(p string) string {
	if p == "~" {
		return `"$HOME"`
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return `"$HOME"/` + shQuote(rest)
	}
	return shQuote(p)
}

func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// vmWatch follows one VM's `tart run` channel for its whole life: during the
// launch it cancels the step in progress when the VM stops; once the runner
// is started it reports the exit to the owner loop, always after "launched".
type vmWatch struct {
	mu       sync.Mutex
	ch       <-chan error
	onBoot   func(error) // during the launch
	onExit   func(error) // after it
	isUp     bool
	exited   bool
	exitErr  error
	finished chan struct{}
}

func (w *vmWatch) start(ch <-chan error, onBoot func(error)) {
	w.mu.Lock()
	w.ch, w.onBoot, w.finished = ch, onBoot, make(chan struct{})
	w.mu.Unlock()
	go func() {
		err := <-ch
		w.mu.Lock()
		w.exited, w.exitErr = true, err
		up, onExit, onBoot := w.isUp, w.onExit, w.onBoot
		if up {
			onExit(err)
		}
		close(w.finished)
		w.mu.Unlock()
		if !up {
			onBoot(err)
		}
	}()
}

// launched marks the launch done: report runs now, and onExit when the VM
// stops (at once if it already has).
func (w *vmWatch) launched(report func(), onExit func(error)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.isUp, w.onExit = true, onExit
	report()
	if w.exited {
		onExit(w.exitErr)
	}
}

// wait waits (bounded by ctx) for the VM's `tart run` to return, when one was started.
func (w *vmWatch) wait(ctx context.Context) {
	w.mu.Lock()
	f := w.finished
	w.mu.Unlock()
	if f == nil {
		return
	}
	select {
	case <-f:
	case <-ctx.Done():
	}
}

// reportExit tells the owner loop that a launched VM stopped.
func (s *Scheduler) reportExit(slot int, vm string, err error) {
	ev := s.log.Info()
	if err != nil {
		ev = s.log.Warn().Err(err)
	}
	ev.Int("slot", slot).Str("vm", vm).Msg("VM stopped")
	s.send(func(now time.Time) { s.core.onVMExited(now, slot, vm) })
}

// RunnerCheckCommand succeeds in a guest whose workDir holds an executable
// run.sh: what a launch checks before it registers a runner (and doctor too).
func RunnerCheckCommand(workDir string) string {
	return "test -x " + shellPath(workDir) + "/run.sh"
}

// runnerVersionCommand prints the actions runner's version (e.g. 2.329.0).
func runnerVersionCommand(workDir string) string {
	return "cd " + shellPath(workDir) + " && ./config.sh --version"
}

// runnerVersion reads the actions runner's version in a guest.
func (s *Scheduler) runnerVersion(ctx context.Context, image, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out strings.Builder
	if err := s.guest.Run(ctx, image, addr, runnerVersionCommand(s.opts.WorkDir), nil, &limitWriter{w: &out, n: 4096}, io.Discard); err != nil {
		return "", err
	}
	return parseRunnerVersion(out.String())
}

// parseRunnerVersion finds the first MAJOR.MINOR.PATCH in the output.
func parseRunnerVersion(out string) (string, error) {
	for _, f := range strings.Fields(out) {
		f = strings.TrimPrefix(f, "v")
		parts := strings.Split(f, ".")
		if len(parts) != 3 {
			continue
		}
		ok := true
		for _, p := range parts {
			if _, err := strconv.Atoi(p); err != nil || p == "" {
				ok = false
			}
		}
		if ok {
			return f, nil
		}
	}
	return "", fmt.Errorf("no runner version in %q", strings.TrimSpace(out))
}

// limitWriter keeps at most n bytes.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	q := p
	if len(q) > l.n {
		q = q[:l.n]
	}
	l.n -= len(q)
	_, err := l.w.Write(q)
	return len(p), err
}
