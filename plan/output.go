package plan

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WriteText prints the report for a person: what was replayed and how, the
// table, the recommendation, the chart and the observed waits.
func WriteText(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	c := r.Counts
	fmt.Fprintf(bw, "History: %s, %s to %s UTC: %s jobs\n", r.Source, r.From.UTC().Format("2006-01-02 15:04"),
		r.To.UTC().Format("2006-01-02 15:04"), thousands(c.Read))
	fmt.Fprintf(bw, "  replayed %s jobs", thousands(c.Replayed))
	if c.Repositories > 0 {
		fmt.Fprintf(bw, " of %s", plural(c.Repositories, "repository", "repositories"))
	}
	fmt.Fprintf(bw, " with labels Tarty serves %v", r.Model.Labels)
	if c.Cancelled > 0 {
		fmt.Fprintf(bw, " (%s cancelled: demand until cancelled, not in the waits)", thousands(c.Cancelled))
	}
	fmt.Fprintln(bw)
	if c.OtherLabels+c.Skipped+c.Unfinished > 0 {
		fmt.Fprintf(bw, "  left out: %s with other labels, %s skipped, %s not finished\n",
			thousands(c.OtherLabels), thousands(c.Skipped), thousands(c.Unfinished))
	}
	m := r.Model
	fmt.Fprintf(bw, "Model: %d VMs a Mac; boot %s (%s); idle_timeout %s", m.SlotsPerMac, FormatWait(m.Boot), r.BootSource,
		FormatWait(m.IdleTimeout))
	if m.RebuildHour >= 0 && m.RebuildDuration > 0 {
		zone := "UTC"
		switch {
		case m.Location == time.Local:
			zone = "local time"
		case m.Location != nil:
			zone = m.Location.String()
		}
		fmt.Fprintf(bw, "; nightly rebuild at %02d:00 %s holds one VM of each Mac for %s", m.RebuildHour,
			zone, FormatWait(m.RebuildDuration))
	} else {
		fmt.Fprint(bw, "; no nightly rebuild")
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw)
	writeTable(bw, r)
	fmt.Fprintln(bw)
	fmt.Fprintf(bw, "Recommendation: %s.\n\n", r.Recommendation.Text)
	Chart(bw, r.Results, r.Target)
	if o := r.Observed; o != nil {
		fmt.Fprintln(bw)
		writeObserved(bw, o)
	}
	return bw.Flush()
}

func writeTable(w io.Writer, r *Report) {
	unserved := false
	for _, x := range r.Results {
		if x.Stats.Unserved > 0 {
			unserved = true
		}
	}
	head := "Macs  warm     mean      p50      p95      max     >1m     >5m   util   peak  VM-hours"
	if unserved {
		head += "  failed"
	}
	fmt.Fprintln(w, head)
	for _, x := range r.Results {
		s := x.Stats
		fmt.Fprintf(w, "%4d  %4d  %7s  %7s  %7s  %7s  %6s  %6s  %4.0f%%  %5d  %8.1f", x.Macs, x.Warm,
			FormatWait(s.Mean), FormatWait(s.P50), FormatWait(s.P95), FormatWait(s.Max),
			percent(s.Over1m), percent(s.Over5m), 100*s.Utilisation, s.PeakQueue, s.VMHours)
		if unserved {
			fmt.Fprintf(w, "  %6d", s.Unserved)
		}
		fmt.Fprintln(w)
	}
	if unserved {
		fmt.Fprintln(w, "failed: jobs still queued a day after their creation, when GitHub fails them (counted with a day's wait)")
	}
}

func writeObserved(w io.Writer, o *Comparison) {
	fmt.Fprintf(w, "Waits on Tarty's own runners (%s jobs):            mean      p50      p95      max\n", thousands(o.Observed.Jobs))
	row := func(name string, s WaitSummary) {
		fmt.Fprintf(w, "  %-47s %7s  %7s  %7s  %7s\n", name, FormatWait(s.Mean), FormatWait(s.P50), FormatWait(s.P95), FormatWait(s.Max))
	}
	row("observed (started_at - created_at)", o.Observed)
	row(fmt.Sprintf("predicted for today's setup (%s, warm %d)", macsWord(o.Fleet.Macs), o.Fleet.Warm), o.Predicted)
	if o.Observed.Mean > 0 {
		fmt.Fprintf(w, "  the model's mean is %s the observed one\n", ratioWords(o.Predicted.Mean, o.Observed.Mean))
	}
}

func ratioWords(pred, obs time.Duration) string {
	d := float64(pred-obs) / float64(obs)
	switch {
	case math.Abs(d) < 0.005:
		return "equal to"
	case d >= 1:
		return fmt.Sprintf("%.1f times", float64(pred)/float64(obs))
	case d > 0:
		return fmt.Sprintf("%.0f%% above", 100*d)
	}
	return fmt.Sprintf("%.0f%% below", -100*d)
}

