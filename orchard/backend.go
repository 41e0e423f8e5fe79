package orchard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
)

// Defaults of BackendOptions.
const (
	// DefaultPlaceTimeout is how long a VM may wait for the controller to
	// give it a worker. The controller's scheduler runs right after each
	// create and every 5 s; a VM still unplaced after this never fit (a
	// worker went away, a VM of someone else took the room first) and would
	// stay pending forever.
	DefaultPlaceTimeout = time.Minute
	// DefaultViewTTL is how old the fleet view behind Workers may be.
	DefaultViewTTL   = 10 * time.Second
	followRetryFirst = 500 * time.Millisecond
	followRetryMax   = 15 * time.Second
	cleanupTimeout   = time.Minute
)

// nameRE is the VM name rule the controller announced (simplename).
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// BackendOptions configure a Backend.
type BackendOptions struct {
	// Prefix is runners.name_prefix: Tarty's VMs are "<Prefix>-…".
	Prefix string
	// WorkerLabels are orchard.worker_labels: every VM carries them as
	// labels, so the controller places it only on workers carrying them all.
	WorkerLabels map[string]string
	// CPU and MemoryMB size every VM (0: the worker's default).
	CPU, MemoryMB int
	// Softnet isolates guests from each other and the LAN.
	Softnet bool
	// PlaceTimeout bounds the wait for a worker; default DefaultPlaceTimeout.
	PlaceTimeout time.Duration
	// ForwardWait is the port-forward's wait; default DefaultForwardWait.
	ForwardWait time.Duration
	// OfflineAfter is the controller's --worker-offline-timeout (default 3 min).
	OfflineAfter time.Duration
	// ViewTTL bounds the age of the fleet view Workers answers from.
	ViewTTL time.Duration
	// Now is the clock workers' last_seen is judged by; time.Now when nil.
	Now    func() time.Time
	Logger zerolog.Logger
}

// Backend runs Tarty's runner VMs on an Orchard fleet: the scheduler's
// Backend port (and its optional Fleet port, for /status).
//
// The JIT config never reaches the controller: VMs are created with no
// startup script and no environment, and the runner is started over SSH
// through the controller's port-forward (Address and Dial). Capacity is the
// free org.cirruslabs.tart-vms of the online, unpaused workers that carry
// WorkerLabels; Create re-checks it under a lock and refuses (a VM-limit
// error, which makes the scheduler re-read capacity) rather than create a VM
// that no worker can take now, since the controller would keep it pending
// forever. A VM still unplaced after PlaceTimeout is deleted. It is safe for
// concurrent use.
type Backend struct {
	c   *Client
	o   BackendOptions
	log zerolog.Logger

	createMu sync.Mutex // a room check and its create are one step

	mu      sync.Mutex
	follows map[string]*follow
	view    fleetView
	base    context.Context
	cancel  context.CancelFunc
	stats   BackendStats
}

// BackendStats count what the backend dealt with since it started.
type BackendStats struct {
	Refused  int // creates refused: no worker had room
	Unplaced int // VMs deleted because no worker took them within PlaceTimeout
	Lost     int // VMs that failed with their worker (offline, restarted, deleted)
	Exited   int // guests that powered off (the normal end of a runner)
}

