package plan

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/scheduler"
)

// Workload is a history made ready for the replay.
type Workload struct {
	// Jobs are the jobs replayed, by arrival (created_at), then ID.
	Jobs []scheduler.ReplayJob
	// Observed are the jobs Tarty's own runners ran, with the waits seen.
	Observed []Observed
	Counts   Counts
	// First and Last are the first and last arrivals.
	First, Last time.Time
}

// Observed is a job that ran on one of Tarty's runners: Index into
// Workload.Jobs, and the wait GitHub recorded (started_at - created_at).
type Observed struct {
	Index int
	Wait  time.Duration
}

// Counts say what became of the history's jobs.
type Counts struct {
	Read         int `json:"read"`         // jobs in the history (the window)
	OtherLabels  int `json:"other_labels"` // labels Tarty would not serve: left out
	Skipped      int `json:"skipped"`      // conclusion skipped: never queued for a runner, left out
	Unfinished   int `json:"unfinished"`   // still queued or running: left out
	Replayed     int `json:"replayed"`     // = len(Workload.Jobs)
	Cancelled    int `json:"cancelled"`    // replayed as demand until their cancellation, not in the waits
	Repositories int `json:"repositories"` // repositories of the replayed jobs
	OnTarty      int `json:"on_tarty"`     // replayed jobs that ran on Tarty's runners (observed waits)
}

// NewWorkload picks the jobs whose labels match, and turns each into a
// replayed job:
//
//   - arrival = created_at; duration = completed_at - started_at;
//   - skipped jobs are left out: GitHub completes them without queueing them;
//   - jobs not finished yet are left out: their length is unknown;
//   - a cancelled job, and a job no runner took that did not succeed (it has
//     no runner_name and no started_at after created_at: GitHub failed it in
//     the queue), is demand from created_at until completed_at: in the
//     replay it leaves the queue then if no simulated runner took it sooner,
//     and runs until then if one did. It may make a Tarty launch a VM, as it
//     did in life, but its wait is no one's and is not in the statistics;
//   - a job whose runner_name starts with runnerPrefix + "-" ran on Tarty:
//     its wait is observed, to set beside the prediction.
func NewWorkload(jobs []Job, match tarty.LabelMatcher, runnerPrefix string) Workload {
	var w Workload
	w.Counts.Read = len(jobs)
	sorted := slices.Clone(jobs)
	slices.SortStableFunc(sorted, byArrival)
	repos := map[string]bool{}
	for _, j := range sorted {
		switch {
		case !match.Match(j.Labels):
			w.Counts.OtherLabels++
			continue
		case j.Conclusion == "skipped":
			w.Counts.Skipped++
			continue
		case j.CompletedAt.IsZero():
			w.Counts.Unfinished++
			continue
		}
		rj := scheduler.ReplayJob{ID: j.ID, Repository: j.Repository, Labels: j.Labels, Arrival: j.CreatedAt}
		started := j.StartedAt
		if started.Before(j.CreatedAt) { // unset, or a clock a second off
			started = j.CreatedAt
		}
		if started.After(j.CompletedAt) {
			started = j.CompletedAt
		}
		rj.Duration = j.CompletedAt.Sub(started)
		neverTaken := j.RunnerName == "" && !j.StartedAt.After(j.CreatedAt) && j.Conclusion != "success"
		if j.Conclusion == "cancelled" || neverTaken {
			rj.CancelAt = j.CompletedAt
			w.Counts.Cancelled++
		} else if runnerPrefix != "" && strings.HasPrefix(j.RunnerName, runnerPrefix+"-") {
			w.Observed = append(w.Observed, Observed{Index: len(w.Jobs), Wait: started.Sub(j.CreatedAt)})
		}
		if j.Repository != "" {
			repos[strings.ToLower(j.Repository)] = true
		}
		w.Jobs = append(w.Jobs, rj)
	}
	w.Counts.Replayed = len(w.Jobs)
	w.Counts.Repositories = len(repos)
	w.Counts.OnTarty = len(w.Observed)
	if len(w.Jobs) > 0 {
		w.First, w.Last = w.Jobs[0].Arrival, w.Jobs[len(w.Jobs)-1].Arrival
	}
	return w
}

// byArrival orders jobs by created_at, then ID.
func byArrival(a, b Job) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}
