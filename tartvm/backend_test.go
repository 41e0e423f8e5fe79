//go:build unix

package tartvm_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/tartvm"
	"github.com/tartyci/tarty/tartvm/faketart"
	"github.com/tartyci/tarty/tartvm/faketart/tarttest"
)

const prefix = "tarty-mini"

// newBackend returns a Backend with short waits on a fresh fake tart home.
func newBackend(t *testing.T, o tartvm.BackendOptions) (*tartvm.Backend, *tartvm.Client, *tarttest.Env) {
	t.Helper()
	c, env := newClient(t)
	if o.Prefix == "" {
		o.Prefix = prefix
	}
	b := tartvm.NewBackend(c, o)
	tartvm.FastBackend(b)
	return b, c, env
}

func exits(env *tarttest.Env, verb string) []int {
	var out []int
	for _, c := range env.Calls() {
		if len(c.Args) > 0 && c.Args[0] == verb {
			out = append(out, c.Exit)
		}
	}
	return out
}

// TestBackendCapacity: running macOS VMs without the prefix take slots;
// Linux guests, stopped VMs and Tarty's own do not. A name that merely starts
// like the prefix is foreign.
func TestBackendCapacity(t *testing.T) {
	t.Parallel()
	b, c, env := newBackend(t, tartvm.BackendOptions{})
	ctx := testCtx(t)
	env.SetConfig(faketart.Config{VMLimit: ptr(5)}) // let this test run more than two
	for name, os := range map[string]string{
		"other-mac": "darwin", "other-linux": "linux", prefix + "2-lookalike": "darwin",
		prefix + "-0a1b2c3d": "darwin", "stopped-mac": "darwin",
	} {
		env.Seed(name, faketart.VMOptions{OS: os})
	}
	capa, err := b.Capacity(ctx)
	if err != nil || capa.Slots != 2 || len(capa.Foreign) != 0 {
		t.Fatalf("idle host: %+v, %v", capa, err)
	}
	for _, n := range []string{"other-mac", "other-linux", prefix + "2-lookalike", prefix + "-0a1b2c3d"} {
		if _, err := c.Run(ctx, n); err != nil {
			t.Fatal(err)
		}
		env.WaitRunning(n, true, 10*time.Second)
	}
	for range 2 {
		capa, err = b.Capacity(ctx)
		want := []string{"other-mac", prefix + "2-lookalike"}
		slices.Sort(capa.Foreign)
		if err != nil || capa.Slots != 0 || !slices.Equal(capa.Foreign, want) {
			t.Errorf("Capacity = %+v, %v; want 0 slots, foreign %v", capa, err, want)
		}
	}
	// The OS of each foreign running VM is read once, then cached.
	if gets := env.Args("get"); len(gets) != 3 {
		t.Errorf("get calls = %v, want one per foreign running VM", gets)
	}
	if err := c.Stop(ctx, prefix+"2-lookalike", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if capa, _ := b.Capacity(ctx); capa.Slots != 1 || !slices.Equal(capa.Foreign, []string{"other-mac"}) {
		t.Errorf("after a foreign VM stopped: %+v", capa)
	}

	// An OS that cannot be read counts as macOS (the safe mistake).
	b2 := tartvm.NewBackend(c, tartvm.BackendOptions{Prefix: prefix, HostLimit: 3})
	env.SetConfig(faketart.Config{VMLimit: ptr(5), Faults: []faketart.Fault{{Verb: "get", NamePrefix: "other-linux", Fail: "Error: boom"}}})
	if capa, _ := b2.Capacity(ctx); capa.Slots != 1 || len(capa.Foreign) != 2 {
		t.Errorf("unreadable OS: %+v, want the Linux VM counted", capa)
	}
}

func TestBackendVMs(t *testing.T) {
	t.Parallel()
	b, c, env := newBackend(t, tartvm.BackendOptions{})
	ctx := testCtx(t)
	for _, n := range []string{prefix + "-a", prefix + "-b", "other"} {
		env.Seed(n, faketart.VMOptions{})
	}
	if _, err := c.Run(ctx, prefix+"-b"); err != nil {
		t.Fatal(err)
	}
	env.WaitRunning(prefix+"-b", true, 10*time.Second)
	vms, err := b.VMs(ctx, prefix)
	want := []tarty.VM{{Name: prefix + "-a"}, {Name: prefix + "-b", Running: true}}
	if err != nil || !slices.Equal(vms, want) {
		t.Errorf("VMs = %+v, %v; want %+v", vms, err, want)
	}
}

func TestBackendCreate(t *testing.T) {
	t.Parallel()
	b, c, env := newBackend(t, tartvm.BackendOptions{CPU: 3, MemoryMB: 6144})
	ctx := testCtx(t)
	env.Seed("runner", faketart.VMOptions{})
	if err := b.Create(ctx, "runner", prefix+"-a"); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"set", prefix + "-a", "--random-mac", "--cpu", "3", "--memory", "6144"}}
	if got := env.Args("set"); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("set calls = %v, want %v", got, want)
	}

	// A set-up tart refuses: the clone is deleted and the error returned.
	small := tartvm.NewBackend(c, tartvm.BackendOptions{Prefix: prefix, CPU: 1})
	err := small.Create(ctx, "runner", prefix+"-b")
	if err == nil || !strings.Contains(err.Error(), "LessThanMinimalResourcesError") {
		t.Errorf("Create below the minimum = %v", err)
	}
	if _, err := c.Get(ctx, prefix+"-b"); !tartvm.NotFound(err) {
		t.Errorf("clone left after a failed set: %v", err)
	}

	// Cancelled during set: the clean-up still runs, on its own context.
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "set", Hang: true}}})
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := b.Create(cctx, "runner", prefix+"-c"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Create cancelled in set = %v", err)
	}
	if _, err := c.Get(ctx, prefix+"-c"); !tartvm.NotFound(err) {
		t.Errorf("clone left after a cancelled set: %v", err)
	}
}

