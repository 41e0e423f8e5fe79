//go:build unix

package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tartyci/tarty/ghapi/fakegithub"
)

// Bounds: the demo fails, rather than hangs, when something does not happen.
const (
	readyBound   = 30 * time.Second
	jobsBound    = 60 * time.Second // the four jobs
	missedBound  = 40 * time.Second
	rebuildBound = 60 * time.Second
	stopBound    = 45 * time.Second // the daemon's drain
)

// Run runs the demo and returns nil when everything happened as it should.
func Run(ctx context.Context, o Options) (err error) {
	// Narration into a closed pipe (`tarty demo | head`) must not kill
	// the demo before it cleans up: writes fail instead.
	signal.Ignore(syscall.SIGPIPE)
	p := &printer{w: o.Stdout, start: time.Now()}
	var watching atomic.Pointer[watcher]
	r, err := start(ctx, o, func(c string, s int) {
		if wa := watching.Load(); wa != nil {
			wa.onCommand(c, s)
		}
	})
	if err != nil {
		return err
	}
	w := r.w
	defer w.close()
	defer r.logFile.Close()
	defer r.stop()
	wa := newWatcher(w, p)
	watching.Store(wa)

	p.text(`Tarty demo: the real daemon (scheduler, webhook server, admin listener) serves GitHub Actions
jobs in macOS VMs, against a simulated tart, GitHub and guest on this machine (127.0.0.1 only).
Times are compressed: VMs boot in %.1fs, jobs take %ss. At most 2 runner VMs run at once
(runners.max: 2). Everything lives in %s, removed at the end;
Tarty's config for this run is tarty.yaml there.

While it runs, the admin listener answers:
  curl -s http://%s/status     slots, queued jobs and why they wait, the rebuild
  curl -s http://%s/metrics    Prometheus metrics

`, bootDelay.Seconds(), jobSeconds, w.dir, w.admin, w.admin)
	p.line("tarty", "ready: webhooks on %s, admin on %s", w.hook, w.admin)

	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		wa.run(watchCtx)
	}()

	s := &scenario{o: o, w: w, wa: wa, p: p, exited: r.exited}
	scenErr := s.play(ctx)
	s.metrics, _ = wa.metrics(context.Background()) // while the admin listener still answers

	// Stop the daemon as SIGTERM stops `tarty run`, and see it exit 0.
	var logSize int64
	if fi, err := r.logFile.Stat(); err == nil {
		logSize = fi.Size()
	}
	r.stop()
	var daemonErr error
	select {
	case daemonErr = <-r.done:
	case <-time.After(stopBound):
		daemonErr = fmt.Errorf("did not stop within %s", stopBound)
	}
	time.Sleep(200 * time.Millisecond) // the last observations
	stopWatch()
	<-watchDone
	wa.tick(context.Background())
	if daemonErr != nil {
		s.fail("the daemon stopped with an error: %v", daemonErr)
	}
	s.finalChecks()
	s.daemonLog(w.logPath, logSize)
	s.summary(daemonErr == nil)

	if scenErr != nil {
		s.fail("%v", scenErr)
	}
	if len(s.failures) > 0 {
		fmt.Fprintf(o.Stderr, "\ntarty demo FAILED:\n")
		for _, f := range s.failures {
			fmt.Fprintf(o.Stderr, "  - %s\n", f)
		}
		if !o.Verbose {
			fmt.Fprintf(o.Stderr, "\nThe daemon's log, last lines:\n")
			tail(o.Stderr, w.logPath, 40)
		}
		return errors.New("the demo did not run as it should")
	}
	p.text("\nDone in %.1fs; %s removed.\n", time.Since(p.start).Seconds(), w.dir)
	return nil
}

// running is the simulator with the daemon started in it.
type running struct {
	w       *world
	logFile *os.File
	stop    context.CancelFunc
	done    chan error
}

// exited reports whether the daemon returned.
func (r *running) exited() bool {
	select {
	case e := <-r.done:
		r.done <- e
		return true
	default:
		return false
	}
}

// start builds the simulator and starts the daemon in it, until it is
// ready. The ports the daemon listens on were free a moment before it
// starts; when one was taken meanwhile it tries again with others.
func start(ctx context.Context, o Options, onCommand func(string, int)) (*running, error) {
	for attempt := 1; ; attempt++ {
		r, err := startOnce(ctx, o, onCommand)
		if err == nil {
			return r, nil
		}
		if attempt == 3 || !portTaken(err) {
			return nil, err
		}
	}
}