func percent(f float64) string {
	return strconv.FormatFloat(100*f, 'f', 1, 64) + "%"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}

// Thousands prints n with commas: 48,210.
func Thousands(n int) string { return thousands(n) }

func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Chart draws p95 wait (log scale, up) against the number of Macs (across)
// in plain characters; each point is its warm setting's digit, and a line of
// dots marks the target.
func Chart(w io.Writer, results []Result, target time.Duration) {
	if len(results) == 0 {
		return
	}
	const rows = 10
	macs := sortedMacs(results)
	var warms []int
	for _, r := range results {
		if !slices.Contains(warms, r.Warm) {
			warms = append(warms, r.Warm)
		}
	}
	slices.Sort(warms)
	lo, hi := target, target
	for _, r := range results {
		lo, hi = min(lo, r.Stats.P95), max(hi, r.Stats.P95)
	}
	lo = max(lo, time.Second)
	if hi < 10*lo {
		lo = max(hi/10, time.Second)
	}
	if hi <= lo {
		hi = lo * 10
	}
	span := math.Log(float64(hi)) - math.Log(float64(lo))
	row := func(d time.Duration) int {
		d = min(max(d, lo), hi)
		return int(math.Round((math.Log(float64(d)) - math.Log(float64(lo))) / span * (rows - 1)))
	}
	const labelW = 8
	groupW := 2*len(warms) + 4
	width := groupW * len(macs)
	grid := make([][]byte, rows)
	for i := range grid {
		grid[i] = []byte(strings.Repeat(" ", width))
	}
	tr := row(target)
	for x := 0; x < width; x++ {
		grid[tr][x] = '.'
	}
	for _, r := range results {
		g := slices.Index(macs, r.Macs)
		k := slices.Index(warms, r.Warm)
		mark := byte('*')
		if r.Warm >= 0 && r.Warm <= 9 {
			mark = byte('0' + r.Warm)
		}
		grid[row(r.Stats.P95)][g*groupW+3+2*k] = mark
	}
	fmt.Fprintf(w, "p95 wait against Macs (log scale; each point is its runners.warm; dots: the %s target)\n", FormatWait(target))
	for i := rows - 1; i >= 0; i-- {
		v := time.Duration(float64(lo) * math.Exp(span*float64(i)/(rows-1)))
		label := FormatWait(v)
		if i == 0 && lo == time.Second {
			label = "<=1s"
		}
		line := strings.TrimRight(string(grid[i]), " ")
		if i == tr {
			line = string(grid[i]) + " " + FormatWait(target)
		}
		fmt.Fprintf(w, "%*s |%s\n", labelW, label, line)
	}
	fmt.Fprintf(w, "%*s +%s\n", labelW, "", strings.Repeat("-", width))
	var axis strings.Builder
	for _, n := range macs {
		cell := strconv.Itoa(n)
		pad := groupW - len(cell)
		axis.WriteString(strings.Repeat(" ", pad/2) + cell + strings.Repeat(" ", pad-pad/2))
	}
	fmt.Fprintf(w, "%*s  %s Macs\n", labelW, "", axis.String())
}

// jsonReport is the --json shape: times in RFC 3339, durations in seconds.
type jsonReport struct {
	Source          string          `json:"source"`
	From            time.Time       `json:"from"`
	To              time.Time       `json:"to"`
	Jobs            Counts          `json:"jobs"`
	Model           jsonModel       `json:"model"`
	TargetSeconds   float64         `json:"target_p95_seconds"`
	Results         []jsonResult    `json:"results"`
	Recommendation  jsonRecommended `json:"recommendation"`
	ObservedOnTarty *jsonComparison `json:"observed_on_tarty"`
}

type jsonModel struct {
	SlotsPerMac        int      `json:"vms_per_mac"`
	Labels             []string `json:"labels"`
	BootSeconds        float64  `json:"boot_seconds"`
	BootSource         string   `json:"boot_source"`
	IdleTimeoutSeconds float64  `json:"idle_timeout_seconds"`
	MaxLifetimeSeconds float64  `json:"max_lifetime_seconds"`
	RebuildHour        *int     `json:"rebuild_hour"`
	RebuildSeconds     float64  `json:"rebuild_seconds"`
	RebuildTimeZone    string   `json:"rebuild_time_zone,omitempty"`
}

