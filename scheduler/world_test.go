package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
)

// world is a simulated Mac and GitHub for loop tests in a testing/synctest
// bubble: it implements every port of the scheduler. The Mac enforces Apple's
// limit of two running macOS VMs (counting foreign ones) exactly as
// Virtualization.framework does, and records any attempt past it. GitHub
// hands queued jobs to idle runners whose labels match, sends in_progress and
// completed events, and the guest powers off after its job. Faults are
// function fields.
type world struct {
	t      *testing.T
	events chan tarty.JobEvent

	mu        sync.Mutex
	vms       map[string]*wvm
	foreign   int // foreign macOS VMs running
	hostLimit int
	leaked    bool // the host refuses every VM (a leaked counter)
	maxSeen   int  // most macOS VMs seen running at once, foreign included
	overLimit int  // boots refused by the host limit
	created   int
	deleted   int

	jobs      map[int64]*wjob
	runners   map[int64]*wrunner
	nextID    int64
	dropHooks bool // webhooks are lost: only the poller can find jobs
	pollFail  map[string]error

	closed    chan struct{} // closed at the end: simulated jobs stop
	closeOnce sync.Once

	bootTime time.Duration // boot to address
	jobTime  time.Duration // a job's run time

	// Faults: return an error to fail the step.
	onCreate   func(name string) error
	onBoot     func(name string) error
	onAddress  func(name string) error
	onStart    func(name string) error
	lateBoot   func(name string) error // the VM dies right after booting with this error
	noPowerOff bool                    // the guest does not power off after its job

	// The nightly rebuild's side: images are VMs (as in tart), commands run in
	// the guest, trusted host keys per image.
	keys                map[string]string
	builds              int
	ipSeq               int
	buildTime           time.Duration
	onPull              func() error
	onCommand           func(command string) error // rebuild and verify commands
	hangShutdown        bool                       // the build guest ignores the shutdown command
	noSSH               func(name string) bool     // the guest's sshd never answers
	free                uint64
	maxRunnersInRebuild int // most runner VMs seen while a build VM existed
}

type wvm struct {
	name    string
	running bool
	exit    chan error
	bootAt  time.Time
	runner  int64
	ip      string
	content string // what a clone copies: the fake tart's "bytes"
}

type wjob struct {
	id       int64
	repo     string
	labels   []string
	status   string // queued, waiting, in_progress, completed
	runner   string
	created  time.Time
	started  time.Time
	duration time.Duration
}

type wrunner struct {
	id        int64
	name      string
	connected bool
	busy      bool
	job       int64
}

const testPrefix = "tarty-test"

func newWorld(t *testing.T) *world {
	return &world{
		t: t, events: make(chan tarty.JobEvent, 256),
		vms:       map[string]*wvm{"runner-image": {name: "runner-image", content: "v0"}, "base-image": {name: "base-image", content: "base"}},
		hostLimit: 2, jobs: map[int64]*wjob{}, runners: map[int64]*wrunner{},
		closed: make(chan struct{}), nextID: 1000, keys: map[string]string{"base-image": "key-base", "runner-image": "key-v0"},
		buildTime: 20 * time.Minute, free: 500 << 30, bootTime: 25 * time.Second, jobTime: 5 * time.Minute, pollFail: map[string]error{},
	}
}

func (w *world) options() Options {
	n := 0
	var mu sync.Mutex
	return Options{
		Prefix: testPrefix, Image: "runner-image", Labels: []string{"tarty"},
		Max: 2, ReconcileInterval: time.Minute,
		Rebuild: RebuildOptions{Base: "base-image", Command: "rebuild", Hour: 2, Location: time.UTC},
		NewName: func() string {
			mu.Lock()
			defer mu.Unlock()
			n++
			return fmt.Sprintf("%08x", n)
		},
	}
}

