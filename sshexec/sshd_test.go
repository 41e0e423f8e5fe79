package sshexec_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tartyci/tarty/internal/sshdtest"
	"github.com/tartyci/tarty/sshexec"
)

const image = "ghcr.io/acme/runner:latest" // clones of one image share its host key

func TestRun(t *testing.T) {
	srv := sshdtest.Start(t)
	binary := bytes.Repeat([]byte{0, 1, 2, '\n', 0xff, 'x', '\r'}, 5000)
	cases := []struct {
		name       string
		command    string
		stdin      []byte
		wantOut    string
		wantErrOut string
		wantStatus int // 0: success
		wantMsg    string
	}{
		{name: "success streams stdout and stderr", command: "echo out; echo err >&2", wantOut: "out\n", wantErrOut: "err\n"},
		{name: "non-zero exit is ExitError", command: "echo before; exit 3", wantOut: "before\n", wantStatus: 3, wantMsg: "echo: exit status 3"},
		{name: "stdin round trip", command: "cat", stdin: binary, wantOut: string(binary)},
		{name: "stdin never in the error", command: "cat >/dev/null; exit 9", stdin: []byte("hunter2-secret"), wantStatus: 9, wantMsg: "cat: exit status 9"},
		{name: "command not found", command: "no-such-command-tarty", wantStatus: 127, wantMsg: "no-such-command-tarty: exit status 127"},
	}
	for _, kind := range clientKinds {
		t.Run(kind, func(t *testing.T) {
			s := newSetup(t, srv, kind)
			c := s.client(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					var stdin io.Reader
					if tc.stdin != nil {
						stdin = bytes.NewReader(tc.stdin)
					}
					var out, errOut bytes.Buffer
					err := c.Run(ctxT(t, 20*time.Second), image, "127.0.0.1", tc.command, stdin, &out, &errOut)
					if tc.wantStatus == 0 && err != nil {
						t.Fatalf("Run: %v (stderr %q)", err, errOut.String())
					}
					if tc.wantStatus != 0 {
						var st interface{ ExitStatus() int }
						if !errors.As(err, &st) || st.ExitStatus() != tc.wantStatus {
							t.Fatalf("Run error = %v, want exit status %d", err, tc.wantStatus)
						}
						var ee *sshexec.ExitError
						if !errors.As(err, &ee) || err.Error() != tc.wantMsg {
							t.Errorf("error message %q, want %q", err, tc.wantMsg)
						}
					}
					if out.String() != tc.wantOut {
						t.Errorf("stdout = %.80q (%d bytes), want %.80q (%d bytes)", out.String(), out.Len(), tc.wantOut, len(tc.wantOut))
					}
					// The openssh client may add one "Permanently added" notice
					// on an image's first connection.
					if !strings.Contains(errOut.String(), tc.wantErrOut) {
						t.Errorf("stderr = %q, want it to contain %q", errOut.String(), tc.wantErrOut)
					}
				})
			}
			if strings.Contains(s.logs.String(), "hunter2") {
				t.Error("stdin leaked into the log")
			}
		})
	}
}

// progressWriter checks a stream of n bytes of 'a' then n of 'b' on the fly
// and signals when the first half has arrived.
type progressWriter struct {
	n, got int64
	bad    error
	half   chan struct{}
}

func (w *progressWriter) Write(p []byte) (int, error) {
	for _, b := range p {
		want := byte('a')
		if w.got >= w.n {
			want = 'b'
		}
		if b != want && w.bad == nil {
			w.bad = fmt.Errorf("byte %d = %q, want %q", w.got, b, want)
		}
		w.got++
		if w.got == w.n {
			close(w.half)
		}
	}
	return len(p), nil
}

