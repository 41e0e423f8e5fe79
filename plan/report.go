package plan

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// DefaultTarget is the p95 wait the recommendation aims for.
const DefaultTarget = 2 * time.Minute

// LittleGain: one more Mac that cuts p95 by less than this share "adds little".
const LittleGain = 0.2

// Options shape a report.
type Options struct {
	Target time.Duration // the p95 wait to stay under (DefaultTarget when 0)
	// Today is the setup in use (one Mac, runners.warm), whose prediction
	// is set beside the observed waits; nil: no comparison.
	Today *Fleet
	// Source says where the history came from, in one line.
	Source string
	// From and To bound the history's window; zero: its first and last arrival.
	From, To time.Time
	// BootSource says where Model.Boot came from.
	BootSource string
	// Parallel replays at once (0: one per CPU).
	Parallel int
}

// Report is a plan: the sweep, the recommendation and the observed waits.
type Report struct {
	Source         string
	From, To       time.Time
	Counts         Counts
	Model          Model
	BootSource     string
	Target         time.Duration
	Results        []Result
	Recommendation Recommendation
	Observed       *Comparison // nil when no job ran on Tarty's runners
}

// Recommendation is the smallest fleet whose p95 wait is within the target,
// and what one more Mac would bring.
type Recommendation struct {
	Fleet
	Met  bool // false: no fleet of the sweep meets the target; Fleet is the best there is
	P95  time.Duration
	Next *Result // one more Mac with the same warm setting; nil outside the sweep
	Gain float64 // the share of p95 one more Mac takes off
	Text string
}

// WaitSummary describes a set of waits.
type WaitSummary struct {
	Jobs int
	Mean time.Duration
	P50  time.Duration
	P95  time.Duration
	Max  time.Duration
}

// Comparison sets the waits seen on Tarty's runners beside the replay's
// prediction for the same jobs with today's setup.
type Comparison struct {
	Fleet     Fleet
	Observed  WaitSummary
	Predicted WaitSummary
}

// Run replays the workload for every fleet and reports.
func Run(w Workload, m Model, fleets []Fleet, o Options) (*Report, error) {
	if len(fleets) == 0 {
		return nil, errors.New("plan: no fleet to replay")
	}
	results, err := Sweep(w, m, fleets, o.Parallel)
	if err != nil {
		return nil, err
	}
	var today *Result
	if o.Today != nil && len(w.Observed) > 0 {
		for i := range results {
			if results[i].Fleet == *o.Today {
				today = &results[i]
			}
		}
		if today == nil {
			extra, err := Sweep(w, m, []Fleet{*o.Today}, 1)
			if err != nil {
				return nil, err
			}
			today = &extra[0]
		}
	}
	return NewReport(w, m, results, today, o), nil
}

// NewReport builds the report of a sweep; today is the replay of today's
// setup (nil: no comparison with the observed waits).
func NewReport(w Workload, m Model, results []Result, today *Result, o Options) *Report {
	r := &Report{Source: o.Source, From: o.From, To: o.To, Counts: w.Counts, Model: m, BootSource: o.BootSource,
		Target: o.Target, Results: results}
	if r.Target <= 0 {
		r.Target = DefaultTarget
	}
	if r.From.IsZero() {
		r.From = w.First
	}
	if r.To.IsZero() {
		r.To = w.Last
	}
	r.Recommendation = Recommend(results, r.Target)
	if today != nil && len(w.Observed) > 0 {
		obs := make([]time.Duration, len(w.Observed))
		pred := make([]time.Duration, len(w.Observed))
		for i, o := range w.Observed {
			obs[i], pred[i] = o.Wait, today.Stats.Waits[o.Index]
		}
		r.Observed = &Comparison{Fleet: today.Fleet, Observed: Summarise(obs), Predicted: Summarise(pred)}
	}
	return r
}

// Summarise gives the mean, median, 95th percentile and maximum of waits,
// with the replay's definitions (the p-th percentile is the smallest wait at
// least p% of the waits are within).
func Summarise(waits []time.Duration) WaitSummary {
	n := len(waits)
	if n == 0 {
		return WaitSummary{}
	}
	s := slices.Clone(waits)
	slices.Sort(s)
	var total time.Duration
	for _, w := range s {
		total += w
	}
	return WaitSummary{Jobs: n, Mean: total / time.Duration(n), P50: s[(n-1)/2], P95: s[(n*95+99)/100-1], Max: s[n-1]}
}

