package fakerunner_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tartyci/tarty/ghapi/fakegithub"
	"github.com/tartyci/tarty/ghapi/fakegithub/fakerunner"
)

// --version prints the version alone, as the real runner's scripts do, and
// the fake GitHub offers the same version by default.
func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := fakerunner.Main([]string{"--version"}, func(string) string { return "" }, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := out.String(); got != fakerunner.Version+"\n" {
		t.Errorf("--version printed %q, want %q", got, fakerunner.Version+"\n")
	}
	if fakerunner.Version != fakegithub.DefaultRunnerVersion {
		t.Errorf("fakerunner.Version %s differs from fakegithub.DefaultRunnerVersion %s", fakerunner.Version, fakegithub.DefaultRunnerVersion)
	}
	// Anything else with --version is not a version query.
	out.Reset()
	if code := fakerunner.Main([]string{"--version", "--jitconfig", "x"}, func(string) string { return "" }, &out, &errb); code == 0 {
		t.Errorf("--version with other arguments exited 0: %q", out.String())
	}
}

// The built binary, copied as config.sh, answers the scheduler's question
// (`cd <work_dir> && ./config.sh --version`).
func TestBuiltBinaryAsConfigSh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "config.sh")
	build := exec.Command("go", "build", "-o", bin, "github.com/tartyci/tarty/ghapi/fakegithub/fakerunner/cmd/fakerunner")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Symlink("config.sh", filepath.Join(dir, "run.sh")); err != nil {
		t.Fatal(err)
	}
	for _, script := range []string{"config.sh", "run.sh"} {
		out, err := exec.Command("/bin/sh", "-c", "cd "+dir+" && ./"+script+" --version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --version: %v\n%s", script, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != fakerunner.Version {
			t.Errorf("%s --version = %q, want %q", script, got, fakerunner.Version)
		}
	}
}
