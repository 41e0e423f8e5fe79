package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty/ghapi/fakegithub"
)

// planSetup is a fake GitHub with a week of history and a config pointing at
// it, with a daemon's /metrics on the admin address.
type planSetup struct {
	gh     *fakegithub.Server
	dir    string
	config string
	runs   int
}

func newPlanSetup(t *testing.T) *planSetup {
	t.Helper()
	p := &planSetup{gh: fakegithub.New(fakegithub.Config{}), dir: t.TempDir()}
	t.Cleanup(p.gh.Close)
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# TYPE tarty_vm_boot_seconds histogram\ntarty_vm_boot_seconds_sum 124\ntarty_vm_boot_seconds_count 4\n")
	}))
	t.Cleanup(metrics.Close)

	// A week of pushes to two repositories: bursts of 1 to 4 macOS jobs of
	// 4 to 12 minutes that ran on this Mac's runners, and Linux jobs beside.
	now := time.Now().UTC().Truncate(time.Minute)
	ours := []string{"self-hosted", "macOS", "tarty"}
	for i := 0; i < 150; i++ {
		at := now.Add(-time.Duration(i)*67*time.Minute - 30*time.Minute)
		var jobs []fakegithub.PastJob
		for k := 0; k <= i%4; k++ {
			wait := time.Duration(25+10*k) * time.Second
			jobs = append(jobs, fakegithub.PastJob{Labels: ours, Started: at.Add(wait),
				Completed: at.Add(wait + time.Duration(4+(i*7+k*3)%9)*time.Minute), RunnerName: fmt.Sprintf("tarty-plan-%08x", i*10+k)})
		}
		jobs = append(jobs, fakegithub.PastJob{Labels: []string{"ubuntu-latest"}, Started: at.Add(3 * time.Second),
			Completed: at.Add(2 * time.Minute)})
		if i%10 == 3 {
			jobs = append(jobs, fakegithub.PastJob{Labels: ours, Completed: at.Add(time.Minute), Conclusion: "cancelled"})
		}
		p.gh.AddPastRun([]string{"app", "lib"}[i%2], at, jobs...)
		p.runs++
	}

	p.config = filepath.Join(p.dir, "tarty.yaml")
	p.writeConfig(t, filepath.Join(p.dir, "state"), strings.TrimPrefix(metrics.URL, "http://"))
	t.Setenv("TARTY_GITHUB_TOKEN", p.gh.Token())
	t.Setenv("TARTY_WEBHOOK_SECRET", "plan-test-webhook-secret")
	t.Setenv("TARTY_CONFIG", "")
	return p
}

