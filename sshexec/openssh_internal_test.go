package sshexec

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestOpenSSHArgs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Application Support", "tarty")
	key := filepath.Join(t.TempDir(), "id 100%")
	os.WriteFile(key, []byte("x"), 0o600)
	o, err := newOpenSSH(Options{User: "admin", Port: 2222, KeyFile: key, Keepalive: 1500 * time.Millisecond,
		ConnectTimeout: time.Minute, SSHPath: "/bin/true"}, opensshKnownHosts{dir: opensshKnownHostsDir(filepath.Join(dir, "known_hosts"))})
	if err != nil {
		t.Fatal(err)
	}
	args := o.args("ghcr.io/acme/runner:v1", 30*time.Second)
	joined := strings.Join(args, "\x00")
	for _, want := range []string{
		"BatchMode=yes", "ConnectTimeout=30", "ServerAliveInterval=2", "ServerAliveCountMax=3",
		"StrictHostKeyChecking=accept-new", "IdentitiesOnly=yes", "UpdateHostKeys=no",
		`UserKnownHostsFile="` + filepath.Join(dir, "known_hosts.openssh") + "/",
		"HostKeyAlias=ghcr.io_acme_runner_v1-",
		`IdentityFile="` + strings.ReplaceAll(key, "%", "%%") + `"`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("args lack %q:\n%s", want, strings.Join(args, " "))
		}
	}
	for _, pair := range [][2]string{{"-p", "2222"}, {"-l", "admin"}, {"-F", "none"}} {
		i := slices.Index(args, pair[0])
		if i < 0 || args[i+1] != pair[1] {
			t.Errorf("args lack %s %s", pair[0], pair[1])
		}
	}
	if !slices.Contains(args, "-T") {
		t.Error("args lack -T")
	}
	kh := o.kh
	if first, again := kh.alias("x"), kh.alias("x"); kh.alias("a/b") == kh.alias("a_b") || first != again {
		t.Error("aliases must be stable and distinct per image")
	}

	// ssh itself accepts the options (quoted paths with spaces and %).
	if real, err := exec.LookPath("ssh"); err == nil {
		cmd := exec.Command(real, append(o.args("img", time.Second), "-G", "example")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G: %v: %s", err, out)
		}
		if !strings.Contains(string(out), "userknownhostsfile "+filepath.Join(dir, "known_hosts.openssh")) ||
			!strings.Contains(string(out), "identityfile "+key) {
			t.Errorf("ssh -G did not read the paths back:\n%s", out)
		}
	}
}

func TestOpenSSHClassify(t *testing.T) {
	dir := t.TempDir()
	kh := opensshKnownHosts{dir: dir}
	o := &openssh{kh: kh}
	trusted := newPub(t)
	line := kh.alias("img") + " " + string(ssh.MarshalAuthorizedKey(trusted))
	os.WriteFile(kh.file("img"), []byte(line), 0o600)

	exit255 := exitErrorWith(t, 255)
	changed := `@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
The fingerprint for the ED25519 key sent by the remote host is
SHA256:Ab12+/cdEF.
Host key for img-1234 has changed and you have requested strict checking.
Host key verification failed.
`
	err := o.classify("img", "10.0.0.9", changed, exit255)
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Presented != "SHA256:Ab12+/cdEF" || hk.Trusted != ssh.FingerprintSHA256(trusted) {
		t.Fatalf("changed key: %v (%+v)", err, hk)
	}
	if err := o.classify("img", "h", "admin@h: Permission denied (publickey,password).\n", exit255); !errors.Is(err, ErrAuth) {
		t.Errorf("permission denied: %v", err)
	}
	var ee *ExitError
	if err := o.classify("img", "h", "some error of the remote command\n", exit255); !errors.As(err, &ee) || ee.Status != 255 {
		t.Errorf("remote exit 255: %v", err)
	}
	err = o.classify("img", "h", "remote noise\nTimeout, server h not responding.\n", exit255)
	if errors.As(err, &ee) || !strings.Contains(err.Error(), "not responding") || strings.Contains(err.Error(), "remote noise") {
		t.Errorf("keepalive timeout: %v", err)
	}
}

func exitErrorWith(t *testing.T, code int) *exec.ExitError {
	t.Helper()
	err := exec.Command("sh", "-c", "exit "+strconv.Itoa(code)).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("sh exit %d: %v", code, err)
	}
	return ee
}