// NewBackend returns a Backend on c.
func NewBackend(c *Client, o BackendOptions) *Backend {
	if o.PlaceTimeout <= 0 {
		o.PlaceTimeout = DefaultPlaceTimeout
	}
	if o.ForwardWait <= 0 {
		o.ForwardWait = DefaultForwardWait
	}
	if o.OfflineAfter <= 0 {
		o.OfflineAfter = OfflineAfter
	}
	if o.ViewTTL <= 0 {
		o.ViewTTL = DefaultViewTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	base, cancel := context.WithCancel(context.Background())
	return &Backend{c: c, o: o, log: o.Logger.With().Str("component", "orchard").Logger(),
		follows: map[string]*follow{}, base: base, cancel: cancel}
}

// Client is the controller client the backend uses.
func (b *Backend) Client() *Client { return b.c }

// Close stops following VMs (their channels never fire). For tests and the
// end of the process.
func (b *Backend) Close() { b.cancel() }

// Stats returns the backend's counters.
func (b *Backend) Stats() BackendStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

func (b *Backend) count(f func(*BackendStats)) {
	b.mu.Lock()
	f(&b.stats)
	b.mu.Unlock()
}

func (b *Backend) ours(name string) bool { return tarty.Owned(b.o.Prefix, name) }

// ---- the fleet ----

// fleetView is one read of the workers and VMs, and what follows from it.
type fleetView struct {
	at      time.Time
	workers []Worker
	vms     []VM
}

// room is what a view says about placement for Tarty's VMs.
type room struct {
	free           int      // free tart-vms on qualifying workers
	pendingOurs    int      // Tarty's VMs waiting for a worker
	pendingForeign int      // others' VMs waiting that a qualifying worker could take
	ours           int      // Tarty's VMs listed and placed (running, preparing or failed)
	foreign        []string // others' VMs holding or about to take a qualifying slot
}

func (b *Backend) read(ctx context.Context) (fleetView, error) {
	workers, err := b.c.ListWorkers(ctx)
	if err != nil {
		return fleetView{}, err
	}
	vms, err := b.c.ListVMs(ctx)
	if err != nil {
		return fleetView{}, err
	}
	v := fleetView{at: b.o.Now(), workers: workers, vms: vms}
	b.mu.Lock()
	b.view = v
	b.mu.Unlock()
	return v, nil
}

// online reports whether w heartbeated within OfflineAfter of now.
func (b *Backend) online(w Worker, now time.Time) bool {
	return now.Sub(w.LastSeen) <= b.o.OfflineAfter
}

// qualifies reports whether the controller may place Tarty's VMs on w now.
func (b *Backend) qualifies(w Worker, now time.Time) bool {
	return b.online(w, now) && !w.SchedulingPaused && w.HasLabels(b.o.WorkerLabels) &&
		(w.Arch == "" || w.Arch == "arm64") && (w.Runtime == "" || w.Runtime == "tart")
}

func tartVMs(m map[string]uint64) int {
	n, ok := m[ResourceTartVMs]
	if !ok {
		return 1 // the controller adds it to every darwin VM
	}
	return int(n)
}

// usedSlots counts the org.cirruslabs.tart-vms the live VMs on each worker hold.
func usedSlots(vms []VM) map[string]int {
	used := map[string]int{}
	for _, vm := range vms {
		if vm.Placed() && !vm.Terminal() {
			used[vm.Worker] += tartVMs(vm.Resources)
		}
	}
	return used
}

// left is how many more VMs the qualifying workers can take now.
func (r room) left() int { return r.free - r.pendingOurs - r.pendingForeign }

func (b *Backend) room(v fleetView) room {
	var r room
	qualifying := map[string]bool{}
	used := usedSlots(v.vms)
	var quals []Worker
	for _, w := range v.workers {
		if b.qualifies(w, v.at) {
			qualifying[w.Name] = true
			quals = append(quals, w)
			r.free += max(0, int(w.Resources[ResourceTartVMs])-used[w.Name])
		}
	}
	for _, vm := range v.vms {
		mine := b.ours(vm.Name)
		switch {
		case mine && vm.Placed():
			r.ours++
		case mine && !vm.Terminal():
			r.pendingOurs += tartVMs(vm.Resources)
		case vm.Terminal():
		case vm.Placed() && qualifying[vm.Worker]:
			r.foreign = append(r.foreign, vm.Name)
		case !vm.Placed() && placeable(vm, quals):
			r.pendingForeign += tartVMs(vm.Resources)
			r.foreign = append(r.foreign, vm.Name)
		}
	}
	return r
}

// placeable reports whether some qualifying worker carries vm's labels: a
// pending VM of someone else that would take a slot before ours.
func placeable(vm VM, workers []Worker) bool {
	for _, w := range workers {
		if w.HasLabels(vm.Labels) {
			return true
		}
	}
	return false
}

// Capacity reports how many VMs Tarty may have at once: its own VMs on the
// fleet plus the free org.cirruslabs.tart-vms of the online, unpaused
// workers carrying the worker labels, less what others' pending VMs will take
// first. Others' VMs on those workers are Foreign.
func (b *Backend) Capacity(ctx context.Context) (tarty.Capacity, error) {
	v, err := b.read(ctx)
	if err != nil {
		return tarty.Capacity{}, err
	}
	r := b.room(v)
	return tarty.Capacity{Slots: max(0, r.ours+r.free-r.pendingForeign), Foreign: r.foreign}, nil
}

// NoRoomError is a create refused, or a VM deleted unplaced, because no
// qualifying worker had a free org.cirruslabs.tart-vms: the fleet's form of
// Apple's two-VM limit. The scheduler re-reads capacity instead of retrying.
type NoRoomError struct {
	VM     string
	Reason string
}

func (e *NoRoomError) Error() string {
	return "orchard: no worker has room for " + e.VM + ": " + e.Reason
}

// VMLimit is true: tarty.IsVMLimit finds it.
func (e *NoRoomError) VMLimit() bool { return true }

// VMs lists the controller's VMs whose names start with prefix; Running is
// status running (pending and failed VMs are not).
func (b *Backend) VMs(ctx context.Context, prefix string) ([]tarty.VM, error) {
	vms, err := b.c.ListVMs(ctx)
	if err != nil {
		return nil, err
	}
	var out []tarty.VM
	for _, vm := range vms {
		if strings.HasPrefix(vm.Name, prefix) {
			out = append(out, tarty.VM{Name: vm.Name, Running: vm.Status == StatusRunning})
		}
	}
	return out, nil
}

// Create asks the controller for VM name from image, once a qualifying
// worker has room for it now (else a *NoRoomError). Nothing secret goes into
// the VM: no startup script, no environment, no password.
func (b *Backend) Create(ctx context.Context, image, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("orchard: VM name %q is not lower-case letters, digits and dashes (at most 63)", name)
	}
	b.createMu.Lock()
	defer b.createMu.Unlock()
	v, err := b.read(ctx)
	if err != nil {
		return err
	}
	r := b.room(v)
	if r.left() < 1 {
		b.count(func(s *BackendStats) { s.Refused++ })
		return &NoRoomError{VM: name, Reason: fmt.Sprintf("%d free slot(s) on the matching online workers, %d VM(s) already waiting for one",
			r.free, r.pendingOurs+r.pendingForeign)}
	}
	vm := VM{Name: name, Image: image, Headless: true, NetSoftnet: b.o.Softnet, RestartPolicy: RestartNever,
		Resources: map[string]uint64{ResourceTartVMs: 1}, Labels: b.o.WorkerLabels,
		CPU: uint64(max(0, b.o.CPU)), Memory: uint64(max(0, b.o.MemoryMB))}
	if _, err := b.c.CreateVM(ctx, vm); err != nil {
		return err
	}
	b.log.Debug().Str("vm", name).Str("image", image).Msg("VM created")
	return nil
}

