package tartvm

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPruneLogs(t *testing.T) {
	dir := t.TempDir()
	c := New(Options{LogDir: dir})
	now := time.Now()
	write := func(name string, age time.Duration) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	write("old.log", 8*24*time.Hour)
	write("new.log", time.Hour)
	write("old.txt", 30*24*time.Hour) // not a tart log
	n, err := c.PruneLogs(7*24*time.Hour, now)
	if err != nil || n != 1 {
		t.Fatalf("PruneLogs = %d, %v; want 1", n, err)
	}
	for name, want := range map[string]bool{"old.log": false, "new.log": true, "old.txt": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", name, err == nil, want)
		}
	}
	if n, err := New(Options{LogDir: filepath.Join(dir, "none")}).PruneLogs(time.Hour, now); n != 0 || err != nil {
		t.Errorf("missing dir: %d, %v", n, err)
	}
}
