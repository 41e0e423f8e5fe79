package plan

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/scheduler"
)

var day0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

var tartyLabels = []string{"self-hosted", "macOS", "tarty"}

// ran is a job created at created that a runner took wait later and that ran for run.
func ran(id int64, created, wait, run time.Duration) Job {
	c := day0.Add(created)
	return Job{ID: id, Repository: "acme/app", Labels: tartyLabels, CreatedAt: c, StartedAt: c.Add(wait),
		CompletedAt: c.Add(wait + run), Conclusion: "success"}
}

func model() Model {
	return Model{SlotsPerMac: 2, Labels: []string{"tarty"}, Boot: 25 * time.Second, IdleTimeout: 15 * time.Minute,
		MaxLifetime: 6 * time.Hour, RebuildHour: -1, Location: time.UTC}
}

func seconds(ss ...int) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = time.Duration(s) * time.Second
	}
	return out
}

// TestSweepByHand checks the replay through the plan's own path (history →
// workload → sweep) against waits computed by hand: a boot is 25 s, a guest
// powers off 2 s after its job, and deleting a VM takes 5 s.
func TestPlanSweepByHand(t *testing.T) {
	const h, min = time.Hour, time.Minute
	match := tarty.NewLabelMatcher([]string{"tarty"})
	tests := []struct {
		name   string
		jobs   []Job
		fleet  Fleet
		adjust func(*Model)
		waits  []time.Duration
	}{
		{"one Mac, sequential jobs: each waits for its boot",
			[]Job{ran(1, h, 0, 10*min), ran(2, 2*h, 0, 10*min), ran(3, 3*h, 0, 10*min)}, Fleet{1, 0}, nil, seconds(25, 25, 25)},
		{"a burst of five on one Mac's two VMs: the rest wait for a VM to end and a boot",
			[]Job{ran(1, h, 0, 10*min), ran(2, h, 0, 10*min), ran(3, h, 0, 10*min), ran(4, h, 0, 10*min), ran(5, h, 0, 10*min)},
			Fleet{1, 0}, nil,
			// 25 + 600 (the job) + 2 (power-off) + 5 (delete) + 25 (boot) = 657; then 657 + 632.
			seconds(25, 25, 657, 657, 1289)},
		{"the same burst on three Macs: no one waits for more than a boot",
			[]Job{ran(1, h, 0, 10*min), ran(2, h, 0, 10*min), ran(3, h, 0, 10*min), ran(4, h, 0, 10*min), ran(5, h, 0, 10*min)},
			Fleet{3, 0}, nil, seconds(25, 25, 25, 25, 25)},
		{"warm runners hide the boot",
			[]Job{ran(1, h, 0, 10*min), ran(2, 2*h, 0, 10*min)}, Fleet{1, 1}, nil, seconds(0, 0)},
		{"two warm runners take a burst of three; the third waits for the first warm VM to be replaced",
			[]Job{ran(1, h, 0, 10*min), ran(2, h, 0, 10*min), ran(3, h, 0, 10*min)}, Fleet{1, 2}, nil, seconds(0, 0, 632)},
		{"the nightly rebuild holds one VM from 02:00 to 03:00",
			[]Job{ran(1, 150*min, 0, 10*min), ran(2, 150*min, 0, 10*min), ran(3, 150*min, 0, 10*min)}, Fleet{1, 0},
			func(m *Model) { m.RebuildHour, m.RebuildDuration = 2, h },
			// One VM left: 25, then 657, then 657 + 632.
			seconds(25, 657, 1289)},
		{"a job cancelled while queued leaves; the one behind it takes its place",
			[]Job{ran(1, h, 0, 10*min), ran(2, h, 0, 10*min),
				{ID: 3, Repository: "acme/app", Labels: tartyLabels, CreatedAt: day0.Add(h), CompletedAt: day0.Add(h + min), Conclusion: "cancelled"},
				ran(4, h, 0, 10*min)},
			Fleet{1, 0}, nil, seconds(25, 25, 0, 657)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWorkload(tt.jobs, match, "")
			m := model()
			if tt.adjust != nil {
				tt.adjust(&m)
			}
			res, err := Sweep(w, m, []Fleet{tt.fleet}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := res[0].Stats.Waits; !reflect.DeepEqual(got, tt.waits) {
				t.Errorf("waits = %v, want %v", got, tt.waits)
			}
		})
	}
}