// ---- following a VM ----

// follow tracks one VM from Boot until it ends: it watches the controller
// (reconnecting, or polling when the watch fails) and delivers the end once.
type follow struct {
	name string

	mu      sync.Mutex
	last    VM
	known   bool
	changed chan struct{} // closed and replaced on every update

	exit    chan error
	once    sync.Once
	stopped chan struct{}
	cancel  context.CancelFunc
}

func (f *follow) update(v VM) {
	f.mu.Lock()
	f.last, f.known = v, true
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *follow) state() (VM, bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last, f.known, f.changed
}

// end delivers the VM's end once and stops following.
func (f *follow) end(err error) {
	f.once.Do(func() {
		f.exit <- err
		close(f.exit)
		close(f.stopped)
		f.cancel()
	})
}

// WorkerLostError is a VM that failed with its worker: offline, restarted
// or deleted. Its runner is gone; the slot is replaced.
type WorkerLostError struct {
	VM, Worker, Message string
}

func (e *WorkerLostError) Error() string {
	return fmt.Sprintf("orchard: VM %s lost with worker %s: %s", e.VM, e.Worker, e.Message)
}

// VMFailedError is a VM the controller reports failed for another reason:
// a failed pull or clone, a failed start.
type VMFailedError struct {
	VM, Worker, Message string
}

func (e *VMFailedError) Error() string {
	w := ""
	if e.Worker != "" {
		w = " on worker " + e.Worker
	}
	return fmt.Sprintf("orchard: VM %s failed%s: %s", e.VM, w, e.Message)
}

// endOf is what a terminal VM means for the scheduler: nil for a guest that
// powered off, else why it failed.
func endOf(v VM) error {
	switch {
	case v.GuestExited():
		return nil
	case v.WorkerLost():
		return &WorkerLostError{VM: v.Name, Worker: v.Worker, Message: v.StatusMessage}
	default:
		return &VMFailedError{VM: v.Name, Worker: v.Worker, Message: v.StatusMessage}
	}
}

