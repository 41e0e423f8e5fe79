//go:build unix

package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tartyci/tarty/tartvm/faketart"
)

// printer writes the narration: one line per event, with the time since the
// demo started and who acted.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *printer) line(who, format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%6.1fs  %-9s %s\n", time.Since(p.start).Seconds(), who, fmt.Sprintf(format, a...))
}

func (p *printer) text(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, a...)
}

// The parts of the admin listener's /status the narration follows
// (DESIGN.md section 4; decoded as any client of /status would).
type status struct {
	Ready  bool `json:"ready"`
	Slots  []slotStatus
	Queued []struct {
		JobID  int64  `json:"job_id"`
		Reason string `json:"reason"`
	} `json:"queued"`
	Rebuild struct {
		State      string     `json:"state"`
		LastResult string     `json:"last_result"`
		LastAt     *time.Time `json:"last_at"`
	} `json:"rebuild"`
}

type slotStatus struct {
	Index  int    `json:"index"`
	State  string `json:"state"`
	VM     string `json:"vm"`
	JobID  int64  `json:"job_id"`
	Reason string `json:"reason"`
}

// jobInfo is what the demo saw of one job.
type jobInfo struct {
	id            int64
	queuedAt      time.Time // when the demo queued it on the fake GitHub
	webhookLost   bool
	status        string // on GitHub
	startedAt     time.Time
	doneAt        time.Time
	conclusion    string
	runner        string
	reason        string // the last reason Tarty's /status gave for its wait
	known         bool   // Tarty's /status listed it
	waitedForSlot bool
}

// vmInfo is what the demo saw of one VM.
type vmInfo struct {
	name      string
	source    string
	image     string // the label it was cloned with
	clonedAt  time.Time
	runnerUp  time.Time // its runner listening
	stoppedBy string    // "" while it runs
	deleted   bool
	renamedTo string
}

// watcher follows what happens, from the outside: the fake GitHub's
// deliveries, jobs and registrations, the fake tart's invocation log, the
// guest's commands, and the daemon's /status and /metrics. Every line of
// narration comes from one of these observations.
type watcher struct {
	w    *world
	p    *printer
	http *http.Client

	mu         sync.Mutex
	jobs       map[int64]*jobInfo
	jobOrder   []int64
	vms        map[string]*vmInfo
	vmOrder    []string
	deliveries int // deliveries narrated
	delivered  int
	lost       int
	jits       int
	callsOff   int64
	slots      map[int]slotStatus
	rebuild    string
	rebuildAt  *time.Time
	rebuildRes string
	missed     float64
	maxRunning int
	running    []string
	problems   []string // things that went wrong while watching
}

func newWatcher(w *world, p *printer) *watcher {
	return &watcher{w: w, p: p,
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}},
		jobs: map[int64]*jobInfo{}, vms: map[string]*vmInfo{}, slots: map[int]slotStatus{}}
}

// run observes every 100 ms until ctx ends.
func (wa *watcher) run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		wa.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// queued records a job the demo queued.
func (wa *watcher) queued(id int64, at time.Time, webhookLost bool) {
	wa.mu.Lock()
	defer wa.mu.Unlock()
	wa.jobs[id] = &jobInfo{id: id, queuedAt: at, webhookLost: webhookLost, status: "queued"}
	wa.jobOrder = append(wa.jobOrder, id)
}

// check runs f with the watcher's state locked.
func (wa *watcher) check(f func()) {
	wa.mu.Lock()
	defer wa.mu.Unlock()
	f()
}

func (wa *watcher) tick(ctx context.Context) {
	st, stErr := wa.status(ctx)
	missed, mErr := wa.metric(ctx, "tarty_reconcile_missed_jobs_total")
	running := wa.w.runningVMs()

	wa.mu.Lock()
	defer wa.mu.Unlock()
	// In the order things happen: webhook, registration, the job on
	// GitHub, tart's side of it, then Tarty's view.
	wa.deliveriesTick()
	wa.jitTick()
	wa.jobsTick()
	wa.tartTick()
	if stErr == nil {
		wa.statusTick(st)
	}
	if mErr == nil && missed > wa.missed {
		wa.p.line("poller", "found %v queued job(s) that no webhook announced (tarty_reconcile_missed_jobs_total %v)",
			missed-wa.missed, missed)
		wa.missed = missed
	}
	wa.running = running
	if len(running) > wa.maxRunning {
		wa.maxRunning = len(running)
		if len(running) > 2 {
			wa.problems = append(wa.problems, fmt.Sprintf("%d macOS VMs ran at once: %v", len(running), running))
		}
	}
}