func TestPlanWorkloadSortsOutTheHistory(t *testing.T) {
	const h, min = time.Hour, time.Minute
	c := day0.Add(h)
	jobs := []Job{
		ran(5, 2*h, 30*time.Second, 10*min), // later, first in the file
		{ID: 1, Labels: []string{"ubuntu-latest"}, CreatedAt: c, StartedAt: c, CompletedAt: c.Add(min), Conclusion: "success"},
		{ID: 2, Labels: tartyLabels, CreatedAt: c, StartedAt: c, CompletedAt: c, Conclusion: "skipped"},
		{ID: 3, Labels: tartyLabels, CreatedAt: c, StartedAt: c.Add(min)},                                           // still running
		{ID: 4, Labels: tartyLabels, CreatedAt: c, StartedAt: c, CompletedAt: c.Add(24 * h), Conclusion: "failure"}, // failed in the queue
		{ID: 6, Repository: "acme/lib", Labels: []string{"self-hosted", "TARTY"}, CreatedAt: c, StartedAt: c.Add(40 * time.Second),
			CompletedAt: c.Add(3 * min), Conclusion: "failure", RunnerName: "tarty-mac1-0a1b2c3d"},
		{ID: 7, Labels: tartyLabels, CreatedAt: c, StartedAt: c.Add(20 * time.Second), CompletedAt: c.Add(2 * min),
			Conclusion: "cancelled", RunnerName: "tarty-mac1-0a1b2c3e"}, // cancelled while it ran
	}
	w := NewWorkload(jobs, tarty.NewLabelMatcher([]string{"tarty"}), "tarty-mac1")
	want := Counts{Read: 7, OtherLabels: 1, Skipped: 1, Unfinished: 1, Replayed: 4, Cancelled: 2, Repositories: 2, OnTarty: 1}
	if w.Counts != want {
		t.Errorf("counts %+v, want %+v", w.Counts, want)
	}
	var ids []int64
	for _, j := range w.Jobs {
		ids = append(ids, j.ID)
	}
	if !reflect.DeepEqual(ids, []int64{4, 6, 7, 5}) {
		t.Errorf("replayed %v, want 4, 6, 7, 5 (by created_at, then ID)", ids)
	}
	if j := w.Jobs[0]; j.CancelAt != c.Add(24*h) {
		t.Errorf("a job no runner took that failed must leave the queue when it failed: %+v", j)
	}
	if j := w.Jobs[2]; j.CancelAt != c.Add(2*min) || j.Duration != 100*time.Second {
		t.Errorf("cancelled job %+v", j)
	}
	if j := w.Jobs[3]; j.Duration != 10*min || !j.CancelAt.IsZero() {
		t.Errorf("job %+v", j)
	}
	if !reflect.DeepEqual(w.Observed, []Observed{{Index: 1, Wait: 40 * time.Second}}) {
		t.Errorf("observed %+v", w.Observed)
	}
}

func results(p95s map[Fleet]time.Duration) []Result {
	var out []Result
	for _, f := range Fleets([]int{1, 2, 3, 4}, []int{0, 1, 2}) {
		if d, ok := p95s[f]; ok {
			out = append(out, Result{Fleet: f, Stats: scheduler.ReplayStats{P95: d}})
		}
	}
	return out
}

