package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStampedBinary builds the real binary with -ldflags, as a release would,
// and runs it: the stamp reaches `tarty version`, and main passes run's exit
// code to the process.
func TestStampedBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "tarty")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X main.version=v9.8.7 -X main.commit=0123abc", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("tarty version: %v", err)
	}
	if got := string(out); !strings.HasPrefix(got, "tarty v9.8.7 (commit 0123abc, go1.") {
		t.Errorf("version output = %q", got)
	}
	err = exec.Command(bin, "no-such-command").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage {
		t.Errorf("unknown command: err = %v, want exit %d", err, exitUsage)
	}
}
