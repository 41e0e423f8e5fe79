package tartvm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
)

// DefaultHostLimit is how many macOS VMs one Mac may run at once: Apple's
// licence allows two, and Virtualization.framework enforces it.
const DefaultHostLimit = 2

// BackendOptions configure a Backend.
type BackendOptions struct {
	// Prefix is runners.name_prefix: Tarty's VMs are "<Prefix>-...", and a
	// running VM without it is foreign.
	Prefix string
	// CPU and MemoryMB size every VM Create makes; 0 keeps the image's.
	CPU, MemoryMB int
	// Softnet boots VMs with `tart run --net-softnet`.
	Softnet bool
	// HostLimit is how many macOS VMs the host may run; 0 means
	// DefaultHostLimit.
	HostLimit int
	Logger    zerolog.Logger
}

// Backend runs Tarty's VMs with the local tart: the scheduler's Backend port,
// returning the shared tarty.Capacity and tarty.VM.
// It knows the `tart run` processes it started, which is what makes tart's
// races manageable: a `tart stop` that says "not running" while our `tart
// run` is alive is retried, and an `ip` failure while it is alive is worth
// another try. It is safe for concurrent use.
type Backend struct {
	c   *Client
	o   BackendOptions
	log zerolog.Logger
	t   backendTiming

	mu   sync.Mutex
	runs map[string]*VMRun // our live `tart run` processes by VM name
	os   map[string]string // guest OS by VM name, for the foreign VMs Capacity counts
}

// backendTiming holds the Backend's waits; tests shorten them.
type backendTiming struct {
	stopTimeout    time.Duration // tart stop --timeout (Orchard and cirrus tooling use 5)
	stopPause      time.Duration // between `tart stop` attempts while our run is not locked yet
	stopTries      int           // attempts before our own `tart run` gets SIGINT directly
	runExit        time.Duration // how long Stop waits for our `tart run` to exit before killing it
	deleteFor      time.Duration // how long Delete retries `VM "x" is running`
	deleteFirst    time.Duration // its first pause, doubling up to deleteMax
	deleteMax      time.Duration
	ipPause        time.Duration // between `tart ip` attempts while our run is alive
	cleanupTimeout time.Duration // for deleting a clone whose set-up failed
	query          time.Duration // list and get behind an error report
}

var defaultTiming = backendTiming{
	stopTimeout: 5 * time.Second, stopPause: time.Second, stopTries: 3, runExit: 30 * time.Second,
	deleteFor: 30 * time.Second, deleteFirst: 250 * time.Millisecond, deleteMax: 5 * time.Second,
	ipPause: time.Second, cleanupTimeout: 2 * time.Minute, query: 30 * time.Second,
}

// NewBackend returns the local-tart Backend running VMs with c.
func NewBackend(c *Client, o BackendOptions) *Backend {
	if o.HostLimit <= 0 {
		o.HostLimit = DefaultHostLimit
	}
	return &Backend{c: c, o: o, log: o.Logger.With().Str("component", "tart").Logger(), t: defaultTiming,
		runs: map[string]*VMRun{}, os: map[string]string{}}
}

// ours reports whether name is one of Tarty's VMs: "<Prefix>-...", so that a
// foreign "tarty-mini2" is not taken for one of prefix "tarty-mini".
func (b *Backend) ours(name string) bool { return tarty.Owned(b.o.Prefix, name) }

// run is our live `tart run` of name, or nil.
func (b *Backend) run(name string) *VMRun {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runs[name]
}

// Capacity lists the local VMs and counts the running macOS ones that are not
// Tarty's against HostLimit. A VM whose OS cannot be read counts as macOS:
// over-counting only delays a runner, under-counting hits Apple's limit.
// Linux guests do not count.
func (b *Backend) Capacity(ctx context.Context) (tarty.Capacity, error) {
	vms, err := b.c.List(ctx)
	if err != nil {
		return tarty.Capacity{}, err
	}
	foreign := b.runningMacOS(ctx, vms, func(name string) bool { return !b.ours(name) })
	return tarty.Capacity{Slots: max(0, b.o.HostLimit-len(foreign)), Foreign: foreign}, nil
}

