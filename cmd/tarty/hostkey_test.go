package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty/sshexec"
)

// trustHostKeys logs in to the fixture's sshd as clones of each image, so that
// state_dir's known hosts trust its host key for them.
func trustHostKeys(t *testing.T, f *doctorFixture, images ...string) *sshexec.Client {
	t.Helper()
	c, err := sshexec.New(sshexec.Options{User: f.sshd.User, Port: f.sshd.Port, KeyFile: f.sshd.ClientKey.Private,
		ConnectTimeout: 20 * time.Second, KnownHostsFile: filepath.Join(f.cfg.StateDir, "known_hosts")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, im := range images {
		if err := c.Run(ctx, im, "127.0.0.1", "true", nil, nil, nil); err != nil {
			t.Fatalf("trusting %s: %v", im, err)
		}
	}
	return c
}

func readKnownHosts(t *testing.T, f *doctorFixture) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.cfg.StateDir, "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func hostKeyTrusted(knownHosts, image string) bool {
	for _, line := range strings.Split(knownHosts, "\n") {
		if strings.HasPrefix(line, image+" ") {
			return true
		}
	}
	return false
}

func TestForgetHostKeyUsage(t *testing.T) {
	t.Setenv("TARTY_CONFIG", "")
	for _, args := range [][]string{
		{"forget-host-key"},
		{"forget-host-key", "a", "b"},
		{"forget-host-key", "#runner"},
		{"forget-host-key", "--", "-runner"},
		{"forget-host-key", "my runner"},
		{"forget-host-key", ""},
		{"forget-host-key", "runner", "--config"},
	} {
		code, stdout, stderr := runCLI(t, append([]string{"--config", "nope.yaml"}, args...)...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, "forget-host-key") {
			t.Errorf("%q: exit %d\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
		}
	}
}

func TestForgetHostKey(t *testing.T) {
	t.Setenv("TARTY_CONFIG", "")
	f := newDoctorFixture(t, fixtureOpts{ssh: true})
	config := filepath.Join(f.dir, "tarty.yaml")
	fp := f.sshd.HostKey.Fingerprint()

	code, stdout, stderr := runCLI(t, "forget-host-key", "runner-image", "--config", config)
	if code != exitOK || !strings.Contains(stdout, `no SSH host key was trusted for image "runner-image"`) || stderr != "" {
		t.Errorf("nothing trusted: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	trustHostKeys(t, f, "runner-image", "base-image")
	code, stdout, stderr = runCLI(t, "--config", config, "forget-host-key", "runner-image")
	if code != exitOK || !strings.Contains(stdout, `forgot the SSH host key trusted for image "runner-image" (`+fp+")") ||
		!strings.Contains(stdout, "trusted on first use") || stderr != "" {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	kh := readKnownHosts(t, f)
	if hostKeyTrusted(kh, "runner-image") || !hostKeyTrusted(kh, "base-image") {
		t.Errorf("known hosts after forgetting runner-image:\n%s", kh)
	}

	// An image the config does not name is forgotten too, with a note.
	trustHostKeys(t, f, "hand-made")
	code, stdout, stderr = runCLI(t, "forget-host-key", "hand-made", "--config", config)
	if code != exitOK || !strings.Contains(stdout, "forgot") || !strings.Contains(stderr, `"hand-made" is neither images.runner`) {
		t.Errorf("unnamed image: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	// The openssh client's store is cleared as well.
	if _, err := exec.LookPath("ssh"); err == nil {
		c, err := sshexec.New(sshexec.Options{User: f.sshd.User, Port: f.sshd.Port, KeyFile: f.sshd.ClientKey.Private,
			Client: sshexec.ClientOpenSSH, ConnectTimeout: 20 * time.Second, KnownHostsFile: filepath.Join(f.cfg.StateDir, "known_hosts")})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Run(context.Background(), "openssh-image", "127.0.0.1", "true", nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		code, stdout, _ = runCLI(t, "forget-host-key", "openssh-image", "--config", config)
		if code != exitOK || !strings.Contains(stdout, fp) {
			t.Errorf("openssh store: exit %d\nstdout: %s", code, stdout)
		}
		entries, _ := os.ReadDir(filepath.Join(f.cfg.StateDir, "known_hosts.openssh"))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "openssh-image") {
				t.Errorf("openssh known hosts of the image left: %s", e.Name())
			}
		}
	}
}

// TestForgetHostKeyBesideDaemon runs the tarty binary while this process,
// standing in for a daemon, keeps adding trusted keys to the same store: the
// cross-process lock keeps every change of both.
func TestForgetHostKeyBesideDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tarty binary")
	}
	buildBinaries(t)
	f := newDoctorFixture(t, fixtureOpts{ssh: true})
	c := trustHostKeys(t, f, "runner-image", "base-image")

	cmd := exec.Command(tartyBin, "forget-host-key", "runner-image", "--config", filepath.Join(f.dir, "tarty.yaml"))
	cmd.Env = append(os.Environ(), "TARTY_CONFIG=", "TARTY_GITHUB_TOKEN="+f.gh.Token(), "TARTY_WEBHOOK_SECRET="+doctorSecret)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var copies []string
	for i := 0; ; i++ {
		name := fmt.Sprintf("copy-%d", i)
		if err := c.CopyHostKey("base-image", name); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, name)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("tarty forget-host-key: %v\n%s", err, out.String())
			}
			goto finished
		default:
		}
	}
finished:
	kh := readKnownHosts(t, f)
	if hostKeyTrusted(kh, "runner-image") {
		t.Errorf("runner-image still trusted:\n%s", kh)
	}
	for _, name := range append(copies, "base-image") {
		if !hostKeyTrusted(kh, name) {
			t.Errorf("%s lost (%d copies made while the command ran)", name, len(copies))
		}
	}
	if !strings.Contains(out.String(), "forgot the SSH host key") {
		t.Errorf("output: %s", out.String())
	}
}
