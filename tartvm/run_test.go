//go:build unix

package tartvm_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/tartvm"
	"github.com/tartyci/tarty/tartvm/faketart"
)

// waitResult receives the one result of a Run (or Backend.Boot) channel and
// checks it is closed after.
func waitResult(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		select {
		case extra, open := <-ch:
			if open {
				t.Errorf("second value on Run channel: %v", extra)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run channel not closed after its result")
		}
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("tart run did not exit")
		return nil
	}
}

func logText(t *testing.T, c *tartvm.Client, name string) string {
	t.Helper()
	b, err := os.ReadFile(c.LogPath(name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRunIPStop(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	env.Seed("vm", faketart.VMOptions{})

	ch, err := c.Run(ctx, "vm")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	pid := env.WaitRunning("vm", true, 10*time.Second)

	// Detached: its own session and process group, so signals to Tarty's group miss it.
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Errorf("tart run session = %d, %v; want its own (%d)", sid, err, pid)
	}
	if pgid, err := unix.Getpgid(pid); err != nil || pgid == unix.Getpgrp() {
		t.Errorf("tart run process group = %d, %v; Tarty's is %d", pgid, err, unix.Getpgrp())
	}

	ip, err := c.IP(ctx, "vm", 10*time.Second)
	if err != nil || ip != "127.0.0.1" {
		t.Fatalf("IP = %q, %v", ip, err)
	}
	if states, err := c.States(ctx); err != nil || states["vm"] != "running" {
		t.Errorf("States = %v, %v", states, err)
	}
	if cfg, err := c.Get(ctx, "vm"); err != nil || !cfg.Running || cfg.State != "running" {
		t.Errorf("Get = %+v, %v", cfg, err)
	}

	// A running VM cannot be deleted.
	err = c.Delete(ctx, "vm")
	if err == nil || tartvm.NotFound(err) || err.Error() != `tart delete vm: exit 1: VM "vm" is running` {
		t.Errorf("Delete(running) = %v", err)
	}

	if err := c.Stop(ctx, "vm", 5*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := waitResult(t, ch); err != nil {
		t.Errorf("Run result after stop = %v, want nil", err)
	}
	if log := logText(t, c, "vm"); !strings.Contains(log, "Stopping VM...") {
		t.Errorf("log = %q", log)
	}
	wantArgs := [][]string{{"run", "--no-graphics", "--no-audio", "vm"}}
	if got := env.Args("run"); !slices.EqualFunc(got, wantArgs, slices.Equal) {
		t.Errorf("run calls = %v, want %v", got, wantArgs)
	}
	if got := env.Args("ip"); len(got) != 1 || !slices.Equal(got[0], []string{"ip", "--wait", "10", "vm"}) {
		t.Errorf("ip calls = %v", got)
	}
}

// TestRunOutlivesContext cancels Run's context and shows the VM keeps running
// until its guest powers off, which delivers nil.
func TestRunOutlivesContext(t *testing.T) {
	t.Parallel()
	for _, grace := range []time.Duration{-1, 0} {
		c, env := newClient(t, func(o *tartvm.Options) { o.StartGrace = grace })
		env.Seed("vm", faketart.VMOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		if grace == 0 {
			// Cancelled while Run watches the start: Run still hands back the channel.
			time.AfterFunc(100*time.Millisecond, cancel)
		}
		ch, err := c.Run(ctx, "vm")
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		cancel()
		pid := env.WaitRunning("vm", true, 10*time.Second)
		// The IP appears only after the boot delay, well after the cancel.
		if ip, err := c.IP(testCtx(t), "vm", 10*time.Second); err != nil || ip == "" {
			t.Fatalf("IP after cancel = %q, %v", ip, err)
		}
		if got := env.RunningPID("vm"); got != pid {
			t.Fatalf("VM running pid %d after cancel, want %d", got, pid)
		}
		env.PowerOff("vm")
		if err := waitResult(t, ch); err != nil {
			t.Errorf("Run result after guest power-off = %v, want nil", err)
		}
		if log := logText(t, c, "vm"); !strings.Contains(log, "guest has stopped the virtual machine") {
			t.Errorf("log = %q", log)
		}
	}
}

func TestRunFailure(t *testing.T) {
	t.Parallel()
	const vzErr = `Error Domain=VZErrorDomain Code=1 "The virtual machine failed to start."`
	for _, grace := range []time.Duration{-1, 0} {
		c, env := newClient(t, func(o *tartvm.Options) { o.StartGrace = grace })
		env.Seed("vm", faketart.VMOptions{})
		env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "run", Fail: vzErr}}})
		ch, err := c.Run(testCtx(t), "vm")
		if grace < 0 {
			if err != nil {
				t.Fatalf("Run without grace = %v", err)
			}
			err = waitResult(t, ch)
		} else if ch != nil {
			t.Errorf("Run returned a channel with its early error")
		}
		var te *tartvm.Error
		if !errors.As(err, &te) || te.ExitCode != 1 || te.Stderr != vzErr {
			t.Fatalf("grace %v: run error = %#v", grace, err)
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Errorf("no *exec.ExitError in %v", err)
		}
		if err.Error() != "tart run vm: exit 1: "+vzErr {
			t.Errorf("error text %q", err)
		}
	}
}

func TestRunGuestDiesWithError(t *testing.T) {
	t.Parallel()
	c, env := newClient(t, noGrace)
	env.Seed("vm", faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "run", DieAfterMS: 100, DieError: "internal error"}}})
	ch, err := c.Run(testCtx(t), "vm")
	if err != nil {
		t.Fatal(err)
	}
	// tart exits 0 even when the guest stopped with an error: the log tells.
	err = waitResult(t, ch)
	var te *tartvm.Error
	if !errors.As(err, &te) || te.ExitCode != 0 || !tartvm.GuestCrashed(err) ||
		err.Error() != "tart run vm: exit 0 after a guest crash: guest has stopped the virtual machine due to error: internal error" {
		t.Errorf("result = %v, want a guest crash", err)
	}
	if log := logText(t, c, "vm"); !strings.Contains(log, "guest has stopped the virtual machine due to error: internal error") {
		t.Errorf("log = %q", log)
	}
}