// start runs a scheduler on the world. stop cancels it as SIGTERM does,
// waits for Run to return, then powers off the VMs left, so that no goroutine
// outlives the bubble.
func (w *world) start(opts Options) (*Scheduler, func()) {
	w.t.Helper()
	s, cancel, done := w.startLoop(opts)
	return s, func() {
		cancel()
		if err := <-done; err != nil {
			w.t.Errorf("Run: %v", err)
		}
		w.powerOffAll()
	}
}

func (w *world) startLoop(opts Options) (*Scheduler, context.CancelFunc, <-chan error) {
	w.t.Helper()
	s, err := New(opts, Deps{Backend: w, Guest: w, Runners: w, Jobs: w, Images: w, HostKeys: w, Events: w.events,
		Logger: testLogger(w.t)})
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return s, cancel, done
}

func testLogger(t *testing.T) zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.ConsoleWriter{Out: tWriter{t}, NoColor: true}).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ---- Backend ----

func (w *world) runningLocked() int {
	n := w.foreign
	for _, vm := range w.vms {
		if vm.running {
			n++
		}
	}
	return n
}

func (w *world) Capacity(context.Context) (tarty.Capacity, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var foreign []string
	for i := 0; i < w.foreign; i++ {
		foreign = append(foreign, "foreign-"+strconv.Itoa(i))
	}
	return tarty.Capacity{Slots: w.hostLimit - w.foreign, Foreign: foreign}, nil
}

