package sshexec

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func newPub(t testing.TB) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestHostKeyStoreTOFU(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "known_hosts") // parent created on demand
	s := newHostKeyStore(path, zeroLog())
	k1, k2 := newPub(t), newPub(t)

	if algos, err := s.algorithms("img"); err != nil || algos != nil {
		t.Fatalf("algorithms before first use = %v, %v", algos, err)
	}
	if err := s.check("img", "10.0.0.1:22", k1); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := s.check("img", "10.0.0.2:22", k1); err != nil {
		t.Fatalf("same key from another clone: %v", err)
	}
	if algos, _ := s.algorithms("img"); len(algos) != 1 || algos[0] != ssh.KeyAlgoED25519 {
		t.Errorf("algorithms after first use = %v", algos)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file: %v, %v", fi, err)
	}
	// A second store on the same file (another Client) sees the key.
	err = newHostKeyStore(path, zeroLog()).check("img", "10.0.0.3:22", k2)
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Trusted != ssh.FingerprintSHA256(k1) || hk.Presented != ssh.FingerprintSHA256(k2) {
		t.Fatalf("changed key = %v", err)
	}
	if err := s.check("other", "10.0.0.3:22", k2); err != nil {
		t.Fatalf("other image: %v", err)
	}
	if err := s.forget("img"); err != nil {
		t.Fatal(err)
	}
	if err := s.forget("img"); err != nil {
		t.Fatalf("forget twice: %v", err)
	}
	if err := s.check("img", "10.0.0.3:22", k2); err != nil {
		t.Fatalf("after forget: %v", err)
	}
	if err := s.check("other", "10.0.0.3:22", k2); err != nil {
		t.Fatalf("forget touched another image: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if e.Name() != "known_hosts" && e.Name() != "known_hosts.lock" {
			t.Errorf("temp file left beside the store: %v", e.Name())
		}
	}
	b, _ := os.ReadFile(path)
	if lines := strings.Count(string(b), "\n"); lines != 3 { // header + 2 images
		t.Errorf("store file:\n%s", b)
	}
}

func TestHostKeyStoreCorrupt(t *testing.T) {
	for _, content := range []string{
		"img ssh-ed25519\n",
		"img ssh-ed25519 not-base64!\n",
		"img ssh-rsa " + "AAAAC3NzaC1lZDI1NTE5AAAAIGVtmI+gBmxXbKBpKr2qSb0rTJ0kEvjz7gW3kTyVprI5\n",
	} {
		path := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(path, []byte("# comment\n\n"+content), 0o600)
		err := newHostKeyStore(path, zeroLog()).check("img", "h", newPub(t))
		if err == nil || !strings.Contains(err.Error(), ":3") {
			t.Errorf("%q: err = %v, want one naming line 3", content, err)
		}
	}
}

func TestFirstWord(t *testing.T) {
	for in, want := range map[string]string{
		"  ./run.sh --jitconfig x": "./run.sh",
		"":                         "(empty command)",
		"echo":                     "echo",
		// Leading assignments may carry credentials: never logged.
		"TOKEN=s3cret ./run.sh":    "./run.sh",
		"A=1 B_2=two ./run.sh x":   "./run.sh",
		`TOKEN='s3 cret' ./run.sh`: "./run.sh",
		`TOKEN="a \"b c" ./run.sh`: "./run.sh",
		`TOKEN=a\ b ./run.sh`:      "./run.sh",
		"TOKEN=s3cret":             "TOKEN=***",
		"TOKEN='s3 cret' OTHER=x":  "TOKEN=***",
		"\tX=1\n./run.sh":          "./run.sh",
		"./configure --prefix=/x":  "./configure",
		"1A=x cmd":                 "1A=x", // not an assignment in sh: it is the command
		"env TOKEN=x cmd":          "env",
	} {
		got := firstWord(in)
		if got != want {
			t.Errorf("firstWord(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(got, "s3") || strings.Contains(got, "cret") {
			t.Errorf("firstWord(%q) = %q leaks an assignment's value", in, got)
		}
	}
}

// TestImageNamesTheStoreCannotHold: a name starting with '#' would be read
// back as a comment (no key: any key trusted again); '-' is a flag to tart.
func TestImageNamesTheStoreCannotHold(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	s := newHostKeyStore(path, zeroLog())
	for _, image := range []string{"#img", "-img", "", "a b"} {
		if err := s.check(image, "h", newPub(t)); err == nil {
			t.Errorf("check(%q) = nil, want an invalid-name error", image)
		}
		if err := s.forget(image); err == nil {
			t.Errorf("forget(%q) = nil", image)
		}
		if err := checkTarget(image, "10.0.0.1"); err == nil {
			t.Errorf("checkTarget(%q) = nil", image)
		}
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("the store was written for an invalid name")
	}
	if err := s.check("img#1", "h", newPub(t)); err != nil {
		t.Errorf("'#' inside a name is fine: %v", err)
	}
}

// TestCopyHostKey: the trusted key follows an image on promote and rollback,
// in both clients' stores.
func TestCopyHostKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	c, err := New(Options{User: "admin", Password: "admin", KnownHostsFile: path})
	if err != nil {
		t.Fatal(err)
	}
	k := newPub(t)
	if err := c.store.check("build", "10.0.0.1:22", k); err != nil {
		t.Fatal(err)
	}
	if err := c.oh.ensureDir(); err != nil {
		t.Fatal(err)
	}
	// What ssh writes with HostKeyAlias and accept-new.
	line := c.oh.alias("build") + " " + k.Type() + " " + base64.StdEncoding.EncodeToString(k.Marshal()) + "\n"
	if err := os.WriteFile(c.oh.file("build"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := c.CopyHostKey("build", "runner"); err != nil {
		t.Fatal(err)
	}
	if err := c.store.check("runner", "10.0.0.2:22", k); err != nil {
		t.Errorf("native store after copy: %v", err)
	}
	if err := c.store.check("runner", "10.0.0.2:22", newPub(t)); !errors.As(err, new(*HostKeyError)) {
		t.Errorf("native store trusts another key after copy: %v", err)
	}
	b, err := os.ReadFile(c.oh.file("runner"))
	if err != nil {
		t.Fatal(err)
	}
	_, hosts, key, _, _, err := ssh.ParseKnownHosts(b)
	if err != nil || len(hosts) != 1 || hosts[0] != c.oh.alias("runner") || !bytes.Equal(key.Marshal(), k.Marshal()) {
		t.Errorf("openssh file after copy: %q (%v)", b, err)
	}
	if fi, err := os.Stat(c.oh.file("runner")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("openssh file mode: %v, %v", fi.Mode(), err)
	}

	// Copying from an image with no key leaves the target trusting nothing.
	if err := c.CopyHostKey("never-used", "runner"); err != nil {
		t.Fatal(err)
	}
	if algos, _ := c.store.algorithms("runner"); algos != nil {
		t.Errorf("native store still trusts a key for runner: %v", algos)
	}
	if _, err := os.Stat(c.oh.file("runner")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("openssh file for runner left: %v", err)
	}
	if c.CopyHostKey("#x", "runner") == nil || c.CopyHostKey("build", "-x") == nil {
		t.Error("invalid image names accepted")
	}
}
