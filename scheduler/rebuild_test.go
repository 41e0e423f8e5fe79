package scheduler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestNextRebuild(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	at := func(s string, loc *time.Location) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name string
		now  time.Time
		hour int
		loc  *time.Location
		want time.Time
	}{
		{"before the hour: tonight", at("2026-12-01 01:30", time.UTC), 2, time.UTC, at("2026-12-01 02:00", time.UTC)},
		{"after the hour: tomorrow", at("2026-12-01 02:30", time.UTC), 2, time.UTC, at("2026-12-02 02:00", time.UTC)},
		{"at the hour: tomorrow", at("2026-12-01 02:00", time.UTC), 2, time.UTC, at("2026-12-02 02:00", time.UTC)},
		{"month end", at("2026-12-31 23:00", time.UTC), 2, time.UTC, at("2027-01-01 02:00", time.UTC)},
		// 2027-03-14 02:00 does not exist in New York: it runs at 03:00 EDT, once.
		{"spring forward", at("2027-03-14 01:00", ny), 2, ny, time.Date(2027, 3, 14, 3, 0, 0, 0, ny)},
		{"the day after spring forward", time.Date(2027, 3, 14, 3, 30, 0, 0, ny), 2, ny, at("2027-03-15 02:00", ny)},
		// 2027-11-07 01:00 happens twice: the first one, then not again that night.
		{"fall back, first 01:00", at("2027-11-07 00:30", ny), 1, ny, time.Date(2027, 11, 7, 1, 0, 0, 0, ny)},
		{"fall back, the second 01:00 is skipped", time.Date(2027, 11, 7, 1, 0, 0, 0, ny).Add(90 * time.Minute), 1, ny,
			at("2027-11-08 01:00", ny)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextRebuild(tt.now, tt.hour, tt.loc); !got.Equal(tt.want) {
				t.Errorf("nextRebuild(%s) = %s, want %s", tt.now, got, tt.want)
			}
		})
	}
}

// rebuildWorld is a world whose rebuild is enabled at 02:00 UTC; synctest
// starts at midnight, so the first rebuild is two hours in.
func rebuildWorld(t *testing.T) (*world, Options) {
	w := newWorld(t)
	opts := w.options()
	opts.Rebuild.Enabled = true
	return w, opts
}

func waitRebuild(t *testing.T, w *world, s *Scheduler, limit time.Duration) RebuildStatus {
	t.Helper()
	var rb RebuildStatus
	waitFor(t, w, limit, "a rebuild result", func() bool {
		rb = status(t, s).Rebuild
		return rb.LastResult != "" && rb.Since == nil
	})
	return rb
}

func TestRebuildPromotes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, opts := rebuildWorld(t)
		s, stop := w.start(opts)
		defer stop()
		rb := waitRebuild(t, w, s, 3*time.Hour)
		if rb.LastResult != ResultSuccess || rb.LastSuccessAt == nil {
			t.Fatalf("rebuild = %+v", rb)
		}
		if got := w.content("runner-image"); got != "v1" {
			t.Errorf("runner image = %q, want the build v1", got)
		}
		if got := w.content("runner-image-previous"); got != "v0" {
			t.Errorf("previous = %q, want the old v0", got)
		}
		if w.vmCount() != 0 {
			t.Errorf("%d VMs left", w.vmCount())
		}
		if w.keys["runner-image"] != "key-base" || w.keys["runner-image-previous"] != "key-v0" {
			t.Errorf("host keys %v: the runner's must be what the build presented, the previous the old one", w.keys)
		}
		if rb.NextAt == nil || !rb.NextAt.Equal(time.Date(2000, 1, 2, 2, 0, 0, 0, time.UTC)) {
			t.Errorf("next rebuild at %v, want tomorrow 02:00", rb.NextAt)
		}
		// A second rebuild replaces the older previous.
		if err := s.Rebuild(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, w, time.Hour, "the second promote", func() bool { return w.content("runner-image") == "v2" })
		if got := w.content("runner-image-previous"); got != "v1" {
			t.Errorf("previous = %q after the second rebuild, want v1", got)
		}
	})
}

