//go:build unix

package tartvm_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/internal/syncbuf"
	"github.com/tartyci/tarty/tartvm"
	"github.com/tartyci/tarty/tartvm/faketart"
)

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCancelledCallLeavesNoProcess: a cancelled tart call gets SIGINT (tart
// cleans up), and nothing of its process group survives: not a child that
// ignores SIGINT, nor a tart that ignores it (killed after KillGrace).
func TestCancelledCallLeavesNoProcess(t *testing.T) {
	t.Parallel()
	for _, ignore := range []bool{false, true} {
		c, env := newClient(t, func(o *tartvm.Options) { o.KillGrace = 300 * time.Millisecond })
		env.SetConfig(faketart.Config{Faults: []faketart.Fault{
			{Verb: "list", Hang: true, SpawnChild: true, IgnoreStop: ignore}}})
		ctx, cancel := context.WithCancel(testCtx(t))
		errc := make(chan error, 1)
		go func() { _, err := c.List(ctx); errc <- err }()
		waitFor(t, 10*time.Second, "the hung list and its child", func() bool { return len(env.LiveProcs()) == 2 })
		cancel()
		var err error
		select {
		case err = <-errc:
		case <-time.After(20 * time.Second):
			t.Fatal("cancelled List did not return")
		}
		if !errors.Is(err, context.Canceled) || tartvm.NotFound(err) {
			t.Errorf("ignore=%v: List = %v, want cancelled", ignore, err)
		}
		env.WaitNoProcs(5 * time.Second)
		calls := env.Calls()
		if interrupted := len(calls) == 2 && calls[1].Interrupted; interrupted == ignore {
			t.Errorf("ignore=%v: calls %+v", ignore, calls)
		}
		if got := len(env.Args("list")); got > 2 {
			t.Errorf("a cancelled list was retried: %d calls", got)
		}
	}
}

func TestRunLogFiles(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.Seed("vm", faketart.VMOptions{})
	ctx := testCtx(t)

	// No silent /tmp default: the caller says where logs go.
	_, err := tartvm.New(tartvm.Options{Path: env.Bin, Home: env.Home}).Run(ctx, "vm")
	if err == nil || !strings.Contains(err.Error(), "LogDir") {
		t.Errorf("Run without LogDir = %v", err)
	}

	dir := filepath.Join(t.TempDir(), "state", "logs")
	c := tartvm.New(tartvm.Options{Path: env.Bin, Home: env.Home, LogDir: dir, StartGrace: -1})
	ch, err := c.Run(ctx, "vm")
	if err != nil {
		t.Fatal(err)
	}
	env.WaitRunning("vm", true, 10*time.Second)
	env.PowerOff("vm")
	waitResult(t, ch)
	for path, want := range map[string]os.FileMode{dir: 0o700, c.LogPath("vm"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %v", path, fi.Mode(), err, want)
		}
	}

	// A directory left open to others is tightened.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A symbolic link at the log path is never followed.
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env.Seed("linked", faketart.VMOptions{})
	if err := os.Symlink(target, c.LogPath("linked")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(ctx, "linked"); err == nil || !strings.Contains(err.Error(), "log file") {
		t.Errorf("Run with a symlinked log = %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep\n" {
		t.Errorf("symlink target written: %q", b)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("log directory mode %v, %v; want 0700", fi.Mode(), err)
	}
	if got := env.Args("run"); len(got) != 1 {
		t.Errorf("tart run invoked for a symlinked log: %v", got)
	}
}

func TestRunSoftnet(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	env.Seed("vm", faketart.VMOptions{})
	r, err := c.Start(ctx, "vm", tartvm.RunOptions{Softnet: true})
	if err != nil {
		t.Fatal(err)
	}
	env.WaitRunning("vm", true, 10*time.Second)
	if err := c.Stop(ctx, "vm", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("tart run did not exit")
	}
	if err := r.Err(); err != nil {
		t.Errorf("result = %v", err)
	}
	want := [][]string{{"run", "--no-graphics", "--no-audio", "--net-softnet", "vm"}}
	if got := env.Args("run"); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("run calls = %v, want %v", got, want)
	}
}

// TestVMLimitLate: the limit is known only once Virtualization.framework
// tried to start the VM, after Run's grace: it comes on the channel.
func TestVMLimitLate(t *testing.T) {
	t.Parallel()
	c, env := newClient(t) // grace 200 ms
	ctx := testCtx(t)
	for _, n := range []string{"a", "b", "c"} {
		env.Seed(n, faketart.VMOptions{})
	}
	env.SetConfig(faketart.Config{StartDelayMS: 600})
	for _, n := range []string{"a", "b"} {
		if _, err := c.Run(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "a and b to boot", func() bool {
		ip1, _ := c.IP(ctx, "a", 0)
		ip2, _ := c.IP(ctx, "b", 0)
		return ip1 != "" && ip2 != ""
	})
	ch, err := c.Run(ctx, "c")
	if err != nil {
		t.Fatalf("Run = %v; the limit must not be known within the grace", err)
	}
	err = waitResult(t, ch)
	if !tartvm.VMLimit(err) || !tarty.IsVMLimit(err) || !strings.HasSuffix(err.Error(),
		"exit 1: The number of VMs exceeds the system limit (other running VMs: a, b)") {
		t.Errorf("late result = %v, want the VM limit", err)
	}
}

// TestVMLimitLeaked: the host's VM counter leaked, so the limit comes with no
// VM running at all (tart's message then names none).
func TestVMLimitLeaked(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	env.Seed("a", faketart.VMOptions{})
	env.Seed("lin", faketart.VMOptions{OS: "linux"})
	env.SetConfig(faketart.Config{LeakedVMs: 2})
	_, err := c.Run(testCtx(t), "a")
	if !tartvm.VMLimit(err) || !strings.HasSuffix(err.Error(), "exit 1: The number of VMs exceeds the system limit") {
		t.Fatalf("Run = %v, want the limit without other VMs", err)
	}
	if states, _ := c.States(testCtx(t)); states["a"] != "stopped" {
		t.Errorf("states = %v", states)
	}
	// Linux guests do not count against it.
	if _, err := c.Run(testCtx(t), "lin"); err != nil {
		t.Errorf("linux VM: %v", err)
	}
}

// TestVZStartFailure: Virtualization.framework refusing to start (tart as
// root, no GUI session, locked keychain) is an error with a one-line host fix,
// early or late.
func TestVZStartFailure(t *testing.T) {
	t.Parallel()
	for _, delay := range []int{0, 600} {
		c, env := newClient(t)
		env.Seed("vm", faketart.VMOptions{})
		env.SetConfig(faketart.Config{StartDelayMS: delay, Faults: []faketart.Fault{{Verb: "run", Fail: faketart.VZStartFailed}}})
		ch, err := c.Run(testCtx(t), "vm")
		if delay > 0 {
			if err != nil {
				t.Fatalf("Run = %v, want the failure on the channel", err)
			}
			err = waitResult(t, ch)
		}
		fix, ok := tarty.HostFix(err)
		if !ok || !strings.Contains(fix, "automatic login") || !strings.Contains(fix, "root") || !strings.Contains(fix, "keychain") {
			t.Errorf("delay %d: HostFix(%v) = %q, %v", delay, err, fix, ok)
		}
		if tartvm.VMLimit(err) || tartvm.GuestCrashed(err) {
			t.Errorf("misclassified: %v", err)
		}
	}
	// Other failures carry no host fix.
	if fix, ok := tarty.HostFix(&tartvm.Error{Verb: "run", ExitCode: 1}); ok {
		t.Errorf("HostFix of a plain error = %q", fix)
	}
}

// TestStopBeforeTheVMLock: tart takes the VM's lock only after setting it up,
// so a `tart stop` meanwhile says "not running" (Client.Stop takes that as
// done), a SIGINT is lost, and the VM boots anyway. The Backend handles it.
func TestStopBeforeTheVMLock(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	env.Seed("vm", faketart.VMOptions{})
	env.SetConfig(faketart.Config{LockDelayMS: 1000})
	r, err := c.Start(ctx, "vm", tartvm.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, "vm", 5*time.Second); err != nil {
		t.Errorf("Stop = %v", err)
	}
	if err := r.Interrupt(); err != nil {
		t.Errorf("Interrupt = %v", err)
	}
	if calls := env.Args("stop"); len(calls) != 1 || env.Calls()[0].Exit != 2 {
		t.Errorf("stop calls %v, want one that said not running", calls)
	}
	env.WaitRunning("vm", true, 10*time.Second)
	if !r.Alive() {
		t.Fatalf("run exited: %v", r.Err())
	}
	if err := c.Stop(ctx, "vm", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	<-r.Done()
	if r.Err() != nil || r.Alive() {
		t.Errorf("after stop: %v", r.Err())
	}
}

// TestDeleteAndRenameDuringASlowStart: tart's delete and rename take no
// global lock, so they do not wait while a run sets its VM up under it.
func TestDeleteAndRenameDuringASlowStart(t *testing.T) {
	t.Parallel()
	c, env := newClient(t, noGrace)
	ctx := testCtx(t)
	for _, n := range []string{"vm", "old", "img"} {
		env.Seed(n, faketart.VMOptions{})
	}
	env.SetConfig(faketart.Config{LockDelayMS: 3000})
	if _, err := c.Run(ctx, "vm"); err != nil {
		t.Fatal(err)
	}
	home, err := os.Open(env.Home)
	if err != nil {
		t.Fatal(err)
	}
	defer home.Close()
	globalLockHeld := func() bool {
		err := syscall.Flock(int(home.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			syscall.Flock(int(home.Fd()), syscall.LOCK_UN)
		}
		return err != nil
	}
	waitFor(t, 10*time.Second, "run to take the global lock", globalLockHeld)
	if err := c.Delete(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(ctx, "img", "img-previous"); err != nil {
		t.Fatal(err)
	}
	if !globalLockHeld() {
		t.Errorf("the run's set-up ended before delete and rename returned: they may have waited for it")
	}
	if env.RunningPID("vm") != 0 {
		t.Errorf("VM running already: the lock delay did not apply")
	}
}

// TestDeleteOfADyingVM: `tart stop` does not wait after its SIGKILL, so the
// delete that follows can meet `VM "x" is running` (exit 1) for a moment.
func TestDeleteOfADyingVM(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	env.Seed("vm", faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "delete", Fail: `VM "vm" is running`, Times: 1}}})
	err := c.Delete(testCtx(t), "vm")
	if !tartvm.VMRunning(err) || tartvm.NotFound(err) || tartvm.NotRunning(err) {
		t.Errorf("Delete = %v, want VMRunning", err)
	}
	if err := c.Delete(testCtx(t), "vm"); err != nil {
		t.Errorf("second Delete = %v", err)
	}
}

// TestIPLeases: tart answers from the DHCP lease file: a stopped VM's
// unexpired lease is still answered, and a lease file caught mid-rewrite is
// a failure worth retrying.
func TestIPLeases(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	env.Seed("vm", faketart.VMOptions{})
	env.SetConfig(faketart.Config{IP: "192.168.64.7"})
	ch, err := c.Run(ctx, "vm")
	if err != nil {
		t.Fatal(err)
	}
	if ip, err := c.IP(ctx, "vm", 10*time.Second); err != nil || ip != "192.168.64.7" {
		t.Fatalf("IP = %q, %v", ip, err)
	}
	if err := c.Stop(ctx, "vm", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitResult(t, ch)
	if ip, err := c.IP(ctx, "vm", 0); err != nil || ip != "192.168.64.7" {
		t.Errorf("IP of the stopped VM = %q, %v; want its stale lease", ip, err)
	}
	// A fresh MAC has no lease.
	if err := c.Set(ctx, "vm", 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.IP(ctx, "vm", 0); !tartvm.NoIP(err) {
		t.Errorf("IP after --random-mac = %v, want no IP", err)
	}

	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "ip", NamePrefix: "vm", Fail: faketart.TruncatedLeases}}})
	_, err = c.IP(ctx, "vm", 0)
	if !tartvm.IPRetryable(err) || tartvm.NoIP(err) || err.Error() != "tart ip vm: exit 1: "+faketart.TruncatedLeases {
		t.Errorf("IP with a truncated lease file = %v, want retryable", err)
	}
	if _, err := c.IP(ctx, "missing", 0); tartvm.IPRetryable(err) {
		t.Errorf("a missing VM is not worth retrying: %v", err)
	}
}

func TestMissingDisk(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	env.Seed("vm", faketart.VMOptions{})
	env.RemoveDisk("vm")
	_, err := c.Get(ctx, "vm")
	var te *tartvm.Error
	if !errors.As(err, &te) || te.ExitCode != 1 || !tartvm.MissingFiles(err) || tartvm.NotFound(err) {
		t.Errorf("Get = %v, want missing files (exit 1)", err)
	}
	if _, err := c.Run(ctx, "vm"); !tartvm.MissingFiles(err) {
		t.Errorf("Run = %v", err)
	}
	if states, err := c.States(ctx); err != nil || len(states) != 0 {
		t.Errorf("list shows a VM without its disk: %v, %v", states, err)
	}
	if err := c.Delete(ctx, "vm"); err != nil {
		t.Errorf("Delete = %v", err)
	}
	if _, err := c.Get(ctx, "vm"); !tartvm.NotFound(err) {
		t.Errorf("after Delete: %v", err)
	}
}

func TestSetBelowMinimum(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	env.Seed("vm", faketart.VMOptions{CPU: 4, MemoryMB: 8192})
	err := c.Set(testCtx(t), "vm", 1, 0)
	var te *tartvm.Error
	if !errors.As(err, &te) || te.ExitCode != 1 ||
		te.Stderr != "Error: LessThanMinimalResourcesError: VM should have 2 CPU cores at minimum (requested 1)" {
		t.Errorf("Set = %v", err)
	}
}

func TestListRetriesOnce(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	env.Seed("vm", faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "list", Fail: faketart.ListVanished, Times: 1}}})
	if vms, err := c.List(testCtx(t)); err != nil || len(vms) != 1 {
		t.Errorf("List = %v, %v; want one retry to succeed", vms, err)
	}
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "list", Fail: faketart.ListVanished, Times: 2}}})
	_, err := c.List(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("List failing twice = %v", err)
	}
	if got := len(env.Args("list")); got != 4 {
		t.Errorf("%d list calls, want 4", got)
	}
}

