package sshexec_test

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/tartyci/tarty/internal/sshdtest"
	"github.com/tartyci/tarty/sshexec"
)

// serveAgent runs an in-memory SSH agent holding the key in keyFile.
func serveAgent(t *testing.T, keyFile string) string {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	ring := agent.NewKeyring()
	if err := ring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				agent.ServeAgent(ring, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return sock
}

func TestAuthSources(t *testing.T) {
	srv := sshdtest.Start(t)
	run := func(t *testing.T, c *sshexec.Client) {
		t.Helper()
		var out bytes.Buffer
		if err := c.Run(ctxT(t, 20*time.Second), image, "127.0.0.1", "echo in", nil, &out, nil); err != nil || out.String() != "in\n" {
			t.Fatalf("Run = %v, %q", err, out.String())
		}
	}
	for _, kind := range clientKinds {
		t.Run(kind+"/agent", func(t *testing.T) {
			t.Setenv("SSH_AUTH_SOCK", serveAgent(t, srv.ClientKey.Private))
			t.Setenv("HOME", t.TempDir())
			run(t, newSetup(t, srv, kind).client(t, func(o *sshexec.Options) { o.KeyFile = "" }))
		})
	}
	t.Run("native/default key", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("SSH_AUTH_SOCK", "")
		t.Setenv("HOME", home)
		b, _ := os.ReadFile(srv.ClientKey.Private)
		os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
		if err := os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, newSetup(t, srv, sshexec.ClientNative).client(t, func(o *sshexec.Options) { o.KeyFile = "" }))
	})
	t.Run("native/agent without the key falls back to the key file", func(t *testing.T) {
		other := sshdtest.NewKey(t, t.TempDir(), "other")
		t.Setenv("SSH_AUTH_SOCK", serveAgent(t, other.Private))
		run(t, newSetup(t, srv, sshexec.ClientNative).client(t))
	})
}

func TestNewRejects(t *testing.T) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	enc := filepath.Join(dir, "encrypted")
	// An encrypted key cannot be used without a prompt.
	pub, priv, _ := generateEd25519()
	_ = pub
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, enc, block)
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv("HOME", t.TempDir())
	cases := []struct {
		name string
		opts sshexec.Options
		want string
	}{
		{"no user", sshexec.Options{KnownHostsFile: kh, Password: "x"}, "user is required"},
		{"no known hosts", sshexec.Options{User: "u", Password: "x"}, "known hosts"},
		{"unknown client", sshexec.Options{User: "u", KnownHostsFile: kh, Password: "x", Client: "putty"}, "unknown client"},
		{"openssh with only a password", sshexec.Options{User: "u", KnownHostsFile: kh, Password: "x", Client: sshexec.ClientOpenSSH}, "cannot log in with a password"},
		{"native without credentials", sshexec.Options{User: "u", KnownHostsFile: kh}, "no SSH credentials"},
		{"missing key file", sshexec.Options{User: "u", KnownHostsFile: kh, KeyFile: filepath.Join(dir, "nope")}, "key file"},
		{"encrypted key file", sshexec.Options{User: "u", KnownHostsFile: kh, KeyFile: enc}, "passphrase"},
		{"bad port", sshexec.Options{User: "u", KnownHostsFile: kh, Password: "x", Port: 70000}, "port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sshexec.New(tc.opts)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	c, err := sshexec.New(sshexec.Options{User: "u", KnownHostsFile: kh, Password: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]string{{"", "h"}, {"img with space", "h"}, {"img", ""}, {"img", "-oProxyCommand=x"}} {
		if err := c.Run(ctxT(t, time.Second), bad[0], bad[1], "true", nil, nil, nil); err == nil {
			t.Errorf("Run(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