// Boot waits until the controller reports VM name running, then returns a
// channel that delivers once when it ends: nil when its guest powered off
// ("VM exited unexpectedly") or it was deleted; a *WorkerLostError when its
// worker went away; a *VMFailedError otherwise. A VM that ends first (a
// pull or clone that failed, a guest that powered off at once) is Boot's
// error; one that no worker takes within PlaceTimeout is deleted and is a
// *NoRoomError when the fleet has no room, else an error naming the wait.
func (b *Backend) Boot(ctx context.Context, name string) (<-chan error, error) {
	fctx, cancel := context.WithCancel(b.base)
	f := &follow{name: name, changed: make(chan struct{}), exit: make(chan error, 1),
		stopped: make(chan struct{}), cancel: cancel}
	b.mu.Lock()
	if old := b.follows[name]; old != nil {
		old.cancel()
	}
	b.follows[name] = f
	b.mu.Unlock()
	go b.run(fctx, f)

	place := time.NewTimer(b.o.PlaceTimeout)
	defer place.Stop()
	for {
		v, known, changed := f.state()
		switch {
		case known && v.Status == StatusRunning:
			return f.exit, nil
		case known && v.Terminal():
			b.forget(f)
			return nil, endOrFailed(v) // a guest that already powered off never ran for Tarty
		}
		select {
		case <-ctx.Done():
			b.forget(f)
			return nil, fmt.Errorf("orchard: VM %s not running yet (%s): %w", name, describe(v, known), ctx.Err())
		case <-f.stopped:
			b.forget(f)
			if v, known, _ := f.state(); known && v.Terminal() {
				return nil, endOrFailed(v) // it ended while this loop looked away
			}
			return nil, fmt.Errorf("orchard: VM %s was deleted before it ran", name)
		case <-changed:
		case <-place.C:
			if known && v.Placed() {
				continue // preparing on a worker (a pull can take long): boot_timeout bounds it
			}
			b.forget(f)
			return nil, b.unplaced(ctx, name)
		}
	}
}

func describe(v VM, known bool) string {
	if !known {
		return "not seen yet"
	}
	s := v.Status
	if v.StatusMessage != "" {
		s += ": " + v.StatusMessage
	}
	if v.Worker == "" {
		return s + ", no worker yet"
	}
	return s + ", on worker " + v.Worker
}

// unplaced deletes a VM no worker took and says why.
func (b *Backend) unplaced(ctx context.Context, name string) error {
	b.count(func(s *BackendStats) { s.Unplaced++ })
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := b.c.DeleteVM(cctx, name); err != nil && !IsNotFound(err) {
		b.log.Warn().Err(err).Str("vm", name).Msg("deleting a VM no worker took")
	}
	b.log.Warn().Str("vm", name).Dur("waited", b.o.PlaceTimeout).Msg("no worker took the VM; deleted it")
	v, err := b.read(cctx)
	if err == nil {
		if b.room(v).left() < 1 {
			return &NoRoomError{VM: name, Reason: "no worker took it within " + b.o.PlaceTimeout.String() + " and none has room now"}
		}
	}
	return fmt.Errorf("orchard: no worker took VM %s within %s although the matching workers show room "+
		"(a resource other than %s, or the controller's scheduler is stuck?); deleted it", name, b.o.PlaceTimeout, ResourceTartVMs)
}

func (b *Backend) forget(f *follow) {
	f.cancel()
	b.mu.Lock()
	if b.follows[f.name] == f {
		delete(b.follows, f.name)
	}
	b.mu.Unlock()
}