// runningMacOS returns the running local macOS VMs among vms for which keep
// is true, and forgets the OS of VMs no longer listed.
func (b *Backend) runningMacOS(ctx context.Context, vms []VM, keep func(string) bool) []string {
	listed := map[string]bool{}
	var out []string
	for _, vm := range vms {
		if !vm.Local() {
			continue
		}
		listed[vm.Name] = true
		if vm.State != "running" || !keep(vm.Name) {
			continue
		}
		if os, ok := b.guestOS(ctx, vm.Name); ok && os != "linux" {
			out = append(out, vm.Name)
		}
	}
	b.mu.Lock()
	for name := range b.os {
		if !listed[name] {
			delete(b.os, name)
		}
	}
	b.mu.Unlock()
	return out
}

// guestOS is the VM's OS, cached per name; ok is false when the VM has gone.
func (b *Backend) guestOS(ctx context.Context, name string) (os string, ok bool) {
	b.mu.Lock()
	os, cached := b.os[name]
	b.mu.Unlock()
	if cached {
		return os, true
	}
	os, err := b.c.OS(ctx, name)
	switch {
	case NotFound(err):
		return "", false
	case err != nil:
		b.log.Warn().Err(err).Str("vm", name).Msg("cannot read a running VM's OS; counting it as macOS")
		return "darwin", true // not cached: ask again next time
	}
	b.mu.Lock()
	b.os[name] = os
	b.mu.Unlock()
	return os, true
}

// VMs lists the local VMs whose names start with prefix.
func (b *Backend) VMs(ctx context.Context, prefix string) ([]tarty.VM, error) {
	vms, err := b.c.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []tarty.VM
	for _, vm := range vms {
		if vm.Local() && strings.HasPrefix(vm.Name, prefix) {
			out = append(out, tarty.VM{Name: vm.Name, Running: vm.State == "running"})
		}
	}
	return out, nil
}

// Create clones image to name and gives it a random MAC address (and the
// configured CPU and memory). If the set-up fails, the clone is deleted, even
// when ctx is done.
func (b *Backend) Create(ctx context.Context, image, name string) error {
	if err := b.c.Clone(ctx, image, name); err != nil {
		if ctx.Err() != nil && !errors.Is(err, ErrExists) {
			// Cancelled: tart may have finished the copy before it saw SIGINT.
			b.cleanup(ctx, name, "cancelled clone")
		}
		return err
	}
	if err := b.c.Set(ctx, name, b.o.CPU, b.o.MemoryMB); err != nil {
		if cerr := b.cleanup(ctx, name, "clone whose set-up failed"); cerr != nil {
			return errors.Join(err, cerr)
		}
		return err
	}
	return nil
}

// cleanup deletes what a failed Create made, under its own timeout.
func (b *Backend) cleanup(ctx context.Context, name, what string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.t.cleanupTimeout)
	defer cancel()
	if err := b.c.Delete(cctx, name); err != nil {
		b.log.Warn().Err(err).Str("vm", name).Msgf("deleting %s", what)
		return fmt.Errorf("deleting the %s: %w", what, err)
	}
	return nil
}

// Boot starts `tart run` for name, detached, and remembers it until it exits.
// The channel delivers once: nil for a guest power-off or a host stop; an
// error for a guest crash (tart exits 0 then; the run log tells), a start
// failure that came after the start grace (the two-VM limit arrives then, as a
// *LimitError), or a Virtualization.framework start failure (with HostFix).
// An error from Boot itself (the same kinds, early) means the VM never ran.
func (b *Backend) Boot(ctx context.Context, name string) (<-chan error, error) {
	r, err := b.c.Start(ctx, name, RunOptions{Softnet: b.o.Softnet})
	if err != nil {
		return nil, b.explain(name, err)
	}
	b.mu.Lock()
	b.runs[name] = r
	b.mu.Unlock()
	ch := make(chan error, 1)
	go func() {
		<-r.Done()
		err := r.Err()
		if err != nil {
			err = b.explain(name, err)
		}
		b.mu.Lock()
		if b.runs[name] == r {
			delete(b.runs, name)
		}
		b.mu.Unlock()
		ch <- err
		close(ch)
	}()
	return ch, nil
}