func TestPull(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	const ref = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
	env.SeedRemote(ref, faketart.VMOptions{DiskGB: 50})
	var progress bytes.Buffer
	if err := c.Pull(ctx, ref, &progress); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) != 15 || lines[0] != "pulling "+ref+"..." || lines[2] != "pulling disk (20.0 GB compressed)..." ||
		lines[13] != "100%" || lines[14] != "pulling NVRAM..." {
		t.Errorf("progress:\n%s", progress.String())
	}
	if got := env.Args("pull"); len(got) != 1 || !slices.Equal(got[0], []string{"pull", ref}) {
		t.Errorf("pull calls = %v", got)
	}
	oci, err := c.ListOCI(ctx)
	if err != nil || len(oci) != 1 || oci[0].Name != ref || oci[0].Disk != 50 || oci[0].Local() {
		t.Errorf("ListOCI = %+v, %v", oci, err)
	}
	// A local name is not pulled; a missing image is the registry's 404.
	env.Seed("local", faketart.VMOptions{})
	if err := c.Pull(ctx, "local", nil); err != nil {
		t.Errorf("Pull(local) = %v", err)
	}
	if err := c.Pull(ctx, "ghcr.io/org/nope:v1", nil); err == nil || !strings.Contains(err.Error(), "code: 404") {
		t.Errorf("Pull(missing) = %v", err)
	}
	if err := c.Pull(ctx, "-h", nil); err == nil {
		t.Errorf("Pull(-h) = nil")
	}

	// A failing registry: the error, no partial image.
	const broken = "ghcr.io/org/broken:v1"
	env.SeedRemote(broken, faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "pull", NamePrefix: broken, Fail: "Error: RegistryError.AuthFailed"}}})
	if err := c.Pull(ctx, broken, nil); err == nil || !strings.HasSuffix(err.Error(), "exit 1: Error: RegistryError.AuthFailed") {
		t.Errorf("Pull(broken) = %v", err)
	}
	// Clone of an uncached image pulls it first, with the same faults.
	if err := c.Clone(ctx, broken, "tarty-x"); err == nil {
		t.Errorf("Clone of a failing pull = nil")
	}
}