func (wa *watcher) deliveriesTick() {
	ds := wa.w.gh.Deliveries()
	for _, d := range ds[min(wa.deliveries, len(ds)):] {
		switch {
		case d.Dropped:
			wa.lost++
			wa.p.line("webhook", "job %d %s: LOST (the simulated GitHub dropped this delivery)", d.JobID, d.Action)
		case d.OK():
			wa.delivered++
			if d.Action == "queued" {
				wa.p.line("webhook", "job %d queued: signed delivery to %s, Tarty answered %d", d.JobID, "/github/webhook", d.StatusCode)
			}
		default:
			wa.problems = append(wa.problems, fmt.Sprintf("webhook %s for job %d: %d %s", d.Action, d.JobID, d.StatusCode, d.Err))
			wa.p.line("webhook", "job %d %s: delivery failed: %d %s", d.JobID, d.Action, d.StatusCode, d.Err)
		}
	}
	wa.deliveries = len(ds)
}

func (wa *watcher) jitTick() {
	js := wa.w.gh.JITRequests()
	for _, j := range js[min(wa.jits, len(js)):] {
		wa.p.line("github", "runner %s registered (JIT config, runner id %d)", j.Name, j.RunnerID)
	}
	wa.jits = len(js)
}

func (wa *watcher) jobsTick() {
	now := time.Now()
	for _, j := range wa.w.gh.Jobs() {
		ji := wa.jobs[j.ID]
		if ji == nil || ji.status == j.Status {
			continue
		}
		ji.status = j.Status
		switch j.Status {
		case "in_progress":
			ji.startedAt, ji.runner = now, j.RunnerName
			img := ""
			if vm := wa.vms[j.RunnerName]; vm != nil {
				img = " (" + vm.image + ")"
			}
			wa.p.line(jobWho(j.ID), "taken by runner %s%s after waiting %.1fs", j.RunnerName, img, now.Sub(ji.queuedAt).Seconds())
		case "completed":
			ji.doneAt, ji.conclusion = now, j.Conclusion
			if ji.runner == "" {
				ji.runner = j.RunnerName
			}
			ran := ""
			if !ji.startedAt.IsZero() {
				ran = fmt.Sprintf(" after %.1fs", now.Sub(ji.startedAt).Seconds())
			}
			wa.p.line(jobWho(j.ID), "completed: %s%s", j.Conclusion, ran)
		}
	}
}

func jobWho(id int64) string { return "job " + strconv.FormatInt(id, 10) }

// tartTick narrates the fake tart's new invocations: clones, stops,
// deletes, renames and failures (not the frequent list, get and ip).
func (wa *watcher) tartTick() {
	calls, off := readCalls(filepath.Join(wa.w.tartHome, "faketart-calls.jsonl"), wa.callsOff)
	wa.callsOff = off
	for _, c := range calls {
		if len(c.Args) < 2 {
			continue
		}
		verb, name := c.Args[0], c.Args[1]
		if verb == "run" {
			name = c.Args[len(c.Args)-1] // tart run [flags] NAME
		}
		switch {
		case verb == "clone" && c.Exit == 0 && len(c.Args) >= 3:
			vm := &vmInfo{name: c.Args[2], source: name, clonedAt: time.Now(), image: wa.w.label(c.Args[2])}
			wa.vms[vm.name] = vm
			wa.vmOrder = append(wa.vmOrder, vm.name)
			wa.p.line("tart", "clone %s %s  (%s)", name, vm.name, vm.image)
		case verb == "run" && !c.Hung:
			how := wa.w.runEnd(name)
			if vm := wa.vms[name]; vm != nil {
				vm.stoppedBy = how
			}
			wa.p.line("tart", "%s: %s; tart run exited %d after %.1fs", name, how, c.Exit, float64(c.DurationMS)/1000)
		case verb == "delete" && c.Exit == 2:
			// Already gone: the rebuild's clean-up after its build VM
			// became the runner image.
		case verb == "delete" && c.Exit == 0:
			if vm := wa.vms[name]; vm != nil {
				vm.deleted = true
			}
			wa.p.line("tart", "delete %s", name)
		case verb == "rename" && c.Exit == 0 && len(c.Args) >= 3:
			if vm := wa.vms[name]; vm != nil {
				vm.renamedTo = c.Args[2]
			}
			wa.p.line("tart", "rename %s %s", name, c.Args[2])
		case c.Exit != 0 && (verb == "clone" || verb == "set" || verb == "delete" || verb == "rename"):
			wa.problems = append(wa.problems, fmt.Sprintf("tart %s %s failed (exit %d)", verb, name, c.Exit))
			wa.p.line("tart", "%s %s failed (exit %d)", verb, name, c.Exit)
		}
	}
}

// readCalls reads the complete lines of the fake tart's invocation log from
// offset and returns them with the offset after them.
func readCalls(path string, off int64) ([]faketart.Call, int64) {
	f, err := os.Open(path)
	if err != nil {
		return nil, off
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, off
	}
	var out []faketart.Call
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			break // a partial line is read again next time
		}
		off += int64(len(line))
		var c faketart.Call
		if json.Unmarshal(line, &c) == nil {
			out = append(out, c)
		}
	}
	return out, off
}