// explain turns the two-VM limit into a *LimitError that says whether tart's
// VMs account for it, from a fresh `tart list`.
func (b *Backend) explain(name string, err error) error {
	if !VMLimit(err) {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.t.query)
	defer cancel()
	le := &LimitError{Err: err, Limit: b.o.HostLimit}
	vms, lerr := b.c.List(ctx)
	if lerr != nil {
		b.log.Warn().Err(lerr).Msg("listing VMs after the VM limit")
		le.unknown = true
		return le
	}
	le.Running = b.runningMacOS(ctx, vms, func(n string) bool { return n != name })
	return le
}

// LimitError is Apple's two-macOS-VM limit hit by `tart run`, with the
// running macOS VMs tart listed right after. Fewer than Limit means tart's VMs
// do not explain it: a VM outside this TART_HOME runs, or the host's VM
// counter leaked (tart issues #445, #1217), which only a reboot clears.
type LimitError struct {
	Err     error    // tart's error
	Running []string // running macOS VMs other than the one refused
	Limit   int      // macOS VMs the host may run
	unknown bool     // the list failed: Running is unknown
}

func (e *LimitError) Error() string {
	if e.Leaked() {
		return fmt.Sprintf("%v (only %d of %d macOS VMs run in tart's list: the host's VM counter leaked or a VM runs outside this TART_HOME)",
			e.Err, len(e.Running), e.Limit)
	}
	return e.Err.Error()
}

func (e *LimitError) Unwrap() error { return e.Err }

// VMLimit is true: the scheduler's tarty.IsVMLimit looks for it.
func (e *LimitError) VMLimit() bool { return true }

// Leaked reports that the limit came although tart lists fewer than Limit
// running macOS VMs: no amount of waiting for Tarty's own VMs helps.
func (e *LimitError) Leaked() bool { return !e.unknown && len(e.Running) < e.Limit }

// HostFix is the operator's fix when Leaked, for tarty.HostFix; "" otherwise.
func (e *LimitError) HostFix() string {
	if !e.Leaked() {
		return ""
	}
	return "stop macOS VMs running outside Tarty's TART_HOME (another user's tart, UTM), or reboot the Mac: " +
		"its VM counter leaks after many VM starts (tart issues #445, #1217)"
}

// Address returns the guest's IP address, waiting up to wait. While our
// `tart run` is alive every `ip` failure but a missing VM is retried (no lease
// yet, a lease file caught mid-rewrite). tart answers from DHCP leases, so an
// address is only believed while the VM runs: a stopped VM's lease is stale.
func (b *Backend) Address(ctx context.Context, name string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		ip, err := b.c.IP(ctx, name, max(0, time.Until(deadline)))
		r := b.run(name)
		if err == nil {
			if running, known := b.runningNow(ctx, name, r); known && !running {
				return "", fmt.Errorf("tart ip %s: %s is a stale DHCP lease: the VM is not running", name, ip)
			}
			return ip, nil
		}
		if r == nil || !r.Alive() || !IPRetryable(err) || !time.Now().Before(deadline) {
			return "", err
		}
		b.log.Debug().Err(err).Str("vm", name).Msg("no address yet; retrying while tart run is alive")
		pause := time.NewTimer(min(b.t.ipPause, max(time.Until(deadline), 0)))
		select {
		case <-ctx.Done():
			pause.Stop()
			return "", err
		case <-r.Done():
			pause.Stop()
			return "", fmt.Errorf("%w (and tart run exited)", err)
		case <-pause.C:
		}
	}
}

// runningNow reports whether name runs: our `tart run` being alive says so;
// for a VM we did not boot (adopted after a restart) tart is asked.
func (b *Backend) runningNow(ctx context.Context, name string, r *VMRun) (running, known bool) {
	if r != nil {
		return r.Alive(), true
	}
	cfg, err := b.c.Get(ctx, name)
	if err != nil {
		return false, false
	}
	return cfg.Running, true
}

