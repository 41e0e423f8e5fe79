package sshexec

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func zeroLog() zerolog.Logger { return zerolog.Nop() }

// loginShells are the shells a guest's sshd may hand our command line to:
// zsh (macOS's default login shell), bash, and dash (Debian's sh). macOS's
// /bin/sh is bash in POSIX mode.
func loginShells(t *testing.T) []string {
	var out []string
	for _, s := range []string{"zsh", "bash", "dash", "sh"} {
		if p, err := exec.LookPath(s); err == nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Skip("no shell")
	}
	return out
}

// runDetach runs Start's command line the way sshd does: SHELL -c LINE.
func runDetach(t *testing.T, shell, command, log string, stdin []byte, size int) (string, string, error) {
	t.Helper()
	cmd := exec.Command(shell, "-c", detachCommand(command, log, size))
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir(), "SHELL="+shell)
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// pollFile waits until the file another process writes contains want.
func pollFile(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(path)
		if len(b) > 0 && strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q after 10s: %q", path, want, b)
		}
		<-tick.C
	}
}

func TestDetachScript(t *testing.T) {
	for _, sh := range loginShells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "start.log")
			data := []byte("line one\n\x00binary\xff\n\n") // NULs and trailing newlines survive
			// The command ignores SIGHUP, reads its stdin and runs with the
			// login's umask, not the wrapper's 077.
			command := `kill -HUP $$; cat > ` + dir + `/stdin; umask > ` + dir + `/umask; echo survived`
			out, errOut, err := runDetach(t, sh, command, log, data, len(data))
			if err != nil {
				t.Fatalf("wrapper: %v: %s", err, errOut)
			}
			if _, err := strconv.Atoi(strings.TrimSpace(out)); err != nil {
				t.Errorf("wrapper printed %q, want a pid", out)
			}
			if l := pollFile(t, log, "survived"); !strings.Contains(l, "tarty: starting detached command") {
				t.Errorf("log = %q", l)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "stdin")); !bytes.Equal(b, data) {
				t.Errorf("command's stdin = %q, want %q", b, data)
			}
			if m := strings.TrimSpace(pollFile(t, filepath.Join(dir, "umask"), "0")); m == "0077" || m == "077" {
				t.Errorf("the command inherited the wrapper's umask %s", m)
			}
		})
		t.Run(filepath.Base(sh)+"/truncated stdin", func(t *testing.T) {
			dir := t.TempDir()
			marker := filepath.Join(dir, "ran")
			_, errOut, err := runDetach(t, sh, "touch "+marker, filepath.Join(dir, "log"), []byte("half"), 100)
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(errOut, "received 4 of 100 bytes") {
				t.Fatalf("wrapper = %v, %q; want exit 3", err, errOut)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the command ran with truncated stdin")
			}
		})
	}
}

func TestDetachScriptLeavesNoTempFile(t *testing.T) {
	tmp := t.TempDir()
	for _, size := range []int{5, 6} { // success, then truncation
		cmd := exec.Command("/bin/sh", "-c", detachCommand("cat >/dev/null", filepath.Join(t.TempDir(), "log"), size))
		cmd.Stdin = strings.NewReader("abcde")
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		_ = cmd.Run()
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("size %d: temp files left: %v", size, left)
		}
	}
}

func TestShQuote(t *testing.T) {
	for _, sh := range loginShells(t) {
		for _, s := range []string{"plain", "it's", `a"b$c` + "`d`\\n", "", "'", "%s"} {
			out, err := exec.Command(sh, "-c", "printf '%s' "+shQuote(s)).Output()
			if err != nil || string(out) != s {
				t.Errorf("%s: shQuote(%q) round trip = %q, %v", sh, s, out, err)
			}
		}
	}
}