func (p *planSetup) writeConfig(t *testing.T, stateDir, admin string) {
	t.Helper()
	cfg := fmt.Sprintf(`github:
  url: %s
  organization: %s
  labels: [tarty]
images:
  base: base-image
  runner: runner-image
runners:
  name_prefix: tarty-plan
rebuild:
  command: ./convert.sh
  hour: 3
server:
  admin_listen: %s
state_dir: %s
`, p.gh.URL(), p.gh.Organization(), admin, stateDir)
	if err := os.WriteFile(p.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// withoutWindow drops the first line (its times move with the clock).
func withoutWindow(s string) string {
	_, rest, _ := strings.Cut(s, "\n")
	return rest
}

func TestPlanEndToEnd(t *testing.T) {
	p := newPlanSetup(t)
	args := []string{"plan", "--config", p.config, "--days", "8", "--macs", "1..3", "--warm", "0,1", "--rebuild-duration", "40m"}
	before := p.gh.RateRemaining()
	saved := filepath.Join(p.dir, "history.jsonl")
	code, out, errOut := runCLI(t, append(args, "--save-jobs", saved)...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	cold := before - p.gh.RateRemaining()
	for _, s := range []string{
		"History: organisation acme (2 repositories the runner group serves)",
		"with labels Tarty serves [tarty] (15 cancelled: demand until cancelled, not in the waits)",
		"left out: 150 with other labels",
		"boot 31s (the mean of 4 boots measured by the daemon on 127.0.0.1:",
		"nightly rebuild at 03:00 local time holds one VM of each Mac for 40m",
		"Macs  warm     mean      p50      p95      max",
		"\n   1     0  ", "\n   3     1  ",
		"Recommendation: ",
		"p95 wait against Macs (log scale",
		"Waits on Tarty's own runners (373 jobs)",
		"predicted for today's setup (1 Mac, warm 0)",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("stdout lacks %q:\n%s", s, out)
		}
	}
	if !strings.Contains(errOut, fmt.Sprintf("read %d runs of 2 repositories (0 from the cache)", p.runs)) ||
		!strings.Contains(errOut, fmt.Sprintf(": %d rate-limit units", cold)) {
		t.Errorf("stderr: %s (GitHub counted %d units)", errOut, cold)
	}

	// Again: everything from the cache under state_dir, not one unit spent,
	// and the same report.
	before = p.gh.RateRemaining()
	code, again, errOut := runCLI(t, args...)
	if code != 0 || p.gh.RateRemaining() != before {
		t.Fatalf("second run: exit %d, %d units\n%s", code, before-p.gh.RateRemaining(), errOut)
	}
	if !strings.Contains(errOut, fmt.Sprintf("(%d from the cache)", p.runs)) || !strings.Contains(errOut, ": 0 rate-limit units") {
		t.Errorf("second run's stderr: %s", errOut)
	}
	if withoutWindow(again) != withoutWindow(out) {
		t.Errorf("the second report differs:\n%s\nfirst:\n%s", again, out)
	}
	if fi, err := os.Stat(filepath.Join(p.dir, "state", "plan")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache directory: %v %v", fi, err)
	}

	// The history saved, replayed from the file, gives the same table.
	code, fromFile, errOut := runCLI(t, "plan", "--config", p.config, "--jobs", saved, "--macs", "1..3", "--warm", "0,1",
		"--rebuild-duration", "40m")
	if code != 0 {
		t.Fatalf("--jobs: exit %d: %s", code, errOut)
	}
	tableOf := func(s string) string {
		_, rest, _ := strings.Cut(s, "Macs  warm")
		return rest
	}
	if tableOf(fromFile) != tableOf(out) {
		t.Errorf("--jobs differs from the GitHub reading:\n%s\n%s", fromFile, out)
	}

	// JSON and CSV.
	code, js, _ := runCLI(t, append(args, "--json")...)
	var doc struct {
		Source  string `json:"source"`
		Results []struct {
			Macs, Warm int
		} `json:"results"`
		Recommendation struct {
			Text string `json:"text"`
		} `json:"recommendation"`
		Observed struct {
			Observed struct {
				Jobs int `json:"jobs"`
			} `json:"observed"`
		} `json:"observed_on_tarty"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil || code != 0 {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, js)
	}
	if len(doc.Results) != 6 || doc.Recommendation.Text == "" || doc.Observed.Observed.Jobs != 373 {
		t.Errorf("--json: %+v", doc)
	}
	code, cs, _ := runCLI(t, append(args, "--csv")...)
	lines := strings.Split(strings.TrimSpace(cs), "\n")
	if code != 0 || len(lines) != 7 || !strings.HasPrefix(lines[0], "macs,warm,jobs,mean_wait_s") {
		t.Errorf("--csv: exit %d\n%s", code, cs)
	}
}

func TestPlanRefusesAboveTheBudget(t *testing.T) {
	p := newPlanSetup(t)
	code, out, errOut := runCLI(t, "plan", "--config", p.config, "--days", "8", "--budget", "50")
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, s := range []string{"would cost about", "150 runs whose jobs are not cached", "the bound is 50 (--budget)"} {
		if !strings.Contains(errOut, s) {
			t.Errorf("stderr lacks %q: %s", s, errOut)
		}
	}
	if n := p.gh.CallsMatching("GET", "/repos/acme/*/actions/runs/*/jobs"); n != 0 {
		t.Errorf("%d jobs requests before refusing", n)
	}
}

func TestPlanUsageAndBadInput(t *testing.T) {
	p := newPlanSetup(t)
	bad := filepath.Join(p.dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"id":1,"labels":["tarty"],"created_at":"2026-11-20T09:00:00Z","started_at":"2026-11-20T09:00:30Z","completed_at":"2026-11-20T09:05:00Z"}
{"id":2,"labels":["tarty"],"created_at":"last tuesday"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(p.dir, "good.jsonl")
	if err := os.WriteFile(good, []byte(`{"id":1,"labels":["self-hosted","build"],"created_at":"2026-11-20T09:00:00Z","started_at":"2026-11-20T09:00:30Z","completed_at":"2026-11-20T09:05:00Z"}
{"id":2,"labels":["self-hosted","build"],"created_at":"2026-11-20T09:00:00Z","started_at":"2026-11-20T09:00:30Z","completed_at":"2026-11-20T09:05:00Z"}
{"id":3,"labels":["self-hosted","build"],"created_at":"2026-11-20T09:00:00Z","started_at":"2026-11-20T09:00:30Z","completed_at":"2026-11-20T09:05:00Z"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
		stdout string
	}{
		{"no Macs", []string{"--macs", "0"}, 2, "--macs: 0 is outside 1..100", ""},
		{"a backwards range", []string{"--macs", "4..2"}, 2, `--macs: "4..2": want N..M with N <= M`, ""},
		{"too warm", []string{"--warm", "0,3"}, 2, "--warm: 3 is outside 0..2", ""},
		{"two formats", []string{"--json", "--csv"}, 2, "choose one", ""},
		{"a bad rebuild duration", []string{"--rebuild-duration", "soon"}, 2, `--rebuild-duration "soon"`, ""},
		{"a bad history file names its line", []string{"--jobs", bad}, 1, "bad.jsonl:2: created_at: \"last tuesday\" is not an RFC 3339 time", ""},
		{"no job Tarty would serve", []string{"--jobs", good}, 1, "none of the 3 jobs read has labels Tarty serves [tarty]", ""},
		{"--labels picks others", []string{"--jobs", good, "--labels", "build", "--macs", "2", "--boot", "20s"}, 0, "",
			"Recommendation: 2 Macs with warm 0 keep p95 under 2m (p95 20s); --macs stops at 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"plan", "--config", p.config}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) || !strings.Contains(out, tt.stdout) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
		})
	}

	// --jobs needs no config at all.
	code, out, errOut := runCLI(t, "plan", "--config", filepath.Join(p.dir, "none.yaml"), "--jobs", good, "--labels", "build",
		"--macs", "1,2", "--warm", "0")
	if code != 0 || !strings.Contains(out, "no nightly rebuild") || !strings.Contains(out, "boot 25s (the default") {
		t.Errorf("without a config: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestPlanParseCounts(t *testing.T) {
	for in, want := range map[string][]int{"1..4": {1, 2, 3, 4}, "3": {3}, "4,1,2,2": {1, 2, 4}, "1-3, 6": {1, 2, 3, 6}} {
		got, err := parseCounts(in, 0, 10)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseCounts(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "1..", "11", "2..1"} {
		if _, err := parseCounts(in, 0, 10); err == nil {
			t.Errorf("parseCounts(%q) accepted", in)
		}
	}
}