// TestBackendBootResults: what the Boot channel says for each way a VM ends.
func TestBackendBootResults(t *testing.T) {
	t.Parallel()
	b, _, env := newBackend(t, tartvm.BackendOptions{})
	ctx := testCtx(t)
	env.Seed(prefix+"-ok", faketart.VMOptions{})
	env.Seed(prefix+"-crash", faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "run", NamePrefix: prefix + "-crash", DieAfterMS: 300, DieError: "Internal Virtualization error"}}})

	ok, err := b.Boot(ctx, prefix+"-ok")
	if err != nil {
		t.Fatal(err)
	}
	crash, err := b.Boot(ctx, prefix+"-crash")
	if err != nil {
		t.Fatal(err)
	}
	// A crash is an error although tart exits 0.
	if err := waitResult(t, crash); !tartvm.GuestCrashed(err) || tarty.IsVMLimit(err) {
		t.Errorf("crash = %v", err)
	}
	env.WaitRunning(prefix+"-ok", true, 10*time.Second)
	env.PowerOff(prefix + "-ok")
	if err := waitResult(t, ok); err != nil {
		t.Errorf("guest power-off = %v, want nil", err)
	}

	// Virtualization.framework refusing to start: a host fix.
	env.Seed(prefix+"-vz", faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "run", Fail: faketart.VZStartFailed}}})
	if _, err := b.Boot(ctx, prefix+"-vz"); err == nil {
		t.Error("Boot with a VZ start failure = nil")
	} else if fix, ok := tarty.HostFix(err); !ok || !strings.Contains(fix, "automatic login") {
		t.Errorf("HostFix(%v) = %q", err, fix)
	}
}