func TestRebuildWaitsForBusyRunnersAndKillsNone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, opts := rebuildWorld(t)
		w.jobTime = 3 * time.Hour
		s, stop := w.start(opts)
		defer stop()
		w.queue("acme/app")
		w.queue("acme/app")
		waitFor(t, w, 5*time.Minute, "both runners busy", func() bool { return w.count("in_progress") == 2 })
		time.Sleep(2*time.Hour + time.Minute) // the hour arrives
		synctest.Wait()
		if got := status(t, s).Rebuild.State; got != phaseSlot {
			t.Errorf("rebuild state %q at the hour, want %q", got, phaseSlot)
		}
		if n := w.count("completed"); n != 0 {
			t.Fatalf("%d jobs ended early", n)
		}
		rb := waitRebuild(t, w, s, 4*time.Hour)
		if rb.LastResult != ResultSuccess || w.count("completed") != 2 {
			t.Errorf("rebuild %+v, %d jobs completed", rb, w.count("completed"))
		}
	})
}

func TestRebuildPreemptsIdleRunner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, opts := rebuildWorld(t)
		opts.Warm = 2
		s, stop := w.start(opts)
		defer stop()
		rb := waitRebuild(t, w, s, 3*time.Hour)
		if rb.LastResult != ResultSuccess {
			t.Fatalf("rebuild %+v", rb)
		}
		if w.maxRunnersInRebuild > 1 {
			t.Errorf("%d runners ran beside the build VM; capacity - 1 = 1", w.maxRunnersInRebuild)
		}
		waitFor(t, w, 5*time.Minute, "two warm runners again", func() bool {
			st := status(t, s)
			return st.Slots[0].State == SlotIdle && st.Slots[1].State == SlotIdle
		})
	})
}

func TestRebuildRunnersStayBelowCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, opts := rebuildWorld(t)
		w.jobTime = 10 * time.Minute
		s, stop := w.start(opts)
		defer stop()
		time.Sleep(2*time.Hour + time.Second)
		for range 8 {
			w.queue("acme/app")
		}
		waitRebuild(t, w, s, 3*time.Hour)
		waitFor(t, w, 3*time.Hour, "every job served", func() bool { return w.count("completed") == 8 })
		if w.maxRunnersInRebuild > 1 {
			t.Errorf("%d runners ran beside the build VM", w.maxRunnersInRebuild)
		}
	})
}

func TestRebuildFailuresLeaveTheImage(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(w *world, o *Options)
		result string
		reason string
	}{
		{"pull fails", func(w *world, o *Options) {
			o.Rebuild.Base = "ghcr.io/acme/base:latest"
			w.onPull = func() error { return errors.New("registry unreachable") }
		}, ResultFailure, "registry unreachable"},
		{"command exits 1", func(w *world, _ *Options) {
			w.onCommand = func(c string) error {
				if c == "rebuild" {
					return errors.New("exit status 1")
				}
				return nil
			}
		}, ResultFailure, "exit status 1"},
		{"command times out", func(w *world, o *Options) {
			w.buildTime = 3 * time.Hour
			o.Rebuild.Timeout = time.Hour
		}, ResultFailure, "rebuild.timeout"},
		{"ssh never ready", func(w *world, _ *Options) {
			w.noSSH = func(name string) bool { return strings.Contains(name, "-build-") }
		}, ResultFailure, "connection refused"},
		{"shutdown hangs", func(w *world, _ *Options) { w.hangShutdown = true }, ResultFailure, "did not power off"},
		{"verify fails", func(w *world, o *Options) {
			o.Rebuild.VerifyCommand = "verify"
			w.onCommand = func(c string) error {
				if c == "verify" {
					return errors.New("xcodebuild: not found")
				}
				return nil
			}
		}, ResultFailure, "verify"},
		{"disk full", func(w *world, _ *Options) { w.free = 20 << 30 }, ResultFailure, "not enough free disk"},
		{"no slot within the bound", func(w *world, o *Options) {
			w.jobTime = 10 * time.Hour
			o.Rebuild.SlotWait = time.Hour
			w.queue("acme/app")
			w.queue("acme/app")
		}, ResultSkipped, "no slot freed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w, opts := rebuildWorld(t)
				tt.setup(w, &opts)
				s, stop := w.start(opts)
				defer stop()
				rb := waitRebuild(t, w, s, 6*time.Hour)
				if !strings.HasPrefix(rb.LastResult, tt.result) || !strings.Contains(rb.LastResult, tt.reason) {
					t.Errorf("last result %q, want %s mentioning %q", rb.LastResult, tt.result, tt.reason)
				}
				if got := w.content("runner-image"); got != "v0" {
					t.Errorf("runner image = %q, want it untouched (v0)", got)
				}
				if w.hasVM("runner-image-previous") {
					t.Error("a previous image appeared")
				}
				if w.keys["runner-image"] != "key-v0" {
					t.Errorf("runner image key = %q, want it untouched", w.keys["runner-image"])
				}
				for name := range w.vms {
					if strings.Contains(name, "-build-") {
						t.Errorf("build VM %s left behind", name)
					}
				}
				if st := status(t, s).Rebuild; st.HoldsSlot != -1 {
					t.Errorf("the rebuild still holds slot %d", st.HoldsSlot)
				}
			})
		})
	}
}