func portTaken(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

func startOnce(ctx context.Context, o Options, onCommand func(string, int)) (_ *running, err error) {
	w, err := newWorld(o.Executable, onCommand)
	if err != nil {
		return nil, fmt.Errorf("setting up the simulator: %w", err)
	}
	r := &running{w: w, done: make(chan error, 1)}
	defer func() {
		if err != nil {
			if r.stop != nil { // the daemon was started
				r.stop()
				select {
				case <-r.done:
				case <-time.After(stopBound):
				}
			}
			if !portTaken(err) && !o.Verbose {
				fmt.Fprintf(o.Stderr, "The daemon's log, last lines:\n")
				tail(o.Stderr, w.logPath, 40)
			}
			r.logFile.Close()
			w.close()
		}
	}()
	for _, warn := range w.warnings {
		fmt.Fprintf(o.Stderr, "warning: %s\n", warn)
	}
	// The daemon, with its log in the demo's directory (and on stderr
	// with Verbose).
	if r.logFile, err = os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	var logw io.Writer = r.logFile
	if o.Verbose {
		logw = io.MultiWriter(r.logFile, o.Stderr)
	}
	var daemonCtx context.Context
	daemonCtx, r.stop = context.WithCancel(context.WithoutCancel(ctx))
	go func() { r.done <- o.Daemon(daemonCtx, w.cfg, logw) }()

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(readyBound)
	for {
		resp, err := client.Get("http://" + w.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		select {
		case err := <-r.done:
			r.done <- err
			if err == nil {
				err = errors.New("it returned")
			}
			return nil, fmt.Errorf("the daemon stopped before it was ready: %w", err)
		case <-ctx.Done():
			return nil, errors.New("interrupted while the daemon started")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the daemon was not ready (/readyz) within %s", readyBound)
		}
	}
}

// scenario is the demo's story: it acts on the fake GitHub and the admin
// listener, and waits for what it watches.
type scenario struct {
	o        Options
	w        *world
	wa       *watcher
	p        *printer
	exited   func() bool
	failures []string
	batch    []int64 // the first four jobs
	missed   int64
	after    int64 // the job after the rebuild
	imageV2  string
	metrics  map[string]float64 // /metrics at the end
}

func (s *scenario) fail(format string, a ...any) {
	s.failures = append(s.failures, fmt.Sprintf(format, a...))
}

func (s *scenario) play(ctx context.Context) error {
	p, wa := s.p, s.wa

	// 1. Four jobs, two slots.
	p.text("\n== 1. Four jobs arrive; at most two runner VMs run at once, so two jobs wait for a slot.\n\n")
	for range 4 {
		s.batch = append(s.batch, s.queue(false))
	}
	if err := s.waitFor(ctx, jobsBound, "the four jobs to complete and their VMs to be deleted", func() bool {
		return s.done(s.batch...)
	}, true); err != nil {
		return err
	}
	wa.check(func() {
		waited := false
		for _, id := range s.batch {
			waited = waited || wa.jobs[id].waitedForSlot
		}
		if !waited {
			s.fail("no job was seen waiting for a slot")
		}
	})

	// 2. A lost webhook.
	p.text("\n== 2. GitHub's webhook for the next job is lost; the poller finds the job anyway.\n\n")
	var dropped atomic.Bool
	s.w.gh.DropWebhooks(func(d fakegithub.Delivery) bool {
		return d.Action == "queued" && dropped.CompareAndSwap(false, true)
	})
	s.missed = s.queue(true)
	if err := s.waitFor(ctx, 10*time.Second, "the lost delivery", func() bool { return s.wa.lost > 0 }, true); err != nil {
		return err
	}
	s.w.gh.DropWebhooks(nil)
	time.Sleep(1500 * time.Millisecond)
	known := false
	wa.check(func() { known = wa.jobs[s.missed].known })
	if !known {
		p.line("demo", "Tarty has not heard of job %d. It polls GitHub every 10s; ask for a poll now: POST /reconcile", s.missed)
		if code, body, err := s.post(ctx, "/reconcile"); err != nil || code != http.StatusAccepted {
			return fmt.Errorf("POST /reconcile: %d %s %v", code, body, err)
		}
	}
	if err := s.waitFor(ctx, missedBound, "the job whose webhook was lost to complete", func() bool {
		return s.done(s.missed)
	}, true); err != nil {
		return err
	}
	wa.check(func() {
		if wa.missed < 1 {
			s.fail("tarty_reconcile_missed_jobs_total did not count the job the poller found")
		}
	})

	// 3. The nightly rebuild, then a job on the new image.
	p.text("\n== 3. The nightly rebuild (asked for now: POST /rebuild) promotes a new runner image.\n\n")
	if code, body, err := s.post(ctx, "/rebuild"); err != nil || code != http.StatusAccepted {
		return fmt.Errorf("POST /rebuild: %d %s %v", code, body, err)
	}
	p.line("demo", "POST /rebuild: 202 Accepted")
	if err := s.waitFor(ctx, rebuildBound, "the rebuild to finish", func() bool { return s.wa.rebuildAt != nil }, true); err != nil {
		return err
	}
	var res string
	wa.check(func() { res = wa.rebuildRes })
	s.imageV2 = s.w.label(runnerImage)
	if res != "success" {
		return fmt.Errorf("the rebuild did not succeed: %s", res)
	}
	if !strings.HasPrefix(s.imageV2, "runner image v2") {
		return fmt.Errorf("after the rebuild %s holds %q, not the rebuilt image", runnerImage, s.imageV2)
	}
	p.line("demo", "%s is now %q; %s-previous keeps v1 for `tarty rollback`", runnerImage, s.imageV2, runnerImage)

	p.text("\n== 4. The next job runs on the new image.\n\n")
	s.after = s.queue(false)
	if err := s.waitFor(ctx, jobsBound, "the job after the rebuild to complete", func() bool {
		return s.done(s.after)
	}, true); err != nil {
		return err
	}
	wa.check(func() {
		if vm := wa.vms[wa.jobs[s.after].runner]; vm == nil || vm.image != s.imageV2 {
			s.fail("job %d did not run on the rebuilt image", s.after)
		}
	})
	p.text("\n")
	return nil
}

// queue queues a job on the fake GitHub, which sends its webhook.
func (s *scenario) queue(webhookLost bool) int64 {
	j := s.w.gh.QueueJob(repo, jobLabels...)
	s.wa.queued(j.ID, time.Now(), webhookLost)
	s.p.line("github", "job %d queued in %s/%s, runs-on: [%s]", j.ID, s.w.gh.Organization(), repo, strings.Join(jobLabels, ", "))
	return j.ID
}

// done reports whether the jobs completed and their runners' VMs were
// deleted; the caller holds the watcher's lock.
func (s *scenario) done(ids ...int64) bool {
	for _, id := range ids {
		j := s.wa.jobs[id]
		if j == nil || j.doneAt.IsZero() {
			return false
		}
		if vm := s.wa.vms[j.runner]; vm == nil || !vm.deleted {
			return false
		}
	}
	return true
}

// waitFor polls cond (with the watcher's state locked when locked) until it
// holds, the bound passes, the daemon exits or ctx ends.
func (s *scenario) waitFor(ctx context.Context, bound time.Duration, what string, cond func() bool, locked bool) error {
	deadline := time.Now().Add(bound)
	for {
		ok := false
		if locked {
			s.wa.check(func() { ok = cond() })
		} else {
			ok = cond()
		}
		switch {
		case ok:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("interrupted while waiting for %s", what)
		case s.exited():
			return fmt.Errorf("the daemon exited while waiting for %s", what)
		case time.Now().After(deadline):
			return fmt.Errorf("waited %s for %s", bound, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *scenario) post(ctx context.Context, path string) (int, string, error) {
	b, code, err := s.wa.do(ctx, http.MethodPost, path)
	return code, string(b), err
}

// finalChecks looks at what is left once the daemon stopped.
func (s *scenario) finalChecks() {
	wa := s.wa
	wa.check(func() {
		s.failures = append(s.failures, wa.problems...)
		for _, id := range wa.jobOrder {
			if j := wa.jobs[id]; j.conclusion != "success" {
				s.fail("job %d did not complete successfully (status %s, conclusion %q)", id, j.status, j.conclusion)
			}
		}
		if len(wa.running) > 0 {
			s.fail("VMs still running after the daemon stopped: %v", wa.running)
		}
		for _, name := range wa.vmOrder {
			vm := wa.vms[name]
			switch {
			case vm.source == baseImage && vm.renamedTo != runnerImage:
				s.fail("the build VM %s did not become %s", name, runnerImage)
			case vm.source == runnerImage && vm.stoppedBy != guestPoweredOff:
				// The shutdown command powers each runner's VM off
				// after its job; anything else is a watchdog or a stop.
				s.fail("runner VM %s: %s", name, vm.stoppedBy)
			}
		}
	})
	if left := s.w.prefixedVMs(); len(left) > 0 {
		s.fail("VMs left behind: %v", left)
	}
	for _, r := range s.w.gh.Runners() {
		if strings.HasPrefix(r.Name, prefix+"-") {
			s.fail("runner registration left behind: %s", r.Name)
		}
	}
}

// daemonLog reports the warnings the daemon logged in its first size bytes
// (before it was asked to stop), and fails on its errors: nothing in the
// demo should go wrong.
func (s *scenario) daemonLog(path string, size int64) {
	f, err := os.Open(path)
	if err != nil {
		s.fail("the daemon's log: %v", err)
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, size))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct{ Level, Message, Error, VM string }
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		what := l.Message
		if l.VM != "" {
			what += " (" + l.VM + ")"
		}
		if l.Error != "" {
			what += ": " + l.Error
		}
		switch l.Level {
		case "warn":
			fmt.Fprintf(s.o.Stderr, "the daemon warned: %s\n", what)
		case "error", "fatal", "panic":
			s.fail("the daemon logged an error: %s", what)
		}
	}
}

// summary prints what happened, from the watcher's observations and the
// daemon's metrics.
func (s *scenario) summary(stopped bool) {
	wa, p := s.wa, s.p
	wa.check(func() {
		p.text("Summary\n")
		served := 0
		for _, j := range wa.sortedJobs() {
			if j.conclusion == "success" {
				served++
			}
		}
		p.text("  jobs served        %d of %d, each in a fresh VM deleted after its job\n", served, len(wa.jobOrder))
		for _, j := range wa.sortedJobs() {
			wait := "not started"
			if !j.startedAt.IsZero() {
				wait = fmt.Sprintf("waited %4.1fs", j.startedAt.Sub(j.queuedAt).Seconds())
			}
			var notes []string
			if vm := wa.vms[j.runner]; vm != nil {
				notes = append(notes, "on "+vm.name)
				if vm.image != "" {
					notes = append(notes, strings.SplitN(vm.image, ",", 2)[0])
				}
			}
			if j.waitedForSlot {
				notes = append(notes, "waited for a slot")
			}
			if j.webhookLost {
				notes = append(notes, "webhook lost, found by the poller")
			}
			p.text("    job %d  %s  %s\n", j.id, wait, strings.Join(notes, ", "))
		}
		created, deleted, built := 0, 0, 0
		for _, name := range wa.vmOrder {
			vm := wa.vms[name]
			if vm.source == baseImage {
				built++
				continue
			}
			created++
			if vm.deleted {
				deleted++
			}
		}
		p.text("  runner VMs         %d created, %d deleted; at most %d macOS VMs ran at once\n", created, deleted, wa.maxRunning)
		switch {
		case wa.rebuildAt != nil:
			p.text("  rebuild            %s: %d build VM cloned from %s, promoted to %s (%q)\n",
				wa.rebuildRes, built, baseImage, runnerImage, s.imageV2)
		default:
			p.text("  rebuild            did not finish\n")
		}
		p.text("  webhooks           %d delivered, %d lost\n", wa.delivered, wa.lost)
	})
	if ms := s.metrics; ms != nil {
		p.text("  from /metrics      tarty_job_wait_seconds_count %v, tarty_reconcile_missed_jobs_total %v, tarty_rebuild_total{result=\"success\"} %v\n",
			ms["tarty_job_wait_seconds_count"], ms["tarty_reconcile_missed_jobs_total"], ms[`tarty_rebuild_total{result="success"}`])
	}
	if stopped {
		p.text("  the daemon         stopped cleanly, as on SIGTERM\n")
	}
}

// tail copies the last n lines of the file at path to w.
func tail(w io.Writer, path string, n int) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