func TestRunAlreadyRunning(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	env.Seed("vm", faketart.VMOptions{})
	ch, err := c.Run(ctx, "vm")
	if err != nil {
		t.Fatal(err)
	}
	env.WaitRunning("vm", true, 10*time.Second)
	_, err = c.Run(ctx, "vm")
	if !tartvm.AlreadyRunning(err) || tartvm.NotFound(err) {
		t.Errorf("second Run = %v, want AlreadyRunning", err)
	}
	if err := c.Stop(ctx, "vm", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := waitResult(t, ch); err != nil {
		t.Errorf("first run result = %v", err)
	}
	// The second run's failure must not have clobbered the first one's log lines.
	if log := logText(t, c, "vm"); !strings.Contains(log, `VM "vm" is already running!`) || !strings.Contains(log, "Stopping VM...") {
		t.Errorf("log = %q", log)
	}
}

func TestIPFaults(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	env.Seed("tarty-a", faketart.VMOptions{})
	env.Seed("other", faketart.VMOptions{OS: "linux"})
	env.SetConfig(faketart.Config{IP: "192.168.64.9", Faults: []faketart.Fault{{Verb: "ip", NamePrefix: "tarty-", NoIP: true}}})
	for _, name := range []string{"tarty-a", "other"} {
		if _, err := c.Run(ctx, name); err != nil {
			t.Fatal(err)
		}
		env.WaitRunning(name, true, 10*time.Second)
	}
	if ip, err := c.IP(ctx, "other", 5*time.Second); err != nil || ip != "192.168.64.9" {
		t.Errorf("IP(other) = %q, %v", ip, err)
	}
	_, err := c.IP(ctx, "tarty-a", time.Second)
	if !tartvm.NoIP(err) || err.Error() != "tart ip tarty-a: exit 1: no IP address found" {
		t.Errorf("IP with no_ip fault = %v", err)
	}
}

// TestVMLimit runs macOS VMs up to Apple's limit: the third fails with tart's
// message, linux VMs do not count, and a lower limit simulates foreign VMs.
func TestVMLimit(t *testing.T) {
	t.Parallel()
	c, env := newClient(t, noGrace)
	ctx := testCtx(t)
	for _, n := range []string{"a", "b", "c"} {
		env.Seed(n, faketart.VMOptions{})
	}
	env.Seed("lin", faketart.VMOptions{OS: "linux"})

	// Three concurrent starts: the global lock lets exactly two through.
	chans := map[string]<-chan error{}
	for _, n := range []string{"a", "b", "c"} {
		ch, err := c.Run(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		chans[n] = ch
	}
	var failed string
	var limitErr error
	select {
	case limitErr = <-chans["a"]:
		failed = "a"
	case limitErr = <-chans["b"]:
		failed = "b"
	case limitErr = <-chans["c"]:
		failed = "c"
	case <-time.After(20 * time.Second):
		t.Fatal("no run failed")
	}
	if !tartvm.VMLimit(limitErr) || !tarty.IsVMLimit(limitErr) {
		t.Fatalf("%s: %v, want the VM limit", failed, limitErr)
	}
	if !strings.Contains(limitErr.Error(), "exit 1: The number of VMs exceeds the system limit (other running VMs: ") {
		t.Errorf("limit error text %q", limitErr)
	}
	for n := range chans {
		if n != failed {
			env.WaitRunning(n, true, 10*time.Second)
		}
	}

	// Linux guests are not counted.
	if _, err := c.Run(ctx, "lin"); err != nil {
		t.Fatal(err)
	}
	env.WaitRunning("lin", true, 10*time.Second)

	// With the start grace the limit comes back from Run itself.
	gc := tartvm.New(tartvm.Options{Path: env.Bin, Home: env.Home, LogDir: t.TempDir()})
	_, err := gc.Run(ctx, failed)
	if !tarty.IsVMLimit(err) {
		t.Errorf("Run with grace = %v, want the VM limit", err)
	}

	// Stop everything; a limit of 1 (one foreign VM) lets only one through.
	for n := range chans {
		if err := c.Stop(ctx, n, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	env.SetConfig(faketart.Config{VMLimit: ptr(1)})
	if _, err := gc.Run(ctx, "a"); err != nil {
		t.Fatalf("first run under limit 1: %v", err)
	}
	env.WaitRunning("a", true, 10*time.Second)
	if _, err := gc.Run(ctx, "b"); !tartvm.VMLimit(err) {
		t.Errorf("second run under limit 1 = %v, want the VM limit", err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestStopEscalatesToKill: a VM that ignores SIGINT is killed after the stop
// timeout, and the Run channel reports the kill.
func TestStopEscalatesToKill(t *testing.T) {
	t.Parallel()
	c, env := newClient(t, noGrace)
	ctx := testCtx(t)
	env.Seed("vm", faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "run", IgnoreStop: true}}})
	ch, err := c.Run(ctx, "vm")
	if err != nil {
		t.Fatal(err)
	}
	env.WaitRunning("vm", true, 10*time.Second)
	if err := c.Stop(ctx, "vm", time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	err = waitResult(t, ch)
	var te *tartvm.Error
	if !errors.As(err, &te) || te.ExitCode != -1 || err.Error() != "tart run vm: signal: killed" {
		t.Errorf("result = %v, want a killed run", err)
	}
}
