package scheduler

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

var day0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func jobsAt(d time.Duration, at ...time.Duration) []ReplayJob {
	var out []ReplayJob
	for i, a := range at {
		out = append(out, ReplayJob{ID: int64(i + 1), Repository: "acme/app", Labels: []string{"tarty"},
			Arrival: day0.Add(a), Duration: d})
	}
	return out
}

func secs(ss ...int) []time.Duration {
	var out []time.Duration
	for _, s := range ss {
		out = append(out, time.Duration(s)*time.Second)
	}
	return out
}

func TestReplayByHand(t *testing.T) {
	const h = time.Hour
	// Boot 25 s; a guest powers off 2 s after its job; deletion takes 5 s.
	tests := []struct {
		name  string
		cfg   ReplayConfig
		jobs  []ReplayJob
		waits []time.Duration
	}{
		{"one Mac, sequential jobs: each waits for its boot",
			ReplayConfig{Macs: 1, RebuildHour: -1}, jobsAt(10*time.Minute, h, 2*h, 3*h), secs(25, 25, 25)},
		{"a burst of four on two slots: the last two wait for a slot and a boot",
			ReplayConfig{Macs: 1, RebuildHour: -1}, jobsAt(10*time.Minute, h, h, h, h),
			// 25 + 600 (job) + 2 (power-off) + 5 (delete) + 25 (boot) = 657
			secs(25, 25, 657, 657)},
		{"warm runners hide the boot",
			ReplayConfig{Macs: 1, Warm: 1, RebuildHour: -1}, jobsAt(10*time.Minute, h, 2*h), secs(0, 0)},
		{"two Macs serve a burst of four at once",
			ReplayConfig{Macs: 2, RebuildHour: -1}, jobsAt(10*time.Minute, h, h, h, h), secs(25, 25, 25, 25)},
		{"the rebuild window holds one slot from 02:00 to 03:00",
			ReplayConfig{Macs: 1, RebuildHour: 2, RebuildDuration: h}, jobsAt(10*time.Minute, 150*time.Minute, 150*time.Minute, 150*time.Minute),
			// One slot: 25, then 657, then 657 + 632 = 1289.
			secs(25, 657, 1289)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Replay(tt.cfg, tt.jobs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(st.Waits, tt.waits) {
				t.Errorf("waits = %v, want %v", st.Waits, tt.waits)
			}
			if st.Unserved != 0 {
				t.Errorf("%d jobs unserved", st.Unserved)
			}
		})
	}
}

func TestReplayIsDeterministic(t *testing.T) {
	jobs := dayTrace(7, 400)
	a, err := Replay(ReplayConfig{Macs: 2, Warm: 1, RebuildHour: 2, RebuildDuration: time.Hour}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Replay(ReplayConfig{Macs: 2, Warm: 1, RebuildHour: 2, RebuildDuration: time.Hour}, jobs)
	if !reflect.DeepEqual(a, b) {
		t.Error("two replays of the same input differ")
	}
	if a.Unserved != 0 || a.Jobs != 400 {
		t.Errorf("stats %+v", a)
	}
}

// dayTrace is a day of jobs: Poisson arrivals at a working-hours rate, with
// bursts (a push triggering a matrix of jobs), each job 2 to 20 minutes.
func dayTrace(seed uint64, n int) []ReplayJob {
	r := rand.New(rand.NewPCG(seed, seed))
	var jobs []ReplayJob
	at := day0.Add(6 * time.Hour)
	for len(jobs) < n {
		// Mean gap 12 minutes; one arrival in ten is a burst of 3 to 6 jobs.
		at = at.Add(time.Duration(r.ExpFloat64() * float64(12*time.Minute)))
		burst := 1
		if r.IntN(10) == 0 {
			burst = 3 + r.IntN(4)
		}
		for b := 0; b < burst && len(jobs) < n; b++ {
			jobs = append(jobs, ReplayJob{ID: int64(len(jobs) + 1), Repository: "acme/app", Labels: []string{"tarty"},
				Arrival: at, Duration: 2*time.Minute + time.Duration(r.Int64N(int64(18*time.Minute)))})
		}
	}
	return jobs
}

func meanOf(ws []time.Duration) time.Duration {
	var t time.Duration
	for _, w := range ws {
		t += w
	}
	return t / time.Duration(len(ws))
}

// BenchmarkReplayDay replays a day-long trace through the real scheduler
// core on one Mac, for warm 0 and warm 2, and reports the mean and p95 job
// wait beside the ideal (each job waits only for the earliest free slot plus
// the boot). See BENCHMARKS.md.
func BenchmarkReplayDay(b *testing.B) {
	jobs := dayTrace(1, 120)
	ideal := IdealWaits(2, 25*time.Second, jobs)
	idealMean := meanOf(ideal)
	sortedIdeal := slices.Clone(ideal)
	slices.Sort(sortedIdeal)
	idealP95 := sortedIdeal[(len(sortedIdeal)*95+99)/100-1]
	for _, warm := range []int{0, 2} {
		b.Run("warm="+string(rune('0'+warm)), func(b *testing.B) {
			var st ReplayStats
			for b.Loop() {
				var err error
				st, err = Replay(ReplayConfig{Macs: 1, Warm: warm, RebuildHour: -1}, jobs)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(st.Mean.Seconds(), "mean-wait-s")
			b.ReportMetric(st.P95.Seconds(), "p95-wait-s")
			b.ReportMetric(idealMean.Seconds(), "ideal-mean-s")
			b.ReportMetric(idealP95.Seconds(), "ideal-p95-s")
			b.ReportMetric(100*(st.Mean.Seconds()-idealMean.Seconds())/idealMean.Seconds(), "%-over-ideal")
			b.ReportMetric(st.Utilisation*100, "%-util")
		})
	}
}