func TestRunLargeOutputIsStreamed(t *testing.T) {
	srv := sshdtest.Start(t)
	const half = 4 << 20
	for _, kind := range clientKinds {
		t.Run(kind, func(t *testing.T) {
			c := newSetup(t, srv, kind).client(t)
			gate := filepath.Join(t.TempDir(), "go")
			// The second half waits for a file the test creates only after
			// it received the first half: output must be streamed.
			cmd := fmt.Sprintf(`head -c %d /dev/zero | tr '\0' a; while [ ! -e %s ]; do sleep 0.02; done; head -c %d /dev/zero | tr '\0' b`, half, gate, half)
			w := &progressWriter{n: half, half: make(chan struct{})}
			errc := make(chan error, 1)
			go func() { errc <- c.Run(ctxT(t, 60*time.Second), image, "127.0.0.1", cmd, nil, w, io.Discard) }()
			select {
			case <-w.half:
			case err := <-errc:
				t.Fatalf("Run returned before the gate opened: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("first half never arrived")
			}
			if err := os.WriteFile(gate, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if w.bad != nil || w.got != 2*half {
				t.Fatalf("got %d bytes (%v), want %d", w.got, w.bad, 2*half)
			}
		})
	}
}

func TestRunCancel(t *testing.T) {
	srv := sshdtest.Start(t)
	for _, kind := range clientKinds {
		t.Run(kind, func(t *testing.T) {
			c := newSetup(t, srv, kind).client(t)
			dir := t.TempDir()
			cmd := fmt.Sprintf(`trap 'echo term > %[1]s/term; exit 1' TERM; sleep 300 & echo $! > %[1]s/sleep.pid; echo started; wait`, dir)
			t.Cleanup(func() { killPidFile(filepath.Join(dir, "sleep.pid")) })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := newSyncWriter("started")
			errc := make(chan error, 1)
			go func() { errc <- c.Run(ctx, image, "127.0.0.1", cmd, nil, out, io.Discard) }()
			select {
			case <-out.seen:
			case err := <-errc:
				t.Fatalf("Run ended early: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("command never started")
			}
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Run after cancel = %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			if kind != sshexec.ClientNative {
				return // ssh cannot send signals without a tty: closing is all it does
			}
			// The native client asks sshd to signal the command. sshd refuses
			// for root logins ("session signalling requires privilege
			// separation", none after a root login): then check that the
			// request reached sshd.
			if os.Geteuid() == 0 {
				waitFor(t, "sshd to get the signal request", 10*time.Second, func() bool {
					return strings.Contains(srv.Log(), "session_signal_req")
				})
				return
			}
			waitFor(t, "the command to get SIGTERM", 10*time.Second, func() bool { return readFile(filepath.Join(dir, "term")) == "term" })
			waitFor(t, "the command's child to die", 10*time.Second, func() bool { return !pidAlive(filepath.Join(dir, "sleep.pid")) })
		})
	}
}

func TestAuthFailures(t *testing.T) {
	srv := sshdtest.Start(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	stranger := sshdtest.NewKey(t, t.TempDir(), "stranger")
	for _, kind := range clientKinds {
		t.Run(kind, func(t *testing.T) {
			c := newSetup(t, srv, kind).client(t, func(o *sshexec.Options) {
				o.KeyFile = stranger.Private
				o.ConnectTimeout = 2 * time.Second // room for one whole attempt on a loaded machine
			})
			err := c.Run(ctxT(t, 20*time.Second), image, "127.0.0.1", "true", nil, nil, nil)
			if !errors.Is(err, sshexec.ErrAuth) {
				t.Fatalf("Run with a wrong key = %v, want ErrAuth", err)
			}
			t.Logf("Run: %v", err)
			err = c.WaitReady(ctxT(t, 20*time.Second), image, "127.0.0.1")
			if !errors.Is(err, sshexec.ErrAuth) {
				t.Fatalf("WaitReady with a wrong key = %v, want ErrAuth", err)
			}
		})
	}
}

func TestHostKeyChange(t *testing.T) {
	for _, kind := range clientKinds {
		t.Run(kind, func(t *testing.T) {
			srv := sshdtest.Start(t)
			s := newSetup(t, srv, kind)
			c := s.client(t)
			ctx := ctxT(t, 60*time.Second)
			oldFP := srv.HostKey.Fingerprint()
			if err := c.Run(ctx, image, "127.0.0.1", "true", nil, nil, nil); err != nil {
				t.Fatalf("first use: %v", err)
			}
			hosts := []string{"127.0.0.1"}
			if srv.SecondHost != "" {
				// Another clone of the same image (another IP) is trusted by image.
				if err := c.Run(ctx, image, srv.SecondHost, "true", nil, nil, nil); err != nil {
					t.Fatalf("second clone: %v", err)
				}
				hosts = append(hosts, srv.SecondHost)
			}

			srv.Stop()
			srv.RotateHostKey()
			srv.Start()
			newFP := srv.HostKey.Fingerprint()

			for _, host := range hosts {
				err := c.Run(ctx, image, host, "true", nil, nil, nil)
				var hk *sshexec.HostKeyError
				if !errors.As(err, &hk) {
					t.Fatalf("Run after key change via %s = %v, want HostKeyError", host, err)
				}
				if hk.Trusted != oldFP || hk.Presented != newFP || hk.Image != image {
					t.Errorf("HostKeyError = %+v, want trusted %s presented %s", hk, oldFP, newFP)
				}
				if !strings.Contains(err.Error(), oldFP) || !strings.Contains(err.Error(), newFP) {
					t.Errorf("message %q does not name both fingerprints", err)
				}
				var changed interface{ HostKeyChanged() bool }
				if !errors.As(err, &changed) || !changed.HostKeyChanged() {
					t.Error("no HostKeyChanged() method")
				}
			}

			// WaitReady gives up at once instead of retrying until its timeout.
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			c2 := s.client(t, func(o *sshexec.Options) { o.ConnectTimeout = time.Minute })
			err := c2.WaitReady(wctx, image, "127.0.0.1")
			var hk *sshexec.HostKeyError
			if !errors.As(err, &hk) || wctx.Err() != nil {
				t.Fatalf("WaitReady after key change = %v (ctx %v), want an immediate HostKeyError", err, wctx.Err())
			}

			// Another image is trusted on its own first use.
			if err := c.Run(ctx, "other-image", "127.0.0.1", "true", nil, nil, nil); err != nil {
				t.Fatalf("other image: %v", err)
			}
			if err := c.ForgetHostKey(image); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if err := c.Run(ctx, image, "127.0.0.1", "true", nil, nil, nil); err != nil {
					t.Fatalf("after ForgetHostKey (run %d): %v", i, err)
				}
			}
		})
	}
}

func TestWaitReady(t *testing.T) {
	for _, kind := range clientKinds {
		t.Run(kind+"/retries until sshd starts", func(t *testing.T) {
			srv := sshdtest.New(t) // not listening yet
			s := newSetup(t, srv, kind)
			c := s.client(t, func(o *sshexec.Options) { o.ConnectTimeout = 30 * time.Second })
			errc := make(chan error, 1)
			go func() { errc <- c.WaitReady(ctxT(t, 60*time.Second), image, "127.0.0.1") }()
			waitLog(t, s.logs, "ssh not ready yet")
			srv.Start()
			select {
			case err := <-errc:
				if err != nil {
					t.Fatalf("WaitReady: %v", err)
				}
			case <-time.After(40 * time.Second):
				t.Fatal("WaitReady did not return")
			}
		})
		t.Run(kind+"/closed port times out", func(t *testing.T) {
			srv := sshdtest.New(t)
			s := newSetup(t, srv, kind)
			c := s.client(t, func(o *sshexec.Options) { o.ConnectTimeout = 1500 * time.Millisecond })
			ctx := ctxT(t, 30*time.Second)
			err := c.WaitReady(ctx, image, "127.0.0.1")
			if err == nil || ctx.Err() != nil {
				t.Fatalf("WaitReady = %v (ctx %v), want its own timeout", err, ctx.Err())
			}
			if !strings.Contains(err.Error(), "not ready after") || !strings.Contains(err.Error(), "refused") {
				t.Errorf("error %q should say it gave up and why", err)
			}
		})
		t.Run(kind+"/ctx cancel", func(t *testing.T) {
			srv := sshdtest.New(t)
			s := newSetup(t, srv, kind)
			c := s.client(t, func(o *sshexec.Options) { o.ConnectTimeout = time.Minute })
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- c.WaitReady(ctx, image, "127.0.0.1") }()
			waitLog(t, s.logs, "ssh not ready yet")
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "refused") {
					t.Fatalf("WaitReady = %v, want context.Canceled with the last error", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("WaitReady ignored cancel")
			}
		})
	}
}

func waitLog(t *testing.T, logs *logSink, msg string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line := <-logs.lines:
			if strings.Contains(line, msg) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q in the log:\n%s", msg, logs.String())
		}
	}
}