// TestBackendLimitLate: the two-VM limit after the start grace arrives on the
// channel, with the VMs that explain it.
func TestBackendLimitLate(t *testing.T) {
	t.Parallel()
	b, _, env := newBackend(t, tartvm.BackendOptions{})
	ctx := testCtx(t)
	for _, n := range []string{"foreign", prefix + "-a", prefix + "-b"} {
		env.Seed(n, faketart.VMOptions{})
	}
	env.SetConfig(faketart.Config{StartDelayMS: 600})
	for _, n := range []string{"foreign", prefix + "-a"} {
		if _, err := b.Boot(ctx, n); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Address(ctx, n, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := b.Boot(ctx, prefix+"-b")
	if err != nil {
		t.Fatalf("Boot = %v; the limit must come late", err)
	}
	err = waitResult(t, ch)
	var le *tartvm.LimitError
	if !errors.As(err, &le) || !tarty.IsVMLimit(err) || le.Leaked() || len(le.Running) != 2 {
		t.Fatalf("late limit = %#v", err)
	}
	if fix, ok := tarty.HostFix(err); ok {
		t.Errorf("a limit explained by running VMs has a host fix: %q", fix)
	}
}

// TestBackendLimitLeaked: the limit with no VM running is the host's leaked
// counter: a host fix, early or late.
func TestBackendLimitLeaked(t *testing.T) {
	t.Parallel()
	for _, delay := range []int{0, 600} {
		b, _, env := newBackend(t, tartvm.BackendOptions{})
		env.Seed(prefix+"-a", faketart.VMOptions{})
		env.SetConfig(faketart.Config{LeakedVMs: 2, StartDelayMS: delay})
		ch, err := b.Boot(testCtx(t), prefix+"-a")
		if delay > 0 {
			if err != nil {
				t.Fatalf("Boot = %v", err)
			}
			err = waitResult(t, ch)
		}
		var le *tartvm.LimitError
		if !errors.As(err, &le) || !le.Leaked() || !tarty.IsVMLimit(err) || len(le.Running) != 0 {
			t.Fatalf("delay %d: %#v, want a leaked limit", delay, err)
		}
		fix, ok := tarty.HostFix(err)
		if !ok || !strings.Contains(fix, "reboot") {
			t.Errorf("HostFix = %q", fix)
		}
		if !strings.Contains(err.Error(), "counter leaked") {
			t.Errorf("error text %q", err)
		}
	}
}

// TestBackendStopRace: a Stop right after Boot meets tart's late lock:
// `tart stop` says "not running" while the VM is being set up, and a SIGINT
// then is lost. Stop keeps at it until the VM is really down.
func TestBackendStopRace(t *testing.T) {
	t.Parallel()
	b, _, env := newBackend(t, tartvm.BackendOptions{})
	ctx := testCtx(t)
	name := prefix + "-a"
	env.Seed(name, faketart.VMOptions{})
	env.SetConfig(faketart.Config{LockDelayMS: 1000})
	ch, err := b.Boot(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(ctx, name); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	select {
	case err := <-ch:
		if err != nil {
			t.Errorf("run result = %v, want a clean stop", err)
		}
	default:
		t.Error("Stop returned while our tart run was still alive")
	}
	if env.RunningPID(name) != 0 {
		t.Error("VM still running")
	}
	ex := exits(env, "stop")
	if len(ex) < 4 || ex[0] != 2 || ex[len(ex)-1] != 0 {
		t.Errorf("stop exits = %v, want several 'not running' (2) then a stop (0)", ex)
	}
	// Stopping again, or a VM never booted, or a missing one: nothing to do.
	for _, n := range []string{name, "missing"} {
		if err := b.Stop(ctx, n); err != nil {
			t.Errorf("Stop(%s) = %v", n, err)
		}
	}
}

// TestBackendStopKillsAStuckRun: a tart run that ignores SIGINT is killed by
// tart stop's SIGKILL; Stop waits for our run to be gone.
func TestBackendStopKillsAStuckRun(t *testing.T) {
	t.Parallel()
	b, _, env := newBackend(t, tartvm.BackendOptions{})
	ctx := testCtx(t)
	name := prefix + "-a"
	env.Seed(name, faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "run", IgnoreStop: true}}})
	ch, err := b.Boot(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	env.WaitRunning(name, true, 10*time.Second)
	if err := b.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	// Our tart run has exited when Stop returns; its result reaches the
	// Boot channel from the goroutine that reaps it, a moment later.
	if pid := env.RunningPID(name); pid != 0 {
		t.Errorf("Stop returned while tart run (pid %d) still holds the VM", pid)
	}
	select {
	case err := <-ch:
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("run result = %v, want killed", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("no result from the Boot channel after Stop")
	}
}

// TestBackendDeleteRace: `VM "x" is running` right after a stop is retried;
// a VM that really runs is stopped, then deleted; a missing one is success.
func TestBackendDeleteRace(t *testing.T) {
	t.Parallel()
	b, _, env := newBackend(t, tartvm.BackendOptions{})
	ctx := testCtx(t)
	name := prefix + "-a"
	env.Seed(name, faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "delete", Fail: `VM "` + name + `" is running`, Times: 3}}})
	if err := b.Delete(ctx, name); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if ex := exits(env, "delete"); !slices.Equal(ex, []int{1, 1, 1, 0}) {
		t.Errorf("delete exits = %v", ex)
	}
	if err := b.Delete(ctx, name); err != nil {
		t.Errorf("Delete(missing) = %v", err)
	}

	// Still running once the retries are spent: stop, then delete.
	env.SetConfig(faketart.Config{})
	other := prefix + "-b"
	env.Seed(other, faketart.VMOptions{})
	ch, err := b.Boot(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	env.WaitRunning(other, true, 10*time.Second)
	if err := b.Delete(ctx, other); err != nil {
		t.Fatalf("Delete(running) = %v", err)
	}
	if err := waitResult(t, ch); err != nil {
		t.Errorf("run result = %v", err)
	}
	if got := env.Args("stop"); len(got) != 1 || got[0][len(got[0])-1] != other {
		t.Errorf("stop calls = %v", got)
	}
}

