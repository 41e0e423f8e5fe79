//go:build unix

package demo

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tartyci/tarty/config"
)

func TestRemoveStaleKeepsLiveDemos(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	// A process that is certainly gone: one that ran and was waited for.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]int{"dead": dead.Process.Pid, "live": os.Getppid(), "self": os.Getpid()}
	for name, pid := range dirs {
		d := filepath.Join(tmp, dirPattern+name)
		if err := os.MkdirAll(filepath.Join(d, "tart"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, pidFile), []byte(strconv.Itoa(pid)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	other := filepath.Join(tmp, dirPattern+"nopid") // not ours to judge
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	removeStale()
	for name, want := range map[string]bool{"dead": false, "live": true, "self": true, "nopid": true} {
		_, err := os.Stat(filepath.Join(tmp, dirPattern+name))
		if got := err == nil; got != want {
			t.Errorf("%s: exists %v, want %v", name, got, want)
		}
	}
}

// The simulator's config passes the real loader and points Tarty at the
// simulator only: loopback listeners, the demo's own tart and directories.
func TestWorldConfig(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	w, err := newWorld("/bin/true", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	c := w.cfg
	if len(w.warnings) > 0 {
		t.Errorf("config warnings: %q", w.warnings)
	}
	for key, v := range map[string]string{"server.listen": c.Server.Listen, "server.admin_listen": c.Server.AdminListen,
		"github.url": c.GitHub.URL} {
		if !strings.Contains(v, "127.0.0.1:") {
			t.Errorf("%s = %q, want loopback", key, v)
		}
	}
	for key, v := range map[string]string{"tart.path": c.Tart.Path, "tart.home": c.Tart.Home, "state_dir": c.StateDir,
		"runners.work_dir": c.Runners.WorkDir, "ssh.key_file": c.SSH.KeyFile} {
		if !strings.HasPrefix(v, w.dir+"/") {
			t.Errorf("%s = %q, want it under %s", key, v, w.dir)
		}
	}
	if c.Backend != config.BackendLocal || c.Runners.Max != 2 {
		t.Errorf("backend %q, max %d", c.Backend, c.Runners.Max)
	}
	for _, f := range []string{"run.sh", "config.sh"} {
		if fi, err := os.Stat(filepath.Join(c.Runners.WorkDir, f)); err != nil || fi.Mode()&0o100 == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	dir := w.dir
	w.close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left after close: %v", dir, err)
	}
}