type jsonResult struct {
	Macs        int     `json:"macs"`
	Warm        int     `json:"warm"`
	MeanSeconds float64 `json:"mean_wait_seconds"`
	P50Seconds  float64 `json:"p50_wait_seconds"`
	P95Seconds  float64 `json:"p95_wait_seconds"`
	MaxSeconds  float64 `json:"max_wait_seconds"`
	Over1m      float64 `json:"share_over_1m"`
	Over5m      float64 `json:"share_over_5m"`
	Utilisation float64 `json:"utilisation"`
	PeakQueue   int     `json:"peak_queue"`
	VMHours     float64 `json:"vm_hours"`
	Failed      int     `json:"failed_after_a_day"`
	Launches    int     `json:"launches"`
}

type jsonRecommended struct {
	Macs           int      `json:"macs"`
	Warm           int      `json:"warm"`
	MeetsTarget    bool     `json:"meets_target"`
	P95Seconds     float64  `json:"p95_wait_seconds"`
	NextP95Seconds *float64 `json:"one_more_mac_p95_wait_seconds"`
	Text           string   `json:"text"`
}

type jsonWaits struct {
	Jobs        int     `json:"jobs"`
	MeanSeconds float64 `json:"mean_wait_seconds"`
	P50Seconds  float64 `json:"p50_wait_seconds"`
	P95Seconds  float64 `json:"p95_wait_seconds"`
	MaxSeconds  float64 `json:"max_wait_seconds"`
}

type jsonComparison struct {
	Fleet     Fleet     `json:"todays_setup"`
	Observed  jsonWaits `json:"observed"`
	Predicted jsonWaits `json:"predicted"`
}

func secs(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

func round(f float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}

func waitsJSON(s WaitSummary) jsonWaits {
	return jsonWaits{Jobs: s.Jobs, MeanSeconds: secs(s.Mean), P50Seconds: secs(s.P50), P95Seconds: secs(s.P95), MaxSeconds: secs(s.Max)}
}

// WriteJSON prints the report as one JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	m := r.Model
	out := jsonReport{
		Source: r.Source, From: r.From.UTC(), To: r.To.UTC(), Jobs: r.Counts, TargetSeconds: secs(r.Target),
		Model: jsonModel{SlotsPerMac: m.SlotsPerMac, Labels: m.Labels, BootSeconds: secs(m.Boot), BootSource: r.BootSource,
			IdleTimeoutSeconds: secs(m.IdleTimeout), MaxLifetimeSeconds: secs(m.MaxLifetime)},
		Results: []jsonResult{},
	}
	if m.RebuildHour >= 0 && m.RebuildDuration > 0 {
		h := m.RebuildHour
		out.Model.RebuildHour, out.Model.RebuildSeconds = &h, secs(m.RebuildDuration)
		if m.Location != nil {
			out.Model.RebuildTimeZone = m.Location.String()
		}
	}
	for _, x := range r.Results {
		s := x.Stats
		out.Results = append(out.Results, jsonResult{Macs: x.Macs, Warm: x.Warm, MeanSeconds: secs(s.Mean),
			P50Seconds: secs(s.P50), P95Seconds: secs(s.P95), MaxSeconds: secs(s.Max), Over1m: round(s.Over1m, 4),
			Over5m: round(s.Over5m, 4), Utilisation: round(s.Utilisation, 4), PeakQueue: s.PeakQueue,
			VMHours: round(s.VMHours, 2), Failed: s.Unserved, Launches: s.Launches})
	}
	rec := r.Recommendation
	out.Recommendation = jsonRecommended{Macs: rec.Macs, Warm: rec.Warm, MeetsTarget: rec.Met, P95Seconds: secs(rec.P95), Text: rec.Text}
	if rec.Next != nil {
		v := secs(rec.Next.Stats.P95)
		out.Recommendation.NextP95Seconds = &v
	}
	if o := r.Observed; o != nil {
		out.ObservedOnTarty = &jsonComparison{Fleet: o.Fleet, Observed: waitsJSON(o.Observed), Predicted: waitsJSON(o.Predicted)}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteCSV prints the table, one row per fleet, durations in seconds.
func WriteCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"macs", "warm", "jobs", "mean_wait_s", "p50_wait_s", "p95_wait_s", "max_wait_s", "share_over_1m",
		"share_over_5m", "utilisation", "peak_queue", "vm_hours", "failed_after_a_day", "cancelled", "launches"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, x := range r.Results {
		s := x.Stats
		_ = cw.Write([]string{strconv.Itoa(x.Macs), strconv.Itoa(x.Warm), strconv.Itoa(s.Jobs), f(secs(s.Mean)),
			f(secs(s.P50)), f(secs(s.P95)), f(secs(s.Max)), f(round(s.Over1m, 4)), f(round(s.Over5m, 4)),
			f(round(s.Utilisation, 4)), strconv.Itoa(s.PeakQueue), f(round(s.VMHours, 2)), strconv.Itoa(s.Unserved),
			strconv.Itoa(s.Cancelled), strconv.Itoa(s.Launches)})
	}
	cw.Flush()
	return cw.Error()
}
