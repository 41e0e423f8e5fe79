package plan

import (
	"testing"
	"time"

	"github.com/tartyci/tarty"
)

// BenchmarkPlan50k replays 14 days of a busy organisation, 50,000 jobs with
// Tarty's labels (synthHistory: working-hours pushes of 1 to 6 jobs, lengths
// log-normal around 2 minutes, 6% cancelled, 3% skipped), for 1 to 4 Macs
// with warm 0, 1 and 2: twelve replays, one at a time. Run it on one core:
//
//	go test -run '^$' -bench Plan50k -benchtime 3x -cpu 1 ./plan/
//
// See BENCHMARKS.md.
func BenchmarkPlan50k(b *testing.B) {
	jobs := synthHistory(14, synth{Jobs: 50_000, Days: 14, Median: 2 * time.Minute, Prefix: "tarty-mac1"})
	w := NewWorkload(jobs, tarty.NewLabelMatcher([]string{"tarty"}), "tarty-mac1")
	m := model()
	m.RebuildHour, m.RebuildDuration = 2, time.Hour
	fleets := Fleets([]int{1, 2, 3, 4}, []int{0, 1, 2})
	var r *Report
	for b.Loop() {
		var err error
		if r, err = Run(w, m, fleets, Options{Today: &Fleet{1, 0}, Parallel: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(w.Jobs)), "jobs")
	b.ReportMetric(float64(len(fleets)), "replays")
	for _, x := range r.Results {
		if x.Warm == 0 {
			b.Logf("%d Macs, warm 0: p95 %s, utilisation %.0f%%, failed after a day %d", x.Macs, FormatWait(x.Stats.P95),
				100*x.Stats.Utilisation, x.Stats.Unserved)
		}
	}
}