func (w *world) VMs(_ context.Context, prefix string) ([]tarty.VM, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []tarty.VM
	for _, vm := range w.vms {
		if strings.HasPrefix(vm.name, prefix) {
			out = append(out, tarty.VM{Name: vm.name, Running: vm.running})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

func (w *world) Create(_ context.Context, image, name string) error {
	if w.onCreate != nil {
		if err := w.onCreate(name); err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second) // an APFS clone
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.vms[name]; ok {
		return fmt.Errorf("clone %s: exists", name)
	}
	src, ok := w.vms[image]
	if !ok {
		return fmt.Errorf("clone %s: the specified VM %q does not exist", name, image)
	}
	w.vms[name] = &wvm{name: name, content: src.content}
	w.created++
	return nil
}

type limitError struct{}

func (limitError) Error() string { return "The number of VMs exceeds the system limit" }
func (limitError) VMLimit() bool { return true }
func (limitError) HostFix() string {
	return "reboot the Mac: its VM counter leaks after many VM starts (tart issues #445, #1217)"
}

type fixError struct{}

func (fixError) Error() string {
	return `Error Domain=VZErrorDomain Code=1 "The virtual machine failed to start."`
}
func (fixError) HostFix() string { return "enable automatic login" }

func (w *world) Boot(_ context.Context, name string) (<-chan error, error) {
	if w.onBoot != nil {
		if err := w.onBoot(name); err != nil {
			return nil, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	vm, ok := w.vms[name]
	if !ok {
		return nil, fmt.Errorf("run %s: does not exist", name)
	}
	if w.leaked || w.runningLocked() >= w.hostLimit {
		w.overLimit++
		return nil, limitError{}
	}
	w.ipSeq++
	vm.running, vm.exit, vm.bootAt, vm.ip = true, make(chan error, 1), time.Now(), "10.0.0."+strconv.Itoa(w.ipSeq)
	w.maxSeen = max(w.maxSeen, w.runningLocked())
	w.noteRebuildLocked()
	if w.lateBoot != nil {
		if err := w.lateBoot(name); err != nil {
			go func() {
				select {
				case <-time.After(3 * time.Second):
					w.powerOff(name, err)
				case <-w.closed:
				}
			}()
		}
	}
	return vm.exit, nil
}

// powerOff stops a VM as its guest would (err nil) or as a crash would.
func (w *world) powerOff(name string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.powerOffLocked(name, err)
}

func (w *world) powerOffLocked(name string, err error) {
	vm, ok := w.vms[name]
	if !ok || !vm.running {
		return
	}
	vm.running = false
	vm.exit <- err
	close(vm.exit)
	if r := w.runners[vm.runner]; r != nil {
		r.connected = false
	}
}

func (w *world) powerOffAll() {
	w.closeOnce.Do(func() { close(w.closed) })
	w.mu.Lock()
	defer w.mu.Unlock()
	for name := range w.vms {
		w.powerOffLocked(name, nil)
	}
}

func (w *world) Address(ctx context.Context, name string, wait time.Duration) (string, error) {
	if w.onAddress != nil {
		if err := w.onAddress(name); err != nil {
			return "", err
		}
	}
	w.mu.Lock()
	vm, ok := w.vms[name]
	var ready time.Time
	running := ok && vm.running
	if ok {
		ready = vm.bootAt.Add(w.bootTime)
	}
	w.mu.Unlock()
	if !running {
		return "", fmt.Errorf("ip %s: no IP address found, is your VM running?", name)
	}
	if d := time.Until(ready); d > 0 {
		if d > wait {
			time.Sleep(wait)
			return "", fmt.Errorf("ip %s: no IP address found", name)
		}
		time.Sleep(d)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return vm.ip, nil
}

func (w *world) Stop(_ context.Context, name string) error {
	time.Sleep(time.Second)
	w.powerOff(name, nil)
	return nil
}

func (w *world) Delete(_ context.Context, name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if vm, ok := w.vms[name]; ok {
		if vm.running {
			return fmt.Errorf("delete %s: VM is running", name)
		}
		delete(w.vms, name)
		w.deleted++
	}
	return nil
}

// ---- Guest ----

func (w *world) WaitReady(ctx context.Context, _, addr string) error {
	if vm := w.byIP(addr); vm != nil && w.noSSH != nil && w.noSSH(vm.name) {
		<-ctx.Done()
		return fmt.Errorf("ssh %s: connection refused", addr)
	}
	time.Sleep(3 * time.Second)
	return nil
}

func (w *world) byIP(addr string) *wvm {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, vm := range w.vms {
		if vm.running && vm.ip == addr {
			return vm
		}
	}
	return nil
}

func (w *world) Run(ctx context.Context, _, addr, command string, _ io.Reader, stdout, _ io.Writer) error {
	vm := w.byIP(addr)
	if vm == nil {
		return fmt.Errorf("ssh %s: no route to host", addr)
	}
	switch {
	case strings.HasPrefix(command, "test -x "):
		return nil
	case strings.HasSuffix(command, "./config.sh --version"):
		w.mu.Lock()
		v := "2.330." + strconv.Itoa(w.builds)
		w.mu.Unlock()
		fmt.Fprintln(stdout, v)
		return nil
	case strings.HasSuffix(command, "; "+DefaultShutdownCommand):
		if !w.hangShutdown {
			go func() {
				time.Sleep(5 * time.Second)
				w.powerOff(vm.name, nil)
			}()
		}
		return nil
	case command == "rebuild" || command == "verify":
		if w.onCommand != nil {
			if err := w.onCommand(command); err != nil {
				return err
			}
		}
		if command == "verify" {
			return nil
		}
		select {
		case <-time.After(w.buildTime):
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
		w.builds++
		vm.content = "v" + strconv.Itoa(w.builds)
		w.mu.Unlock()
		fmt.Fprintln(stdout, "installed everything")
		return nil
	}
	return fmt.Errorf("unexpected command %q", command)
}

// noteRebuildLocked records how many runner VMs run while a build VM exists.
func (w *world) noteRebuildLocked() {
	build, runners := false, 0
	for _, vm := range w.vms {
		switch {
		case strings.Contains(vm.name, "-build-"):
			build = true
		case vm.running && strings.HasPrefix(vm.name, testPrefix):
			runners++
		}
	}
	if build {
		w.maxRunnersInRebuild = max(w.maxRunnersInRebuild, runners)
	}
}

// ---- Images and HostKeys ----

func (w *world) Exists(_ context.Context, name string) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.vms[name]
	return ok, nil
}

func (w *world) Remote(ref string) bool { return strings.Contains(ref, "/") }

func (w *world) Pull(context.Context, string, io.Writer) (bool, error) {
	if w.onPull != nil {
		return false, w.onPull()
	}
	return false, nil
}

func (w *world) Rename(_ context.Context, from, to string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	vm, ok := w.vms[from]
	if !ok {
		return fmt.Errorf("rename: failed to rename a non-existent local VM: %s", from)
	}
	if _, ok := w.vms[to]; ok {
		return fmt.Errorf("rename: target VM %s already exists", to)
	}
	delete(w.vms, from)
	vm.name = to
	w.vms[to] = vm
	return nil
}

func (w *world) FreeBytes(context.Context) (uint64, error) { return w.free, nil }

func (w *world) SizeBytes(context.Context, string) (uint64, error) { return 50 << 30, nil }

func (w *world) CopyHostKey(from, to string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if k, ok := w.keys[from]; ok {
		w.keys[to] = k
	} else {
		delete(w.keys, to)
	}
	return nil
}

func (w *world) content(name string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if vm, ok := w.vms[name]; ok {
		return vm.content
	}
	return ""
}

func (w *world) Start(_ context.Context, _, _, command string, stdin io.Reader) error {
	cfg, _ := io.ReadAll(stdin)
	if !strings.Contains(command, `ACTIONS_RUNNER_INPUT_JITCONFIG="$(cat)" ./run.sh`) {
		return fmt.Errorf("runner command %q does not hand the config over in the environment", command)
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(string(cfg), "jit-"), 10, 64)
	if err != nil {
		return fmt.Errorf("bad JIT config %q", cfg)
	}
	w.mu.Lock()
	r := w.runners[id]
	if r == nil {
		w.mu.Unlock()
		return errors.New("runner registration not found")
	}
	if w.onStart != nil {
		if err := w.onStart(r.name); err != nil {
			w.mu.Unlock()
			return err
		}
	}
	vm := w.vms[r.name]
	if vm == nil || !vm.running {
		w.mu.Unlock()
		return errors.New("guest not running")
	}
	vm.runner = id
	r.connected = true
	w.dispatchLocked()
	w.mu.Unlock()
	return nil
}

func (w *world) ForgetHostKey(image string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.keys, image)
	return nil
}

// ---- GitHub ----

func (w *world) JITConfig(_ context.Context, name string) (int64, string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nextID++
	id := w.nextID
	w.runners[id] = &wrunner{id: id, name: name}
	return id, "jit-" + strconv.FormatInt(id, 10), nil
}

func (w *world) ListRunners(_ context.Context, prefix string) ([]tarty.Runner, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []tarty.Runner
	for _, r := range w.runners {
		if strings.HasPrefix(r.name, prefix) {
			out = append(out, tarty.Runner{ID: r.id, Name: r.name, Online: r.connected, Busy: r.busy})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out, nil
}

type busyError struct{}

func (busyError) Error() string { return "runner busy" }
func (busyError) Busy() bool    { return true }

func (w *world) RemoveRunner(_ context.Context, id int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r, ok := w.runners[id]; ok && r.busy {
		return busyError{}
	}
	delete(w.runners, id)
	return nil
}

func (w *world) QueuedJobs(context.Context) (tarty.PollResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	res := tarty.PollResult{Complete: []string{"acme/app", "acme/lib"}}
	for repo, err := range w.pollFail {
		if res.Failed == nil {
			res.Failed = map[string]error{}
		}
		res.Failed[repo] = err
		res.Complete = slicesDelete(res.Complete, repo)
	}
	for _, j := range w.jobs {
		if j.status != "queued" || res.Failed[j.repo] != nil {
			continue
		}
		res.Jobs = append(res.Jobs, w.eventLocked(j, tarty.ActionQueued, tarty.SourcePoller))
	}
	return res, nil
}

func slicesDelete(s []string, v string) []string {
	var out []string
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

func (w *world) eventLocked(j *wjob, action tarty.JobAction, src tarty.Source) tarty.JobEvent {
	return tarty.JobEvent{Source: src, Action: action, JobID: j.id, RunID: j.id * 10, RunAttempt: 1,
		Status: j.status, Labels: j.labels, Repository: j.repo, Organization: "acme", RunnerName: j.runner,
		CreatedAt: j.created, StartedAt: j.started}
}

func (w *world) sendLocked(j *wjob, action tarty.JobAction) {
	if w.dropHooks {
		return
	}
	w.events <- w.eventLocked(j, action, tarty.SourceWebhook)
}

// deliver sends the scheduler one webhook event for a job the world does not
// track (a bare event, created now) and waits until it was handled.
func (w *world) deliver(id int64, action tarty.JobAction, status string) {
	w.events <- tarty.JobEvent{Source: tarty.SourceWebhook, Action: action, Status: status, JobID: id, RunID: id * 10,
		Labels: []string{"tarty"}, Repository: "acme/app", Organization: "acme", CreatedAt: time.Now()}
	synctest.Wait()
}

// queue creates a job and delivers its queued webhook.
func (w *world) queue(repo string, labels ...string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(labels) == 0 {
		labels = []string{"self-hosted", "macOS", "tarty"}
	}
	w.nextID++
	j := &wjob{id: w.nextID, repo: repo, labels: labels, status: "queued", created: time.Now(), duration: w.jobTime}
	w.jobs[j.id] = j
	w.sendLocked(j, tarty.ActionQueued)
	w.dispatchLocked()
	return j.id
}

// cancel cancels a queued job: GitHub sends completed with no runner.
func (w *world) cancel(id int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	j := w.jobs[id]
	j.status = "completed"
	w.sendLocked(j, tarty.ActionCompleted)
}

// dispatchLocked is GitHub's dispatcher: the oldest queued job goes to a
// connected idle runner whose labels cover it.
func (w *world) dispatchLocked() {
	var queued []*wjob
	for _, j := range w.jobs {
		if j.status == "queued" {
			queued = append(queued, j)
		}
	}
	sort.Slice(queued, func(a, b int) bool { return queued[a].id < queued[b].id })
	var idle []*wrunner
	for _, r := range w.runners {
		if r.connected && !r.busy && r.job == 0 {
			idle = append(idle, r)
		}
	}
	sort.Slice(idle, func(a, b int) bool { return idle[a].id < idle[b].id })
	for len(queued) > 0 && len(idle) > 0 {
		j, r := queued[0], idle[0]
		if !tarty.NewLabelMatcher([]string{"tarty"}).Match(j.labels) {
			queued = queued[1:]
			continue
		}
		queued, idle = queued[1:], idle[1:]
		j.status, j.runner, j.started = "in_progress", r.name, time.Now()
		r.busy, r.job = true, j.id
		w.sendLocked(j, tarty.ActionInProgress)
		go w.runJob(j, r)
	}
}

func (w *world) runJob(j *wjob, r *wrunner) {
	select {
	case <-time.After(j.duration):
	case <-w.closed:
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	vm := w.vms[r.name]
	if vm == nil || !vm.running {
		return // the VM was killed under the job
	}
	j.status = "completed"
	w.sendLocked(j, tarty.ActionCompleted)
	r.busy = false
	delete(w.runners, r.id) // an ephemeral runner deregisters after its job
	if !w.noPowerOff {
		w.powerOffLocked(r.name, nil)
	}
}

// ---- inspection ----

func (w *world) count(status string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, j := range w.jobs {
		if j.status == status {
			n++
		}
	}
	return n
}

// vmCount counts Tarty's VMs (the images are VMs too, without the prefix).
func (w *world) vmCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for name := range w.vms {
		if strings.HasPrefix(name, testPrefix) {
			n++
		}
	}
	return n
}

func (w *world) hasVM(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.vms[name]
	return ok
}

func (w *world) checkLimit() {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.maxSeen > w.hostLimit {
		w.t.Fatalf("%d macOS VMs ran at once; the limit is %d", w.maxSeen, w.hostLimit)
	}
}