func TestPlanRecommend(t *testing.T) {
	m := time.Minute
	tests := []struct {
		name string
		p95  map[Fleet]time.Duration
		want Fleet
		met  bool
		text string
	}{
		{"the smallest fleet under the target, with the fewest warm runners that get there; one more adds little",
			map[Fleet]time.Duration{{1, 0}: 9 * m, {1, 1}: 8 * m, {1, 2}: 7 * m, {2, 0}: 3 * m, {2, 1}: 90 * time.Second,
				{2, 2}: 80 * time.Second, {3, 0}: 85 * time.Second, {3, 1}: 75 * time.Second, {3, 2}: 74 * time.Second},
			Fleet{2, 1}, true, "2 Macs with warm 1 keep p95 under 2m (p95 1m30s); 3 add little (p95 1m15s, 17% better)"},
		{"one more Mac that helps says so",
			map[Fleet]time.Duration{{1, 0}: 110 * time.Second, {2, 0}: 30 * time.Second},
			Fleet{1, 0}, true, "1 Mac with warm 0 keeps p95 under 2m (p95 1m50s); 2 would cut p95 to 30s (73% better)"},
		{"nothing meets the target: the best, and a wider sweep",
			map[Fleet]time.Duration{{1, 0}: 9 * m, {2, 0}: 5 * m, {2, 1}: 5 * m},
			Fleet{2, 0}, false, "no fleet up to 2 Macs keeps p95 under 2m: the best, 2 Macs with warm 0, has p95 5m; try --macs 1..4"},
		{"no wait at all",
			map[Fleet]time.Duration{{1, 2}: 0, {2, 2}: 0},
			Fleet{1, 2}, true, "1 Mac with warm 2 keeps p95 under 2m (p95 0s); no job waits, 2 cannot do better"},
		{"the largest fleet tried",
			map[Fleet]time.Duration{{1, 0}: 9 * m, {2, 0}: m},
			Fleet{2, 0}, true, "2 Macs with warm 0 keep p95 under 2m (p95 1m); --macs stops at 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Recommend(results(tt.p95), 2*m)
			if r.Fleet != tt.want || r.Met != tt.met || r.Text != tt.text {
				t.Errorf("got %+v met %v\n  %q\nwant %+v met %v\n  %q", r.Fleet, r.Met, r.Text, tt.want, tt.met, tt.text)
			}
		})
	}
}

func TestPlanChart(t *testing.T) {
	var b bytes.Buffer
	Chart(&b, results(map[Fleet]time.Duration{{1, 0}: 20 * time.Minute, {1, 1}: 15 * time.Minute, {2, 0}: 3 * time.Minute,
		{2, 1}: 100 * time.Second, {3, 0}: 40 * time.Second, {3, 1}: 25 * time.Second}), 2*time.Minute)
	want := `p95 wait against Macs (log scale; each point is its runners.warm; dots: the 2m target)
     20m |   0
  13m01s |     1
   8m28s |
   5m30s |
   3m35s |           0
   2m20s |........................ 2m
   1m31s |             1
     59s |
     38s |                   0
     25s |                     1
         +------------------------
             1       2       3     Macs
`
	if b.String() != want {
		t.Errorf("chart:\n%s\nwant:\n%s", b.String(), want)
	}
}

