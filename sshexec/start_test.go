package sshexec_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tartyci/tarty/internal/sshdtest"
	"github.com/tartyci/tarty/sshexec"
)

func newSecret(t *testing.T) string {
	b := make([]byte, 16)
	rand.Read(b)
	return "jitconfig-" + hex.EncodeToString(b)
}

// requireProc skips where /proc is not the Linux one.
func requireProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/*/cmdline")
	}
}

// assertNowhere checks that secret is in no process's arguments or
// environment on this machine (both the SSH client and the "guest" side).
// It returns how many processes it read.
func assertNowhere(t *testing.T, secret, when string) int {
	t.Helper()
	pids, _ := filepath.Glob("/proc/[0-9]*")
	read := 0
	for _, p := range pids {
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(filepath.Join(p, f))
			if err != nil {
				continue // gone, or not ours
			}
			read++
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s: secret found in %s/%s: %q", when, p, f, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
			}
		}
	}
	return read
}

// processWith reports whether some process's arguments contain s.
func processWith(s string) bool {
	pids, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range pids {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// detachedCommand records the sha256 of its stdin and its pid, prints a
// line, then stays alive.
func detachedCommand(dir string) string {
	return fmt.Sprintf(`sha256sum > %[1]s/hash.tmp && mv %[1]s/hash.tmp %[1]s/hash; echo detached-output; echo $$ > %[1]s/pid.tmp && mv %[1]s/pid.tmp %[1]s/pid; exec sleep 120`, dir)
}

func checkDetached(t *testing.T, c *sshexec.Client, dir, secret, startLog string) {
	t.Helper()
	pidFile := filepath.Join(dir, "pid")
	t.Cleanup(func() { killPidFile(pidFile) })
	waitFor(t, "the detached command to write its pid", 20*time.Second, func() bool { return readFile(pidFile) != "" })
	sum := sha256.Sum256([]byte(secret))
	if got := strings.Fields(readFile(filepath.Join(dir, "hash"))); len(got) == 0 || got[0] != hex.EncodeToString(sum[:]) {
		t.Errorf("detached command's stdin hash = %v, want sha256 of the secret", got)
	}
	// The connection that started it is closed; ask over a second one.
	var out bytes.Buffer
	if err := c.Run(ctxT(t, 20*time.Second), image, "127.0.0.1", "kill -0 $(cat "+pidFile+") && echo alive", nil, &out, nil); err != nil || out.String() != "alive\n" {
		t.Fatalf("detached command not running after Start returned: %v %q", err, out.String())
	}
	waitFor(t, "the start log", 10*time.Second, func() bool { return strings.Contains(readFile(startLog), "detached-output") })
	if l := readFile(startLog); !strings.Contains(l, "tarty: starting detached command") || strings.Contains(l, secret) {
		t.Errorf("start log = %q", l)
	}
	assertNowhere(t, secret, "detached command running")
	if left, _ := filepath.Glob("/tmp/tarty-stdin.*"); len(left) > 0 {
		for _, f := range left {
			if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(secret)) {
				t.Errorf("stdin left behind in %s", f)
			}
		}
	}
}

func TestStartDetached(t *testing.T) {
	requireProc(t)
	srv := sshdtest.Start(t)
	for _, kind := range clientKinds {
		t.Run(kind, func(t *testing.T) {
			s := newSetup(t, srv, kind)
			c := s.client(t)
			dir := t.TempDir()
			secret := newSecret(t)
			if err := c.Start(ctxT(t, 20*time.Second), image, "127.0.0.1", detachedCommand(dir), strings.NewReader(secret)); err != nil {
				t.Fatalf("Start: %v", err)
			}
			checkDetached(t, c, dir, secret, s.opts.StartLog)
			if strings.Contains(s.logs.String(), secret) {
				t.Error("secret in the client's log")
			}
		})
	}
}

// TestSecretNeverInArguments holds a Run and a Start half-way, with every
// process on both sides alive, and looks for the stdin secret in every
// process's arguments and environment.
func TestSecretNeverInArguments(t *testing.T) {
	requireProc(t)
	// Control: the scan does see a secret placed in a process's arguments.
	control := newSecret(t)
	ctl := exec.Command("sh", "-c", "sleep 60; :", control)
	ctl.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the control process", 10*time.Second, func() bool { return processWith(control) })
	syscall.Kill(-ctl.Process.Pid, syscall.SIGKILL) // sh and its sleep
	ctl.Wait()

	srv := sshdtest.Start(t)
	for _, kind := range clientKinds {
		t.Run(kind+"/run", func(t *testing.T) {
			s := newSetup(t, srv, kind)
			c := s.client(t)
			secret := newSecret(t)
			gate := filepath.Join(t.TempDir(), "go")
			cmd := fmt.Sprintf(`read -r line; echo "got ${#line}"; while [ ! -e %s ]; do sleep 0.02; done`, gate)
			out := newSyncWriter(fmt.Sprintf("got %d", len(secret)))
			errc := make(chan error, 1)
			go func() {
				errc <- c.Run(ctxT(t, 30*time.Second), image, "127.0.0.1", cmd, strings.NewReader(secret+"\n"), out, nil)
			}()
			select {
			case <-out.seen:
			case err := <-errc:
				t.Fatalf("Run ended early: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("remote never read stdin")
			}
			if kind == sshexec.ClientOpenSSH && !processWith("HostKeyAlias=") {
				t.Fatal("the ssh client process is not running: nothing was checked")
			}
			if n := assertNowhere(t, secret, "during Run"); n == 0 {
				t.Fatal("read no process at all")
			}
			os.WriteFile(gate, nil, 0o600)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}

	// For Start, a shim in front of ssh holds stdin open after the secret
	// went through, so the ssh client, the guest's wrapper and its cat are
	// all alive while we look; it also records ssh's exact argv.
	t.Run("openssh/start", func(t *testing.T) {
		realSSH := sshdtest.Require(t, "ssh", "/usr/bin/ssh")
		s := newSetup(t, srv, sshexec.ClientOpenSSH)
		tmp := t.TempDir()
		gate, argvFile := filepath.Join(tmp, "go"), filepath.Join(tmp, "argv")
		shim := filepath.Join(tmp, "ssh-shim")
		script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s\n{ cat; while [ ! -e %s ]; do sleep 0.02; done; } | %s \"$@\"\n", argvFile, gate, realSSH)
		if err := os.WriteFile(shim, []byte(script), 0o700); err != nil {
			t.Fatal(err)
		}
		c := s.client(t, func(o *sshexec.Options) { o.SSHPath = shim })
		dir := t.TempDir()
		secret := newSecret(t)
		errc := make(chan error, 1)
		go func() {
			errc <- c.Start(ctxT(t, 30*time.Second), image, "127.0.0.1", detachedCommand(dir), strings.NewReader(secret))
		}()
		// The wrapper in the "guest" has received the secret into its
		// private temp file and waits for the end of stdin.
		var stdinFile string
		waitFor(t, "the guest wrapper to receive stdin", 20*time.Second, func() bool {
			files, _ := filepath.Glob("/tmp/tarty-stdin.*")
			for _, f := range files {
				if b, err := os.ReadFile(f); err == nil && string(b) == secret {
					stdinFile = f
					return true
				}
			}
			return false
		})
		if fi, err := os.Stat(stdinFile); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("guest stdin file mode = %v, %v; want 0600", fi, err)
		}
		if !processWith("tarty-start") || !processWith("HostKeyAlias=") {
			t.Fatal("wrapper or ssh client not running: nothing was checked")
		}
		assertNowhere(t, secret, "during Start")
		if argv := readFile(argvFile); argv == "" || strings.Contains(argv, secret) {
			t.Errorf("ssh argv = %q", argv)
		}
		os.WriteFile(gate, nil, 0o600)
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Start did not return")
		}
		if _, err := os.Stat(stdinFile); !os.IsNotExist(err) {
			t.Errorf("guest stdin file %s still exists: %v", stdinFile, err)
		}
		checkDetached(t, c, dir, secret, s.opts.StartLog)
	})
}

func TestStartCancelled(t *testing.T) {
	srv := sshdtest.Start(t)
	c := newSetup(t, srv, sshexec.ClientNative).client(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Start(ctx, image, "127.0.0.1", "true", nil); err == nil {
		t.Fatal("Start with a cancelled context succeeded")
	}
}