// Recommend picks the smallest number of Macs whose p95 wait is within
// target with some warm setting (the fewest warm runners that do, as they
// cost VM-hours), and says whether one more Mac, with the same warm setting,
// would cut p95 by at least LittleGain. When no fleet meets the target it
// names the best one.
func Recommend(results []Result, target time.Duration) Recommendation {
	if len(results) == 0 {
		return Recommendation{Text: "nothing was replayed"}
	}
	best := bestByMacs(results, target)
	macs := sortedMacs(results)
	var rec Recommendation
	found := false
	for _, n := range macs {
		if b := best[n]; b.Stats.P95 <= target {
			rec = Recommendation{Fleet: b.Fleet, Met: true, P95: b.Stats.P95}
			found = true
			break
		}
	}
	if !found {
		// The lowest p95 of all; the fewest Macs, then warm runners, on a tie.
		var b Result
		for i, n := range macs {
			if r := best[n]; i == 0 || r.Stats.P95 < b.Stats.P95 {
				b = r
			}
		}
		rec = Recommendation{Fleet: b.Fleet, P95: b.Stats.P95}
	}
	// One more Mac with the same warm setting: what the Mac alone brings.
	for _, r := range results {
		if r.Macs == rec.Macs+1 && r.Warm == rec.Warm {
			next := r
			rec.Next = &next
		}
	}
	if rec.Next != nil && rec.P95 > 0 {
		rec.Gain = float64(rec.P95-rec.Next.Stats.P95) / float64(rec.P95)
	}
	rec.Text = recommendationText(rec, target, macs[len(macs)-1])
	return rec
}

// bestByMacs is, for each number of Macs, the fewest warm runners that meet
// the target, else the warm setting with the lowest p95 (fewer on a tie).
func bestByMacs(results []Result, target time.Duration) map[int]Result {
	best := map[int]Result{}
	for _, r := range results {
		b, ok := best[r.Macs]
		switch {
		case !ok:
			best[r.Macs] = r
		case b.Stats.P95 <= target && r.Stats.P95 <= target:
			if r.Warm < b.Warm {
				best[r.Macs] = r
			}
		case r.Stats.P95 < b.Stats.P95 || (r.Stats.P95 == b.Stats.P95 && r.Warm < b.Warm):
			best[r.Macs] = r
		}
	}
	return best
}

func sortedMacs(results []Result) []int {
	var macs []int
	for _, r := range results {
		if !slices.Contains(macs, r.Macs) {
			macs = append(macs, r.Macs)
		}
	}
	slices.Sort(macs)
	return macs
}

func macsWord(n int) string {
	if n == 1 {
		return "1 Mac"
	}
	return fmt.Sprintf("%d Macs", n)
}

func recommendationText(rec Recommendation, target time.Duration, most int) string {
	var s string
	if rec.Met {
		verb := "keep"
		if rec.Macs == 1 {
			verb = "keeps"
		}
		s = fmt.Sprintf("%s with warm %d %s p95 under %s (p95 %s)", macsWord(rec.Macs), rec.Warm, verb,
			FormatWait(target), FormatWait(rec.P95))
	} else {
		s = fmt.Sprintf("no fleet up to %s keeps p95 under %s: the best, %s with warm %d, has p95 %s; try --macs 1..%d",
			macsWord(most), FormatWait(target), macsWord(rec.Macs), rec.Warm, FormatWait(rec.P95), 2*most)
	}
	switch {
	case rec.Next == nil && rec.Met:
		s += fmt.Sprintf("; --macs stops at %d", rec.Macs)
	case rec.Next == nil:
	case rec.P95 == 0:
		s += fmt.Sprintf("; no job waits, %d cannot do better", rec.Macs+1)
	case rec.Gain < LittleGain:
		s += fmt.Sprintf("; %d add little (p95 %s, %.0f%% better)", rec.Macs+1, FormatWait(rec.Next.Stats.P95), 100*max(rec.Gain, 0))
	default:
		s += fmt.Sprintf("; %d would cut p95 to %s (%.0f%% better)", rec.Macs+1, FormatWait(rec.Next.Stats.P95), 100*rec.Gain)
	}
	return s
}

// FormatWait prints a wait compactly: 0s, 45s, 2m, 2m05s, 1h, 1h20m, 130h.
func FormatWait(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d < time.Hour && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, (d%time.Minute)/time.Second)
	case d < 100*time.Hour && d.Round(time.Minute)%time.Hour == 0:
		return fmt.Sprintf("%dh", d.Round(time.Minute)/time.Hour)
	case d < 100*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", d/time.Hour, (d%time.Hour)/time.Minute)
	}
	return fmt.Sprintf("%dh", d/time.Hour)
}