// run follows f's VM until it ends or the follow is cancelled: a watch
// (its first line is the current state), re-opened after an error; a lookup
// first each time, since watching a missing VM hangs.
func (b *Backend) run(ctx context.Context, f *follow) {
	log := b.log.With().Str("vm", f.name).Logger()
	pause := followRetryFirst
	for ctx.Err() == nil {
		v, err := b.c.GetVM(ctx, f.name)
		switch {
		case IsNotFound(err):
			b.finish(f, nil, "deleted")
			return
		case err != nil:
			log.Debug().Err(err).Dur("retry_in", pause).Msg("looking the VM up")
		default:
			if b.apply(f, v) {
				return
			}
			var heard bool
			heard, err = b.watch(ctx, f)
			if err == nil {
				return
			}
			if heard {
				pause = followRetryFirst // it worked for a while: a dropped stream, not a broken one
			}
			log.Debug().Err(err).Dur("retry_in", pause).Msg("watch ended; following again")
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		pause = min(pause*2, followRetryMax)
	}
}

// watch reads one watch stream; nil means the VM ended. heard reports
// whether the stream delivered anything.
func (b *Backend) watch(ctx context.Context, f *follow) (heard bool, err error) {
	w, err := b.c.WatchVM(ctx, f.name)
	if err != nil {
		return false, err
	}
	defer w.Close()
	for {
		ev, err := w.Next()
		if err != nil {
			return heard, err
		}
		heard = true
		if ev.Type == "DELETED" {
			b.finish(f, nil, "deleted")
			return heard, nil
		}
		if b.apply(f, ev.Object) {
			return heard, nil
		}
	}
}

// apply records a state; true when it is the VM's end.
func (b *Backend) apply(f *follow, v VM) bool {
	if v.Name != "" && v.Name != f.name {
		return false
	}
	f.update(v)
	if !v.Terminal() {
		return false
	}
	err := endOf(v)
	b.finish(f, err, v.StatusMessage)
	return true
}

func (b *Backend) finish(f *follow, err error, why string) {
	var lost *WorkerLostError
	switch {
	case errors.As(err, &lost):
		b.count(func(s *BackendStats) { s.Lost++ })
	case err == nil && why != "deleted":
		b.count(func(s *BackendStats) { s.Exited++ })
	}
	b.log.Debug().Str("vm", f.name).Str("why", why).AnErr("error", err).Msg("VM ended")
	f.end(err)
	b.forget(f)
}

// ---- reaching the guest ----

// Address returns "orchard-vm:<name>", the host Dial understands, once the
// VM runs; a VM that is pending (or unknown for a moment) is an error worth
// retrying, a failed or missing one is not.
func (b *Backend) Address(ctx context.Context, name string, wait time.Duration) (string, error) {
	v, err := b.c.GetVM(ctx, name)
	switch {
	case err != nil:
		return "", err
	case v.Terminal():
		return "", endOrFailed(v)
	case v.Status != StatusRunning:
		return "", fmt.Errorf("orchard: VM %s is %s", name, describe(v, true))
	}
	return AddressPrefix + name, nil
}

func endOrFailed(v VM) error {
	if err := endOf(v); err != nil {
		return err
	}
	return fmt.Errorf("orchard: VM %s: %s", v.Name, v.StatusMessage)
}

// Dial opens the port-forward for addr ("[orchard-vm:<name>]:<port>"): the
// sshexec dialer (sshexec.Options.Dial). The controller's wait is bounded by
// ctx's deadline.
func (b *Backend) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" {
		return nil, fmt.Errorf("orchard: cannot dial %s", network)
	}
	name, port, err := ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	wait := b.o.ForwardWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)-time.Second)
	}
	return b.c.PortForward(ctx, name, port, max(wait, time.Second))
}

// ---- stopping ----

// Stop deletes VM name: the controller has no stop that keeps a runner VM
// worth keeping, and its worker stops the VM and deletes the clone within
// seconds. A missing VM is not an error. Whoever waits on Boot's channel
// gets nil.
func (b *Backend) Stop(ctx context.Context, name string) error { return b.Delete(ctx, name) }

// Delete removes VM name; a missing one is not an error.
func (b *Backend) Delete(ctx context.Context, name string) error {
	err := b.c.DeleteVM(ctx, name)
	if err != nil && !IsNotFound(err) {
		return err
	}
	b.mu.Lock()
	f := b.follows[name]
	b.mu.Unlock()
	if f != nil {
		b.finish(f, nil, "deleted")
	}
	return nil
}

// ---- status ----

// Workers lists the fleet for /status: every worker with whether it is
// online, its slots, its labels, whether Tarty places VMs on it, and
// Tarty's VMs on it. It answers from a view at most ViewTTL old.
func (b *Backend) Workers(ctx context.Context) ([]tarty.Worker, error) {
	b.mu.Lock()
	v := b.view
	b.mu.Unlock()
	if v.at.IsZero() || b.o.Now().Sub(v.at) > b.o.ViewTTL {
		var err error
		if v, err = b.read(ctx); err != nil {
			return nil, err
		}
	}
	used := usedSlots(v.vms)
	mine := map[string][]string{}
	for _, vm := range v.vms {
		if vm.Placed() && b.ours(vm.Name) {
			mine[vm.Worker] = append(mine[vm.Worker], vm.Name)
		}
	}
	out := make([]tarty.Worker, 0, len(v.workers))
	for _, w := range v.workers {
		slots := int(w.Resources[ResourceTartVMs])
		sort.Strings(mine[w.Name])
		out = append(out, tarty.Worker{Name: w.Name, Online: b.online(w, v.at),
			Paused: w.SchedulingPaused, Slots: slots, Free: max(0, slots-used[w.Name]), Labels: w.Labels,
			Matches: b.qualifies(w, v.at), VMs: mine[w.Name]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
