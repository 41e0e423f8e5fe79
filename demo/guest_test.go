//go:build unix

package demo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tartyci/tarty/sshexec"
)

type guestEnvT struct {
	g      *Guest
	c      *sshexec.Client
	home   string
	key    string // the accepted key's file
	mu     sync.Mutex
	events []string
}

// newTestGuest starts a Guest and Tarty's native SSH client for it.
func newTestGuest(t *testing.T) *guestEnvT {
	t.Helper()
	dir := t.TempDir()
	e := &guestEnvT{home: filepath.Join(dir, "home")}
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	e.key = keyFile
	sshPub, _ := ssh.NewPublicKey(pub)
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := ssh.NewSignerFromKey(hostPriv)
	e.g, err = StartGuest(GuestOptions{User: "admin", ClientKey: sshPub, HostKey: hostKey, Home: e.home,
		Env: guestEnv(dir), OnCommand: func(c string, s int) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.events = append(e.events, c)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.g.Close)
	e.c, err = sshexec.New(sshexec.Options{User: "admin", Port: e.g.Port(), KeyFile: keyFile,
		KnownHostsFile: filepath.Join(dir, "known_hosts"), ConnectTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestGuestRunsCommandsWithStdinAndStatus(t *testing.T) {
	e := newTestGuest(t)
	ctx := context.Background()
	if err := e.c.WaitReady(ctx, "img", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := e.c.Run(ctx, "img", "127.0.0.1", `echo "home=$HOME pwd=$(pwd) shell=$SHELL"; cat; echo oops >&2; exit 3`,
		strings.NewReader("from stdin\n"), &out, &errOut)
	var ee *sshexec.ExitError
	if !errors.As(err, &ee) || ee.Status != 3 {
		t.Fatalf("Run = %v, want exit status 3", err)
	}
	want := "home=" + e.home + " pwd=" + e.home + " shell=/bin/sh\nfrom stdin\n"
	if out.String() != want || errOut.String() != "oops\n" {
		t.Errorf("stdout %q stderr %q, want %q and %q", out.String(), errOut.String(), want, "oops\n")
	}
	if err := e.c.Run(ctx, "img", "127.0.0.1", "test -d \"$HOME\"", nil, nil, nil); err != nil {
		t.Errorf("Run with no stdin: %v", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.events) != 4 || e.events[3] != `test -d "$HOME"` { // each command starts and ends
		t.Errorf("OnCommand heard %q", e.events)
	}
}

// Start is how Tarty starts the runner: the detach wrapper needs sh, mktemp,
// wc and cat, receives stdin in full and outlives the session.
func TestGuestStartDetachedWithStdin(t *testing.T) {
	e := newTestGuest(t)
	ctx := context.Background()
	if err := e.c.Start(ctx, "img", "127.0.0.1", `sleep 0.2; cat > "$HOME/got"`, strings.NewReader("jit-config")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(e.home, "got"))
		if string(b) == "jit-config" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the detached command did not get its stdin: %q", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if log, _ := os.ReadFile(filepath.Join(e.home, "tarty-start.log")); !strings.Contains(string(log), "starting detached command") {
		t.Errorf("start log: %q", log)
	}
}

func TestGuestCancelAndCloseEndProcesses(t *testing.T) {
	e := newTestGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.c.Run(ctx, "img", "127.0.0.1", "sleep 30", nil, nil, nil); err == nil {
		t.Fatal("Run of a cancelled command succeeded")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancelled Run took %s", time.Since(start))
	}
	// A detached process outlives its session, but not Close.
	if err := e.c.Start(context.Background(), "img", "127.0.0.1", "sleep 60", nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(e.g.Alive()) != 1 { // the cancelled sleep's group is gone
		if time.Now().After(deadline) {
			t.Fatalf("process groups alive: %v, want the detached one only", e.g.Alive())
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.g.Close()
	deadline = time.Now().Add(5 * time.Second)
	for len(e.g.Alive()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("process groups still alive after Close: %v", e.g.Alive())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGuestRefusesWhatWouldStopTheHost(t *testing.T) {
	e := newTestGuest(t)
	err := e.c.Run(context.Background(), "img", "127.0.0.1", "sudo -n shutdown -h now", nil, nil, nil)
	var ee *sshexec.ExitError
	if !errors.As(err, &ee) || ee.Status != 126 {
		t.Fatalf("Run(sudo shutdown) = %v, want exit 126", err)
	}
	for _, c := range []string{"shutdown -h now", "x; reboot", "poweroff", "(halt)", "echo 'sudo'"} {
		if !refused.MatchString(c) {
			t.Errorf("%q is not refused", c)
		}
	}
	// The demo's own commands run.
	w, err := newWorld("/bin/true", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	for _, c := range []string{w.cfg.Runners.ShutdownCommand, w.cfg.Rebuild.Command, "test -x '/x/actions-runner'/run.sh"} {
		if refused.MatchString(c) {
			t.Errorf("%q is refused", c)
		}
	}
}

func TestGuestRefusesOtherKeysAndUsers(t *testing.T) {
	e := newTestGuest(t)
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	keyFile := filepath.Join(dir, "other")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	for _, o := range []sshexec.Options{
		{User: "admin", KeyFile: keyFile},
		{User: "root", KeyFile: e.key},
	} {
		o.Port, o.KnownHostsFile, o.ConnectTimeout = e.g.Port(), filepath.Join(dir, "kh"), time.Second
		c, err := sshexec.New(o)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Run(context.Background(), "img", "127.0.0.1", "true", nil, nil, nil)
		if !errors.Is(err, sshexec.ErrAuth) {
			t.Errorf("%s with key %s: %v, want ErrAuth", o.User, filepath.Base(o.KeyFile), err)
		}
	}
}