// TestSlowPullCancelled: a pull bounded by its context is interrupted (tart
// removes its partial download) and leaves no process.
func TestSlowPullCancelled(t *testing.T) {
	t.Parallel()
	c, env := newClient(t, func(o *tartvm.Options) { o.KillGrace = 5 * time.Second })
	const ref = "ghcr.io/org/img:v1"
	env.SeedRemote(ref, faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "pull", DelayMS: 60_000}}})
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	errc := make(chan error, 1)
	var progress syncbuf.Buffer
	go func() { errc <- c.Pull(ctx, ref, &progress) }()
	waitFor(t, 10*time.Second, "the download to start", func() bool { return strings.Contains(progress.String(), "0%") })
	start := time.Now()
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Pull = %v, want cancelled", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("tart did not honour SIGINT: cancel took %v", took)
	}
	env.WaitNoProcs(5 * time.Second)
	if calls := env.Calls(); len(calls) != 1 || !calls[0].Interrupted {
		t.Errorf("calls = %+v", calls)
	}
	if oci, err := c.ListOCI(testCtx(t)); err != nil || len(oci) != 0 {
		t.Errorf("partial image cached: %v, %v", oci, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(env.Home, "tmp")); len(entries) != 0 {
		t.Errorf("partial download left: %v", entries)
	}
}

func TestFreeDisk(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	free, err := c.FreeDisk()
	if err != nil || free == 0 {
		t.Errorf("FreeDisk = %d, %v", free, err)
	}
	if h, err := c.Home(); err != nil || h != env.Home {
		t.Errorf("Home = %q, %v", h, err)
	}
	// A home not made yet is measured where it will be.
	c2 := tartvm.New(tartvm.Options{Path: env.Bin, Home: filepath.Join(env.Home, "not", "yet")})
	if free, err := c2.FreeDisk(); err != nil || free == 0 {
		t.Errorf("FreeDisk of a missing home = %d, %v", free, err)
	}
}