// Stop powers name off from the host (`tart stop --timeout 5`, destructive).
// A VM that is not running, or missing, is not an error. When tart says "not
// running" but our own `tart run` is alive, the VM is still being set up
// (tart locks it late) and will boot: Stop tries again, and after a few
// attempts sends SIGINT to our `tart run` itself. When the run is ours, Stop
// waits (bounded) for it to exit, and kills it if it will not.
func (b *Backend) Stop(ctx context.Context, name string) error {
	r := b.run(name)
	deadline := time.Now().Add(b.t.runExit)
	for attempt := 1; ; attempt++ {
		err := b.c.stop(ctx, name, b.t.stopTimeout)
		if NotFound(err) || MissingFiles(err) {
			return nil
		}
		if err != nil && !NotRunning(err) {
			return err
		}
		if err == nil || r == nil || !r.Alive() {
			break
		}
		// "Not running", yet our tart run lives: it has not locked the VM yet.
		if attempt >= b.t.stopTries {
			b.log.Info().Str("vm", name).Int("pid", r.PID).Msg("tart stop cannot see the starting VM; interrupting tart run")
			if err := r.Interrupt(); err != nil {
				return fmt.Errorf("stop %s: %w", name, err)
			}
		}
		pause := time.NewTimer(b.t.stopPause)
		select {
		case <-ctx.Done():
			pause.Stop()
			return ctx.Err()
		case <-r.Done():
			pause.Stop()
		case <-pause.C:
		}
		if !r.Alive() || time.Now().After(deadline) {
			break // awaitExit kills a run that never let itself be stopped
		}
	}
	if r == nil {
		return nil
	}
	return b.awaitExit(ctx, r)
}

// awaitExit waits for our `tart run` to exit after a stop, killing it when it
// takes longer than runExit.
func (b *Backend) awaitExit(ctx context.Context, r *VMRun) error {
	limit := time.NewTimer(b.t.runExit)
	defer limit.Stop()
	select {
	case <-r.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-limit.C:
	}
	b.log.Warn().Str("vm", r.Name).Int("pid", r.PID).Dur("after", b.t.runExit).Msg("tart run did not exit after stop; killing it")
	if err := r.Kill(); err != nil {
		return fmt.Errorf("stop %s: kill tart run: %w", r.Name, err)
	}
	select {
	case <-r.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Delete removes name; a missing VM is not an error. `VM "x" is running`
// just after a stop (tart does not wait after its SIGKILL) is retried with
// backoff for up to ~30 s; then the VM is stopped and the delete tried again.
func (b *Backend) Delete(ctx context.Context, name string) error {
	err := b.deleteRetrying(ctx, name)
	if VMRunning(err) && ctx.Err() == nil {
		b.log.Warn().Str("vm", name).Msg("VM still running after retries; stopping it before deleting")
		if serr := b.Stop(ctx, name); serr != nil {
			return errors.Join(err, serr)
		}
		err = b.deleteRetrying(ctx, name)
	}
	if err == nil {
		b.mu.Lock()
		delete(b.os, name)
		b.mu.Unlock()
	}
	return err
}

func (b *Backend) deleteRetrying(ctx context.Context, name string) error {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(b.t.deleteFirst), backoff.WithMaxInterval(b.t.deleteMax),
		backoff.WithMaxElapsedTime(b.t.deleteFor))
	for {
		err := b.c.Delete(ctx, name)
		if !VMRunning(err) {
			return err
		}
		next := bo.NextBackOff()
		if next == backoff.Stop {
			return err
		}
		b.log.Debug().Str("vm", name).Dur("retry_in", next).Msg("tart delete: VM still running")
		pause := time.NewTimer(next)
		select {
		case <-ctx.Done():
			pause.Stop()
			return errors.Join(err, ctx.Err())
		case <-pause.C:
		}
	}
}