func (wa *watcher) statusTick(st status) {
	now := time.Now()
	for _, s := range st.Slots {
		old, seen := wa.slots[s.Index]
		wa.slots[s.Index] = s
		if seen && old.State == s.State && old.VM == s.VM {
			continue
		}
		who := fmt.Sprintf("slot %d", s.Index)
		switch s.State {
		case "idle":
			if vm := wa.vms[s.VM]; vm != nil && vm.runnerUp.IsZero() {
				vm.runnerUp = now
				wa.p.line(who, "%s booted, runner listening (%.1fs after the clone)", s.VM, now.Sub(vm.clonedAt).Seconds())
			}
		case "busy":
			if s.JobID != 0 {
				wa.p.line(who, "%s busy with job %d", s.VM, s.JobID)
			}
		case "free":
			if seen && old.State != "free" {
				wa.p.line(who, "free")
			}
		case "rebuild":
			wa.p.line(who, "held by the rebuild")
		case "backoff", "degraded":
			wa.problems = append(wa.problems, fmt.Sprintf("slot %d %s: %s", s.Index, s.State, s.Reason))
			wa.p.line(who, "%s: %s", s.State, s.Reason)
		}
	}
	for _, q := range st.Queued {
		ji := wa.jobs[q.JobID]
		if ji == nil {
			continue
		}
		if !ji.known {
			ji.known = true
			if ji.webhookLost {
				wa.p.line(jobWho(q.JobID), "in Tarty's queue thanks to the poller")
			}
		}
		if q.Reason != ji.reason {
			ji.reason = q.Reason
			if strings.HasPrefix(q.Reason, "at capacity") {
				ji.waitedForSlot = true
			}
			wa.p.line(jobWho(q.JobID), "waits: %s", q.Reason)
		}
	}
	rb := st.Rebuild
	if rb.State != wa.rebuild {
		if wa.rebuild != "" && rb.State != "idle" {
			wa.p.line("rebuild", "%s", rb.State)
		}
		wa.rebuild = rb.State
	}
	if rb.LastAt != nil && (wa.rebuildAt == nil || !rb.LastAt.Equal(*wa.rebuildAt)) {
		wa.rebuildAt, wa.rebuildRes = rb.LastAt, rb.LastResult
		wa.p.line("rebuild", "finished: %s", rb.LastResult)
	}
}

// onCommand narrates the guest's commands that matter: the runner's start
// (the detach wrapper), the rebuild's command and its shutdown.
func (wa *watcher) onCommand(command string, status int) {
	cfg := wa.w.cfg
	wa.mu.Lock()
	defer wa.mu.Unlock()
	wa.jitTick() // the registration comes first
	switch {
	case strings.Contains(command, "tarty-start") && status == -1:
		name := "the runner"
		if m := runnerName.FindStringSubmatch(command); m != nil {
			name = m[1]
		}
		wa.p.line("guest", "%s: run.sh started detached over SSH, its JIT config on stdin", name)
	case command == cfg.Rebuild.Command && status == -1:
		wa.p.line("guest", "build VM: rebuild.command running")
	case command == cfg.Rebuild.Command:
		wa.p.line("guest", "build VM: rebuild.command exited %d", status)
	case command == cfg.Runners.ShutdownCommand && status == -1:
		wa.p.line("guest", "build VM: shutting down from inside")
	}
}

var runnerName = regexp.MustCompile(`TARTY_RUNNER_NAME=(?:'\\''|')?([A-Za-z0-9._-]+)`)

func (wa *watcher) status(ctx context.Context) (status, error) {
	var st status
	b, code, err := wa.do(ctx, http.MethodGet, "/status")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("/status: %d", code)
	}
	return st, json.Unmarshal(b, &st)
}

// metric reads one unlabelled sample from /metrics.
func (wa *watcher) metric(ctx context.Context, name string) (float64, error) {
	ms, err := wa.metrics(ctx)
	if err != nil {
		return 0, err
	}
	v, ok := ms[name]
	if !ok {
		return 0, fmt.Errorf("/metrics has no %s", name)
	}
	return v, nil
}

// metrics reads /metrics' samples of Tarty's own metrics, by their
// name and labels as printed.
func (wa *watcher) metrics(ctx context.Context) (map[string]float64, error) {
	b, code, err := wa.do(ctx, http.MethodGet, "/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %d", code)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "tarty_") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out, nil
}

// do sends one request to the admin listener.
func (wa *watcher) do(ctx context.Context, method, path string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+wa.w.admin+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := wa.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return bytes.TrimSpace(b), resp.StatusCode, err
}

// sortedJobs returns the jobs in the order the demo queued them.
func (wa *watcher) sortedJobs() []*jobInfo {
	out := make([]*jobInfo, 0, len(wa.jobOrder))
	for _, id := range wa.jobOrder {
		out = append(out, wa.jobs[id])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].queuedAt.Before(out[j].queuedAt) })
	return out
}
