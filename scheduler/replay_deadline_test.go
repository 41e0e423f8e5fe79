package scheduler

import (
	"reflect"
	"testing"
	"time"

	"github.com/tartyci/tarty"
)

// Cancellations, GitHub's 24-hour limit, waits in the caller's order, and the
// nightly rebuild taking a warm runner's slot.
func TestReplayDeadlines(t *testing.T) {
	const h = time.Hour
	t.Run("a job cancelled while queued leaves without running; the one behind it moves up", func(t *testing.T) {
		jobs := jobsAt(10*time.Minute, h, h, h, h)
		// The third job is cancelled a minute after it was queued: the
		// fourth takes the first slot that frees.
		jobs[2].CancelAt = day0.Add(h + time.Minute)
		st, err := Replay(ReplayConfig{Macs: 1, RebuildHour: -1}, jobs)
		if err != nil {
			t.Fatal(err)
		}
		if want := secs(25, 25, 0, 657); !reflect.DeepEqual(st.Waits, want) {
			t.Errorf("waits = %v, want %v", st.Waits, want)
		}
		if st.Cancelled != 1 || st.Unserved != 0 || st.Mean != (25+25+657)*time.Second/3 {
			t.Errorf("cancelled %d, unserved %d, mean %v", st.Cancelled, st.Unserved, st.Mean)
		}
	})
	t.Run("a cancelled job a runner took runs until its cancellation", func(t *testing.T) {
		jobs := jobsAt(10*time.Minute, h, h+time.Second)
		jobs[0].Duration = 0
		jobs[0].CancelAt = day0.Add(h + 2*time.Minute)
		st, err := Replay(ReplayConfig{Macs: 1, SlotsPerMac: 1, RebuildHour: -1}, jobs)
		if err != nil {
			t.Fatal(err)
		}
		// Slot free again at 25 + 95 (to the cancel) + 2 + 5 = 127 s after
		// the first arrival; the second boots then: 127 + 25 - 1 = 151.
		if want := secs(25, 151); !reflect.DeepEqual(st.Waits, want) {
			t.Errorf("waits = %v, want %v", st.Waits, want)
		}
	})
	t.Run("GitHub fails a job queued for a day: it counts with a day's wait", func(t *testing.T) {
		// One slot, a job of 30 hours, then one behind it.
		jobs := jobsAt(30*h, h, h+time.Minute)
		st, err := Replay(ReplayConfig{Macs: 1, SlotsPerMac: 1, RebuildHour: -1, MaxLifetime: 48 * h}, jobs)
		if err != nil {
			t.Fatal(err)
		}
		if want := []time.Duration{25 * time.Second, tarty.StaleAfter}; !reflect.DeepEqual(st.Waits, want) {
			t.Errorf("waits = %v, want %v", st.Waits, want)
		}
		if st.Unserved != 1 || st.Max != tarty.StaleAfter {
			t.Errorf("unserved %d, max %v", st.Unserved, st.Max)
		}
	})
	t.Run("waits come in the caller's order", func(t *testing.T) {
		jobs := jobsAt(10*time.Minute, 3*h, h, 2*h)
		st, err := Replay(ReplayConfig{Macs: 1, Warm: 1, RebuildHour: -1}, jobs)
		if err != nil {
			t.Fatal(err)
		}
		if want := secs(0, 0, 0); !reflect.DeepEqual(st.Waits, want) {
			t.Errorf("waits = %v, want %v", st.Waits, want)
		}
		jobs[0].Arrival = day0.Add(h + time.Second) // now the burst of two is 1 s apart on one warm runner
		st, _ = Replay(ReplayConfig{Macs: 1, Warm: 1, SlotsPerMac: 1, RebuildHour: -1}, jobs)
		// Job 2 (1 h) takes the warm runner; job 1 (1 h + 1 s) waits for it
		// to end (600 + 2 + 5) and a fresh boot (25): 631 s.
		if want := secs(631, 0, 0); !reflect.DeepEqual(st.Waits, want) {
			t.Errorf("waits = %v, want %v", st.Waits, want)
		}
	})
	t.Run("the rebuild takes a warm runner's slot for its length, and gives it back", func(t *testing.T) {
		// Two warm runners listen at 02:00: one is torn down for the rebuild
		// (5 s), which then holds the slot for an hour. A burst of two
		// hour-long jobs at 02:30 finds one warm runner; the second waits for
		// the rebuild to end at 03:00:05 and a boot: 30 min 5 s + 25 s = 1830 s.
		// (Before, the replay never ended a rebuild that took a warm
		// runner's slot: the Mac ran on one slot for the rest of the replay.)
		jobs := jobsAt(h, 150*time.Minute, 150*time.Minute)
		st, err := Replay(ReplayConfig{Macs: 1, Warm: 2, RebuildHour: 2, RebuildDuration: h}, jobs)
		if err != nil {
			t.Fatal(err)
		}
		if want := secs(0, 1830); !reflect.DeepEqual(st.Waits, want) {
			t.Errorf("waits = %v, want %v", st.Waits, want)
		}
	})
}