// TestBackendAddress: ip failures are retried while our tart run is alive;
// a lease answered for a stopped VM is stale.
func TestBackendAddress(t *testing.T) {
	t.Parallel()
	b, c, env := newBackend(t, tartvm.BackendOptions{})
	ctx := testCtx(t)
	name := prefix + "-a"
	env.Seed(name, faketart.VMOptions{})
	env.SetConfig(faketart.Config{IP: "192.168.64.5", Faults: []faketart.Fault{
		{Verb: "ip", Fail: faketart.TruncatedLeases, Times: 2}}})
	ch, err := b.Boot(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := b.Address(ctx, name, 10*time.Second)
	if err != nil || ip != "192.168.64.5" {
		t.Fatalf("Address = %q, %v", ip, err)
	}
	if ex := exits(env, "ip"); !slices.Equal(ex, []int{1, 1, 0}) {
		t.Errorf("ip exits = %v", ex)
	}

	// Stopped: tart still answers the lease, which is stale.
	env.PowerOff(name)
	waitResult(t, ch)
	if ip, err := c.IP(ctx, name, 0); err != nil || ip == "" {
		t.Fatalf("the fake kept no lease: %q, %v", ip, err)
	}
	if ip, err := b.Address(ctx, name, time.Second); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Errorf("Address of a stopped VM = %q, %v", ip, err)
	}
	// A VM this backend did not boot (adopted after a restart) is asked about.
	fresh := tartvm.NewBackend(c, tartvm.BackendOptions{Prefix: prefix})
	if ip, err := fresh.Address(ctx, name, 0); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Errorf("adopted stopped VM: %q, %v", ip, err)
	}

	// No lease at all while our run is alive: retried until wait runs out.
	other := prefix + "-b"
	env.Seed(other, faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "ip", NoIP: true}}})
	if _, err := b.Boot(ctx, other); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := b.Address(ctx, other, 1500*time.Millisecond); !tartvm.NoIP(err) {
		t.Errorf("Address without a lease = %v", err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("gave up after %v", took)
	}
	// A missing VM is not retried.
	start = time.Now()
	if _, err := b.Address(ctx, "missing", 5*time.Second); !tartvm.NotFound(err) || time.Since(start) > 3*time.Second {
		t.Errorf("Address(missing) = %v after %v", err, time.Since(start))
	}
}

// BenchmarkBackendCapacity is one Capacity with a foreign macOS VM running,
// its OS already cached: a single `tart list`, like BenchmarkListFake.
func BenchmarkBackendCapacity(b *testing.B) {
	env := tarttest.New(b)
	for _, n := range []string{"foreign", prefix + "-a", prefix + "-b"} {
		if err := faketart.SeedVM(env.Home, n, faketart.VMOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	c := tartvm.New(tartvm.Options{Path: env.Bin, Home: env.Home, LogDir: b.TempDir()})
	ctx := context.Background()
	if _, err := c.Run(ctx, "foreign"); err != nil {
		b.Fatal(err)
	}
	env.WaitRunning("foreign", true, 10*time.Second)
	be := tartvm.NewBackend(c, tartvm.BackendOptions{Prefix: prefix})
	for b.Loop() {
		if capa, err := be.Capacity(ctx); err != nil || capa.Slots != 1 {
			b.Fatal(capa, err)
		}
	}
}
