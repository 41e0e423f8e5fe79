package plan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// synth shapes a synthetic history.
type synth struct {
	Jobs       int
	Days       int
	Median     time.Duration // median job length (log-normal, sigma 0.7)
	OtherShare float64       // share of jobs with labels Tarty does not serve
	Prefix     string        // Tarty's runners' name prefix
}

// synthHistory is a deterministic history as a busy organisation's looks:
// pushes in working hours (09:00 to 19:00 UTC on weekdays, a fifth as many
// at weekends), each a run of 1 to 6 jobs (a matrix) created together;
// lengths log-normal; 6% of jobs cancelled (half before a runner took
// them), 3% skipped; the Tarty jobs ran on runners named Prefix-..., having
// waited 20 to 40 s.
func synthHistory(seed uint64, o synth) []Job {
	n, days, prefix := o.Jobs, o.Days, o.Prefix
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // a Monday
	weight := func(d int) float64 {
		if wd := start.AddDate(0, 0, d).Weekday(); wd == time.Saturday || wd == time.Sunday {
			return 0.2
		}
		return 1
	}
	var total float64
	for d := 0; d < days; d++ {
		total += weight(d)
	}
	var jobs []Job
	id := int64(1_000_000)
	runID := int64(500_000)
	for d := 0; d < days && len(jobs) < n; d++ {
		quota := int(math.Round(float64(n) * weight(d) / total))
		if d == days-1 {
			quota = n - len(jobs)
		}
		day := start.AddDate(0, 0, d)
		for k := 0; k < quota && len(jobs) < n; {
			at := day.Add(9*time.Hour + time.Duration(r.Float64()*float64(10*time.Hour))).Truncate(time.Second)
			runID++
			repo := fmt.Sprintf("acme/repo%02d", r.IntN(40))
			labels := []string{"self-hosted", "macOS", "tarty"}
			if r.Float64() < o.OtherShare {
				labels = []string{"ubuntu-latest"}
			}
			matrix := 1 + r.IntN(6)
			for m := 0; m < matrix && k < quota && len(jobs) < n; m++ {
				id++
				k++
				run := time.Duration(math.Exp(math.Log(o.Median.Seconds())+0.7*r.NormFloat64()) * float64(time.Second)).Truncate(time.Second)
				wait := 20*time.Second + time.Duration(r.IntN(20))*time.Second
				j := Job{ID: id, Repository: repo, Labels: labels, CreatedAt: at, RunID: runID, RunAttempt: 1,
					StartedAt: at.Add(wait), CompletedAt: at.Add(wait + run), Conclusion: "success",
					RunnerName: fmt.Sprintf("%s-%08x", prefix, r.Uint32())}
				if labels[0] == "ubuntu-latest" {
					j.RunnerName = fmt.Sprintf("GitHub Actions %d", r.IntN(1000))
				}
				switch x := r.IntN(100); {
				case x < 3:
					j.Conclusion, j.StartedAt, j.CompletedAt, j.RunnerName = "skipped", at, at, ""
				case x < 6:
					j.Conclusion, j.StartedAt, j.CompletedAt, j.RunnerName = "cancelled", time.Time{}, at.Add(wait/2), ""
				case x < 9:
					j.Conclusion, j.CompletedAt = "cancelled", j.StartedAt.Add(run/3)
				case x < 15:
					j.Conclusion = "failure"
				}
				jobs = append(jobs, j)
			}
		}
	}
	return jobs
}