func TestRebuildPromoteHoldsLaunches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, opts := rebuildWorld(t)
		opts.Rebuild.Enabled = false
		var cloned []string
		w.onCreate = func(name string) error {
			cloned = append(cloned, name)
			return nil
		}
		s, stop := w.start(opts)
		defer stop()
		if err := s.Rebuild(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, w, time.Hour, "the promote", func() bool { return status(t, s).Rebuild.State == phasePromote })
		// A job queued during the promote waits for it, then gets the new image.
		w.queue("acme/app")
		waitFor(t, w, 10*time.Minute, "the job started", func() bool { return w.count("in_progress") == 1 })
		if got := w.content("runner-image"); got != "v1" {
			t.Fatalf("runner image %q", got)
		}
		for _, vm := range status(t, s).Slots {
			if vm.State == SlotBusy && w.content(vm.VM) != "v1" {
				t.Errorf("runner %s was cloned from %q, not the promoted image", vm.VM, w.content(vm.VM))
			}
		}
	})
}

func TestRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, opts := rebuildWorld(t)
		opts.Rebuild.Enabled = false
		s, stop := w.start(opts)
		defer stop()
		ctx := context.Background()
		err := s.Rollback(ctx)
		var ref interface{ Refused() bool }
		if !errors.As(err, &ref) || !strings.Contains(err.Error(), "no previous") {
			t.Fatalf("rollback with no previous image = %v, want a refusal", err)
		}
		if err := s.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		waitRebuild(t, w, s, time.Hour)
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if w.content("runner-image") != "v0" || w.content("runner-image-previous") != "v1" {
			t.Errorf("after rollback: runner %q, previous %q", w.content("runner-image"), w.content("runner-image-previous"))
		}
		if w.keys["runner-image"] != "key-v0" || w.keys["runner-image-previous"] != "key-base" {
			t.Errorf("keys after rollback: %v", w.keys)
		}
	})
}

func TestRebuildRequestsCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, opts := rebuildWorld(t)
		opts.Rebuild.Enabled = false
		s, stop := w.start(opts)
		defer stop()
		ctx := context.Background()
		for range 3 {
			if err := s.Rebuild(ctx); err != nil {
				t.Fatal(err)
			}
		}
		waitRebuild(t, w, s, time.Hour)
		time.Sleep(time.Hour)
		synctest.Wait()
		if w.builds != 1 {
			t.Errorf("%d builds for three requests while one ran", w.builds)
		}
	})
}

func TestRebuildStartedAfterTheHourWaitsForTomorrow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(3 * time.Hour) // the daemon starts at 03:00, after the hour
		w, opts := rebuildWorld(t)
		s, stop := w.start(opts)
		defer stop()
		time.Sleep(20 * time.Hour)
		synctest.Wait()
		if w.builds != 0 {
			t.Fatalf("rebuilt %d times before the next 02:00", w.builds)
		}
		waitRebuild(t, w, s, 4*time.Hour)
		if w.builds != 1 {
			t.Errorf("%d builds", w.builds)
		}
	})
}