func pidAlive(pidFile string) bool {
	var pid int
	if _, err := fmt.Sscan(readFile(pidFile), &pid); err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

func killPidFile(pidFile string) {
	var pid int
	if _, err := fmt.Sscan(readFile(pidFile), &pid); err == nil && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// TestCopyHostKeyWithRealSSH: after a rebuild promotes the build VM's image,
// the runner image trusts the key the build presented, for both clients, and
// a guest with another key is refused under the runner's name.
func TestCopyHostKeyWithRealSSH(t *testing.T) {
	for _, kind := range clientKinds {
		t.Run(kind, func(t *testing.T) {
			srv := sshdtest.Start(t)
			s := newSetup(t, srv, kind)
			c := s.client(t)
			ctx := ctxT(t, 60*time.Second)
			if err := c.Run(ctx, "build", "127.0.0.1", "true", nil, nil, nil); err != nil {
				t.Fatalf("first use of build: %v", err)
			}
			if err := c.CopyHostKey("build", "runner"); err != nil {
				t.Fatal(err)
			}
			srv.Stop()
			srv.RotateHostKey()
			srv.Start()
			// The runner image now trusts the build's (old) key: the rotated one is refused.
			var hk *sshexec.HostKeyError
			if err := c.Run(ctx, "runner", "127.0.0.1", "true", nil, nil, nil); !errors.As(err, &hk) {
				t.Fatalf("runner with another key = %v, want HostKeyError", err)
			}
			// Copying from an image that trusts nothing makes the runner trust on first use again.
			if err := c.CopyHostKey("never-used", "runner"); err != nil {
				t.Fatal(err)
			}
			if err := c.Run(ctx, "runner", "127.0.0.1", "true", nil, nil, nil); err != nil {
				t.Fatalf("runner after copying nothing: %v", err)
			}
		})
	}
}