func planOf(t *testing.T, parallel int) *Report {
	t.Helper()
	jobs := synthHistory(3, synth{Jobs: 3000, Days: 7, Median: 6 * time.Minute, OtherShare: 0.2, Prefix: "tarty-mac1"})
	w := NewWorkload(jobs, tarty.NewLabelMatcher([]string{"tarty"}), "tarty-mac1")
	m := model()
	m.RebuildHour, m.RebuildDuration = 2, 45*time.Minute
	r, err := Run(w, m, Fleets([]int{1, 2, 3}, []int{0, 1, 2}), Options{Today: &Fleet{1, 0}, Source: "synthetic",
		BootSource: "--boot", Parallel: parallel})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPlanRunIsDeterministicAndWritesEveryFormat(t *testing.T) {
	a, b := planOf(t, 1), planOf(t, 4)
	outputs := func(r *Report) (text, js, cs string) {
		var x, y, z bytes.Buffer
		if err := WriteText(&x, r); err != nil {
			t.Fatal(err)
		}
		if err := WriteJSON(&y, r); err != nil {
			t.Fatal(err)
		}
		if err := WriteCSV(&z, r); err != nil {
			t.Fatal(err)
		}
		return x.String(), y.String(), z.String()
	}
	t1, j1, c1 := outputs(a)
	t2, j2, c2 := outputs(b)
	if t1 != t2 || j1 != j2 || c1 != c2 {
		t.Fatal("two runs of the same history differ")
	}
	for _, s := range []string{"History: synthetic", "Macs  warm     mean", "Recommendation: ", "p95 wait against Macs",
		"Waits on Tarty's own runners", "observed (started_at - created_at)", "predicted for today's setup (1 Mac, warm 0)",
		"nightly rebuild at 02:00 UTC holds one VM of each Mac for 45m"} {
		if !strings.Contains(t1, s) {
			t.Errorf("text lacks %q:\n%s", s, t1)
		}
	}
	var doc struct {
		Jobs    Counts `json:"jobs"`
		Results []struct {
			Macs       int     `json:"macs"`
			Warm       int     `json:"warm"`
			P95Seconds float64 `json:"p95_wait_seconds"`
		} `json:"results"`
		Recommendation struct {
			Macs int    `json:"macs"`
			Text string `json:"text"`
		} `json:"recommendation"`
		Observed *struct {
			Observed struct{ Jobs int } `json:"observed"`
		} `json:"observed_on_tarty"`
	}
	if err := json.Unmarshal([]byte(j1), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Results) != 9 || doc.Jobs.Replayed == 0 || doc.Recommendation.Text != a.Recommendation.Text ||
		doc.Observed == nil || doc.Observed.Observed.Jobs != a.Counts.OnTarty {
		t.Errorf("JSON: %+v", doc)
	}
	rows, err := csv.NewReader(strings.NewReader(c1)).ReadAll()
	if err != nil || len(rows) != 10 || rows[0][0] != "macs" || rows[9][0] != "3" || rows[9][1] != "2" {
		t.Errorf("CSV: %v %v", rows, err)
	}
	// More Macs never make p95 worse in this history.
	for i := 3; i < len(a.Results); i++ {
		if a.Results[i].Stats.P95 > a.Results[i-3].Stats.P95 {
			t.Errorf("%+v has a worse p95 than %+v", a.Results[i].Fleet, a.Results[i-3].Fleet)
		}
	}
}

func TestPlanObservedBesideToday(t *testing.T) {
	const h, min = time.Hour, time.Minute
	// Jobs that ran on this Mac's runners, a boot's wait each, and a burst.
	jobs := []Job{ran(1, h, 30*time.Second, 5*min), ran(2, 2*h, 28*time.Second, 5*min), ran(3, 3*h, 31*time.Second, 5*min)}
	for i := range jobs {
		jobs[i].RunnerName = "tarty-mac1-0000000" + string(rune('1'+i))
	}
	w := NewWorkload(jobs, tarty.NewLabelMatcher([]string{"tarty"}), "tarty-mac1")
	r, err := Run(w, model(), []Fleet{{2, 0}}, Options{Today: &Fleet{1, 0}})
	if err != nil {
		t.Fatal(err)
	}
	o := r.Observed
	if o == nil || o.Fleet != (Fleet{1, 0}) {
		t.Fatalf("no comparison with today's setup: %+v", o)
	}
	if o.Observed.Jobs != 3 || o.Observed.P50 != 30*time.Second || o.Observed.Max != 31*time.Second {
		t.Errorf("observed %+v", o.Observed)
	}
	if o.Predicted.Mean != 25*time.Second || o.Predicted.Max != 25*time.Second {
		t.Errorf("predicted %+v, want the boot for every job", o.Predicted)
	}
	var b bytes.Buffer
	_ = WriteText(&b, r)
	if !strings.Contains(b.String(), "the model's mean is 16% below the observed one") {
		t.Errorf("text:\n%s", b.String())
	}
}

func TestPlanFormatWait(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0s", 400 * time.Millisecond: "0s", 45 * time.Second: "45s",
		2 * time.Minute: "2m", 125 * time.Second: "2m05s", time.Hour: "1h", 80 * time.Minute: "1h20m",
		time.Hour + 59*time.Minute + 50*time.Second: "2h", 130 * time.Hour: "130h"} {
		if got := FormatWait(d); got != want {
			t.Errorf("FormatWait(%v) = %q, want %q", d, got, want)
		}
	}
}
