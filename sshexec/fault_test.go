package sshexec_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty/sshexec"
)

func faultClient(t *testing.T, kind string, port int, keyFile string, mutate ...func(*sshexec.Options)) *sshexec.Client {
	t.Helper()
	requireClient(t, kind)
	o := sshexec.Options{User: "tester", Port: port, KeyFile: keyFile, Client: kind,
		KnownHostsFile: filepath.Join(t.TempDir(), "known_hosts"),
		ConnectTimeout: 5 * time.Second, Keepalive: time.Second}
	for _, m := range mutate {
		m(&o)
	}
	c, err := sshexec.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runBounded runs c.Run and fails the test if it has not returned within
// limit: these faults must end in an error, never a hang.
func runBounded(t *testing.T, c *sshexec.Client, command string, limit time.Duration) (string, error) {
	t.Helper()
	var out bytes.Buffer
	errc := make(chan error, 1)
	go func() {
		errc <- c.Run(ctxT(t, 5*limit), image, "127.0.0.1", command, nil, &out, nil)
	}()
	select {
	case err := <-errc:
		return out.String(), err
	case <-time.After(limit):
		t.Fatalf("Run %q still running after %s", command, limit)
		return "", nil
	}
}

func TestFaults(t *testing.T) {
	fs := startFaultServer(t, authPublicKey)
	for _, kind := range clientKinds {
		t.Run(kind+"/connection dropped mid-command", func(t *testing.T) {
			c := faultClient(t, kind, fs.Port, fs.KeyFile)
			out, err := runBounded(t, c, "drop", 20*time.Second)
			var ee *sshexec.ExitError
			if err == nil || errors.As(err, &ee) {
				t.Fatalf("Run = %v, want a connection error", err)
			}
			if out != "partial output\n" {
				t.Errorf("stdout = %q", out)
			}
		})
		t.Run(kind+"/keepalive detects a dead guest", func(t *testing.T) {
			c := faultClient(t, kind, fs.Port, fs.KeyFile, func(o *sshexec.Options) {
				o.Keepalive = 250 * time.Millisecond // ssh rounds up to its 1 s minimum
			})
			out, err := runBounded(t, c, "freeze", 30*time.Second)
			if err == nil || !(strings.Contains(err.Error(), "stopped answering") || strings.Contains(err.Error(), "not responding")) {
				t.Fatalf("Run = %v, want a keepalive failure", err)
			}
			if out != "frozen\n" {
				t.Errorf("stdout = %q", out)
			}
		})
		t.Run(kind+"/slow banner honours the connect timeout", func(t *testing.T) {
			port := silentListener(t)
			c := faultClient(t, kind, port, fs.KeyFile, func(o *sshexec.Options) { o.ConnectTimeout = time.Second })
			_, err := runBounded(t, c, "ok", 20*time.Second)
			if err == nil || errors.Is(err, context.DeadlineExceeded) && strings.Contains(err.Error(), "cancelled") {
				t.Fatalf("Run = %v, want the connect timeout", err)
			}
			if !strings.Contains(err.Error(), "handshake") && !strings.Contains(err.Error(), "banner") {
				t.Errorf("error %q should name the handshake", err)
			}
		})
		t.Run(kind+"/success", func(t *testing.T) {
			c := faultClient(t, kind, fs.Port, fs.KeyFile)
			if _, err := runBounded(t, c, "ok", 20*time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNativePasswordAuth(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv("HOME", t.TempDir()) // no default keys
	for _, tc := range []struct {
		name string
		auth faultAuth
	}{{"password", authPassword}, {"keyboard-interactive", authKeyboardInteractive}} {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFaultServer(t, tc.auth)
			c := faultClient(t, sshexec.ClientNative, fs.Port, "", func(o *sshexec.Options) { o.Password = faultPassword })
			if _, err := runBounded(t, c, "ok", 20*time.Second); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if err := c.WaitReady(ctxT(t, 20*time.Second), image, "127.0.0.1"); err != nil {
				t.Fatalf("WaitReady: %v", err)
			}
			bad := faultClient(t, sshexec.ClientNative, fs.Port, "", func(o *sshexec.Options) { o.Password = "wrong" })
			_, err := runBounded(t, bad, "ok", 20*time.Second)
			if !errors.Is(err, sshexec.ErrAuth) {
				t.Fatalf("wrong password: %v, want ErrAuth", err)
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Errorf("password in error: %v", err)
			}
		})
	}
}

func TestWaitReadySlowBanner(t *testing.T) {
	port := silentListener(t)
	fs := startFaultServer(t, authPublicKey)
	for _, kind := range clientKinds {
		t.Run(kind, func(t *testing.T) {
			c := faultClient(t, kind, port, fs.KeyFile, func(o *sshexec.Options) { o.ConnectTimeout = 1500 * time.Millisecond })
			ctx := ctxT(t, 30*time.Second)
			err := c.WaitReady(ctx, image, "127.0.0.1")
			if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "not ready after") {
				t.Fatalf("WaitReady = %v, want its own timeout", err)
			}
		})
	}
}
