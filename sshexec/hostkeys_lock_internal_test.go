//go:build unix

package sshexec

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const helperEnv = "TARTY_HOSTKEY_STORE_HELPER" // "<store path>|<image prefix>|<count>"

// TestHostKeyStoreAcrossProcesses runs two processes (this test binary again)
// that trust keys for distinct images in one store at the same moment, as the
// daemon and `tarty forget-host-key` may: no change may be lost. With only an
// in-process mutex, each process's load-change-save overwrote the other's.
func TestHostKeyStoreAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	const perProcess = 100
	path := filepath.Join(t.TempDir(), "known_hosts")
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
	}
	var children []child
	for _, prefix := range []string{"daemon", "cli"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHostKeyStoreHelperProcess$", "-test.v")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d", helperEnv, path, prefix, perProcess))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		children = append(children, child{cmd, stdin, bufio.NewReader(stdout)})
	}
	// Both ready, then both go: the rounds overlap.
	for _, c := range children {
		if err := readUntil(c.out, "helper ready"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range children {
		c.stdin.Close()
	}
	for _, c := range children {
		rest, _ := io.ReadAll(c.out)
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("helper: %v\n%s", err, rest)
		}
	}
	keys, err := newHostKeyStore(path, zeroLog()).load()
	if err != nil {
		t.Fatal(err)
	}
	var lost []string
	for _, prefix := range []string{"daemon", "cli"} {
		for i := range perProcess {
			if image := prefix + "-" + strconv.Itoa(i); keys[image] == nil {
				lost = append(lost, image)
			}
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d keys lost, e.g. %v", len(lost), 2*perProcess, lost[:min(5, len(lost))])
	}
}

func readUntil(r *bufio.Reader, want string) error {
	for {
		line, err := r.ReadString('\n')
		if strings.Contains(line, want) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("helper exited before %q: %v", want, err)
		}
	}
}

// TestHostKeyStoreHelperProcess is the child of TestHostKeyStoreAcrossProcesses.
func TestHostKeyStoreHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	parts := strings.Split(spec, "|")
	n, _ := strconv.Atoi(parts[2])
	s := newHostKeyStore(parts[0], zeroLog())
	fmt.Println("helper ready")
	io.Copy(io.Discard, os.Stdin) // the parent closes stdin to start both at once
	for i := range n {
		if err := s.check(parts[1]+"-"+strconv.Itoa(i), "10.0.0.1:22", newPub(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkHostKeyCheck is the host-key check of every connection to a known
// image: the cross-process lock, reading the store, comparing the key.
func BenchmarkHostKeyCheck(b *testing.B) {
	s := newHostKeyStore(filepath.Join(b.TempDir(), "known_hosts"), zeroLog())
	k := newPub(b)
	for i := range 20 { // a store with a few images
		if err := s.check("image-"+strconv.Itoa(i), "h", newPub(b)); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.check("runner", "h", k); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.check("runner", "10.0.0.1:22", k); err != nil {
			b.Fatal(err)
		}
	}
}
