package upkeep

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStoreRoundTripAndFile(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	if _, ok := s.ImageRunner("tarty-runner"); ok {
		t.Fatal("a fresh store knows an image")
	}
	if err := s.setImageVersion("tarty-runner", "2.330.0", day0); err != nil {
		t.Fatal(err)
	}
	if err := s.setBehindSince("tarty-runner", day0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.setEarlyRebuild(day0, "2.330.0"); err != nil {
		t.Fatal(err)
	}
	st := s.redeliver()
	st.HookID, st.LastDeliveryID = 42, 9001
	st.Attempted["g-1"] = attempt{DeliveryID: 9000, At: day0, AfterID: 9001}
	if err := s.setRedeliver(st); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, StateFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left beside the state: %v", entries)
	}

	// A restart reads it all back.
	s2 := newStore(t, dir)
	r, ok := s2.ImageRunner("tarty-runner")
	if !ok || r.Version != "2.330.0" || !r.LearntAt.Equal(day0) || !r.BehindSince.Equal(day0.Add(time.Hour)) {
		t.Errorf("image after restart: %+v", r)
	}
	if at, from := s2.earlyRebuild(); !at.Equal(day0) || from != "2.330.0" {
		t.Errorf("early rebuild after restart: %v %q", at, from)
	}
	if st := s2.redeliver(); st.HookID != 42 || st.LastDeliveryID != 9001 || st.Attempted["g-1"].DeliveryID != 9000 {
		t.Errorf("redelivery after restart: %+v", st)
	}

	// A new version starts a new age; the same one keeps it.
	_ = s2.setImageVersion("tarty-runner", "2.330.0", day0.Add(2*time.Hour))
	if r, _ := s2.ImageRunner("tarty-runner"); r.BehindSince.IsZero() || !r.LearntAt.Equal(day0.Add(2*time.Hour)) {
		t.Errorf("same version: %+v", r)
	}
	_ = s2.setImageVersion("tarty-runner", "2.337.0", day0.Add(3*time.Hour))
	if r, _ := s2.ImageRunner("tarty-runner"); !r.BehindSince.IsZero() || r.Version != "2.337.0" {
		t.Errorf("new version: %+v", r)
	}
}

func TestStoreUnreadableStartsAfresh(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs logBuf
	s, err := OpenStore(filepath.Join(dir, StateFile), logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	if logs.count("starting afresh") != 1 {
		t.Errorf("log: %s", logs.String())
	}
	if err := s.setImageVersion("img", "2.336.0", day0); err != nil {
		t.Fatal(err)
	}
	if r, ok := newStore(t, dir).ImageRunner("img"); !ok || r.Version != "2.336.0" {
		t.Errorf("rewritten: %+v", r)
	}
	// A directory that cannot be written: the error says so.
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := newStore(t, ro).setImageVersion("img", "2.336.0", day0); err == nil {
			t.Error("writing into a read-only directory succeeded")
		}
	}
}
