package orchard_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/internal/syncbuf"
	"github.com/tartyci/tarty/orchard"
	"github.com/tartyci/tarty/orchard/fakeorchard"
	"github.com/tartyci/tarty/scheduler"
)

// fleet drives the real scheduler against the fake controller through
// orchard.Backend, in real time with short durations: a small GitHub (jobs,
// JIT runners that take one job each, webhooks on a channel) and guests
// reached through the port-forward, whose runner powers the VM off after its
// job as the real shutdown command does.
type fleet struct {
	t       testing.TB
	fake    *fakeorchard.Server
	backend *orchard.Backend
	events  chan tarty.JobEvent
	jobTime time.Duration
	log     *syncbuf.Buffer

	mu      sync.Mutex
	jobs    map[int64]*fjob
	runners map[int64]*frunner
	nextID  int64
	done    chan struct{}
}

type fjob struct {
	id      int64
	status  string // queued, in_progress, completed
	runner  string
	created time.Time
	started time.Time
	failed  bool
}

type frunner struct {
	id        int64
	name      string
	connected bool
	busy      bool
}

type fleetConfig struct {
	workers      int
	slots        int
	workerLabels map[string]string // on every worker
	placeOn      map[string]string // orchard.worker_labels
	boot         time.Duration     // the controller's pending time
	jobTime      time.Duration
	placeTimeout time.Duration
}

func newFleet(t testing.TB, fc fleetConfig) *fleet {
	t.Helper()
	if tt, ok := t.(*testing.T); ok && testing.Short() {
		tt.Skip("real-time fleet test")
	}
	echo := sinkServer(t)
	f := newFake(t, fakeorchard.Config{PrepareTime: fc.boot, Forward: func(string, int) string { return echo }})
	for i := 1; i <= fc.workers; i++ {
		f.AddWorker(fmt.Sprintf("mac-%02d", i), fakeorchard.WorkerOptions{Slots: fc.slots, Labels: fc.workerLabels})
	}
	fl := &fleet{t: t, fake: f, events: make(chan tarty.JobEvent, 1024), jobTime: fc.jobTime, log: &syncbuf.Buffer{},
		jobs: map[int64]*fjob{}, runners: map[int64]*frunner{}, nextID: 1000, done: make(chan struct{})}
	t.Cleanup(func() { close(fl.done) })
	fl.backend = newBackend(t, f, func(o *orchard.BackendOptions) {
		o.WorkerLabels = fc.placeOn
		if fc.placeTimeout > 0 {
			o.PlaceTimeout = fc.placeTimeout
		}
	})
	return fl
}

// sinkServer accepts connections and holds them open (the guest's sshd).
func sinkServer(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return l.Addr().String()
}

func (fl *fleet) start(max int) *scheduler.Scheduler {
	fl.t.Helper()
	var mu sync.Mutex
	n := 0
	logger := zerolog.New(fl.log).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	s, err := scheduler.New(scheduler.Options{
		Prefix: prefix, Image: "ghcr.io/acme/runner:latest", Labels: []string{"tarty"}, Max: max,
		BootTimeout: 20 * time.Second, IdleTimeout: time.Minute, MaxLifetime: 10 * time.Minute,
		ReconcileInterval: 500 * time.Millisecond, AdoptedCheck: 500 * time.Millisecond, JobDoneGrace: 5 * time.Second,
		NewName: func() string { mu.Lock(); defer mu.Unlock(); n++; return fmt.Sprintf("%08x", n) },
	}, scheduler.Deps{Backend: fl.backend, Guest: fl, Runners: fl, Jobs: fl, Events: fl.events, Logger: logger})
	if err != nil {
		fl.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	fl.t.Cleanup(func() {
		cancel()
		<-done
		if fl.t.Failed() {
			fl.t.Logf("scheduler log:\n%s", fl.log.String())
		}
	})
	return s
}

// queue adds a job and delivers its queued webhook.
func (fl *fleet) queue() int64 {
	fl.mu.Lock()
	fl.nextID++
	j := &fjob{id: fl.nextID, status: "queued", created: time.Now()}
	fl.jobs[j.id] = j
	fl.mu.Unlock()
	fl.events <- fl.event(j, tarty.ActionQueued)
	return j.id
}

func (fl *fleet) event(j *fjob, a tarty.JobAction) tarty.JobEvent {
	return tarty.JobEvent{Source: tarty.SourceWebhook, Action: a, Status: string(a), JobID: j.id, RunID: j.id,
		Labels: []string{"self-hosted", "macOS", "tarty"}, Repository: "acme/app", Organization: "acme",
		RunnerName: j.runner, CreatedAt: j.created, StartedAt: j.started}
}

func (fl *fleet) count(status string) int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	n := 0
	for _, j := range fl.jobs {
		if j.status == status {
			n++
		}
	}
	return n
}

// waits are the jobs' waits from creation to start, in job order.
func (fl *fleet) waits() []time.Duration {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	var ids []int64
	for id := range fl.jobs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	var out []time.Duration
	for _, id := range ids {
		if j := fl.jobs[id]; !j.started.IsZero() {
			out = append(out, j.started.Sub(j.created))
		}
	}
	return out
}

func waitUntil(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- Guest ----

func vmName(host string) string { return strings.TrimPrefix(host, orchard.AddressPrefix) }

// WaitReady opens the port-forward to the guest's SSH port, as sshexec does.
func (fl *fleet) WaitReady(ctx context.Context, image, host string) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := fl.backend.Dial(dctx, "tcp", net.JoinHostPort(host, "22"))
	if err != nil {
		return err
	}
	return c.Close()
}

func (fl *fleet) Run(context.Context, string, string, string, io.Reader, io.Writer, io.Writer) error {
	return nil
}

// Start starts the runner: it connects, takes one job, then powers its VM off.
func (fl *fleet) Start(ctx context.Context, image, host, command string, stdin io.Reader) error {
	cfg, _ := io.ReadAll(stdin)
	name := vmName(host)
	fl.mu.Lock()
	var r *frunner
	for _, x := range fl.runners {
		if x.name == name && string(cfg) == fmt.Sprintf("jit-%d", x.id) {
			r = x
		}
	}
	if r == nil {
		fl.mu.Unlock()
		return fmt.Errorf("no JIT registration for %s", name)
	}
	r.connected = true
	fl.mu.Unlock()
	go fl.runner(r)
	return nil
}

func (fl *fleet) ForgetHostKey(string) error { return nil }

// alive reports whether the runner's VM still runs on the controller.
func (fl *fleet) alive(name string) bool {
	v, ok := fl.fake.VM(name)
	return ok && v.Status == orchard.StatusRunning
}

func (fl *fleet) runner(r *frunner) {
	var j *fjob
	for j == nil {
		select {
		case <-fl.done:
			return
		case <-time.After(2 * time.Millisecond):
		}
		if !fl.alive(r.name) {
			return
		}
		fl.mu.Lock()
		for _, x := range fl.jobs {
			if x.status == "queued" && (j == nil || x.id < j.id) {
				j = x
			}
		}
		if j != nil {
			j.status, j.runner, j.started = "in_progress", r.name, time.Now()
			r.busy = true
		}
		fl.mu.Unlock()
	}
	fl.events <- fl.event(j, tarty.ActionInProgress)
	end := time.After(fl.jobTime)
	for lost := false; ; {
		select {
		case <-fl.done:
			return
		case <-end:
		case <-time.After(5 * time.Millisecond):
			if !fl.alive(r.name) {
				lost = true
				break
			}
			continue
		}
		fl.mu.Lock()
		j.status, j.failed = "completed", lost
		delete(fl.runners, r.id) // an ephemeral runner's registration goes with its job
		fl.mu.Unlock()
		fl.events <- fl.event(j, tarty.ActionCompleted)
		if !lost {
			fl.fake.GuestExit(r.name) // the shutdown command
		}
		return
	}
}

// ---- Runners and Jobs ----

func (fl *fleet) JITConfig(_ context.Context, name string) (int64, string, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.nextID++
	fl.runners[fl.nextID] = &frunner{id: fl.nextID, name: name}
	return fl.nextID, fmt.Sprintf("jit-%d", fl.nextID), nil
}

func (fl *fleet) ListRunners(_ context.Context, p string) ([]tarty.Runner, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	var out []tarty.Runner
	for _, r := range fl.runners {
		if strings.HasPrefix(r.name, p) {
			out = append(out, tarty.Runner{ID: r.id, Name: r.name, Online: r.connected, Busy: r.busy})
		}
	}
	return out, nil
}

func (fl *fleet) RemoveRunner(_ context.Context, id int64) error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	delete(fl.runners, id)
	return nil
}

func (fl *fleet) QueuedJobs(context.Context) (tarty.PollResult, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	res := tarty.PollResult{Complete: []string{"acme/app"}}
	for _, j := range fl.jobs {
		if j.status == "queued" {
			ev := fl.event(j, tarty.ActionQueued)
			ev.Source = tarty.SourcePoller
			res.Jobs = append(res.Jobs, ev)
		}
	}
	return res, nil
}

// ---- tests ----

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// idealWait is the mean wait of a burst of n jobs on slots runners when a
// job waits only for the earliest free slot plus a boot: job k starts after
// floor(k/slots) rounds of boot+job, plus its own boot.
func idealWait(n, slots int, boot, job time.Duration) time.Duration {
	var sum time.Duration
	for k := 0; k < n; k++ {
		sum += boot + time.Duration(k/slots)*(boot+job)
	}
	return sum / time.Duration(n)
}

// burst runs n jobs at once on workers×2 slots and reports the mean wait
// against the ideal.
func burst(t testing.TB, workers, n int, boot, job time.Duration) (measured, ideal time.Duration, fl *fleet) {
	fl = newFleet(t, fleetConfig{workers: workers, slots: 2, boot: boot, jobTime: job})
	s := fl.start(n)
	waitUntil(t, 10*time.Second, "start-up recovery", func() bool {
		st, _ := s.Status(context.Background())
		return st.Ready
	})
	for range n {
		fl.queue()
	}
	sawWorkers := false
	waitUntil(t, 2*time.Minute, fmt.Sprintf("%d jobs completed", n), func() bool {
		if !sawWorkers {
			st, err := s.Status(context.Background())
			if err == nil && len(st.Workers) == workers {
				for _, sl := range st.Slots {
					if sl.Worker != "" {
						sawWorkers = true
					}
				}
			}
		}
		return fl.count("completed") == n
	})
	waitUntil(t, 30*time.Second, "every VM deleted", func() bool { return len(fl.fake.VMs()) == 0 })
	if !sawWorkers {
		t.Error("/status never showed the workers and a slot's worker")
	}
	return mean(fl.waits()), idealWait(n, workers*2, boot, job), fl
}

func TestFleetBurstOfFiftyOnTenWorkers(t *testing.T) {
	const workers, n = 10, 50
	boot, job := 300*time.Millisecond, 700*time.Millisecond
	measured, ideal, fl := burst(t, workers, n, boot, job)
	st := fl.fake.Stats()
	if st.MaxPerWorker > 2 {
		t.Errorf("%d VMs on one worker at once", st.MaxPerWorker)
	}
	if st.Created != n || st.NeverPlaced != 0 || st.MaxUnplaced > time.Second {
		t.Errorf("controller saw %+v: want %d VMs created, each placed at once", st, n)
	}
	for _, j := range fl.jobs {
		if j.failed || !strings.HasPrefix(j.runner, prefix+"-") {
			t.Errorf("job %d: runner %q failed %v", j.id, j.runner, j.failed)
		}
	}
	t.Logf("10 workers x 2 slots, burst of %d jobs (boot %s, job %s): mean wait %s, ideal %s (+%.0f%%); controller: %d requests",
		n, boot, job, measured.Round(time.Millisecond), ideal.Round(time.Millisecond),
		100*(float64(measured)/float64(ideal)-1), st.Requests)
}

// BenchmarkFleetBurst is the 10-worker burst of BENCHMARKS.md at a scale
// nearer a real fleet's proportions (boot 1 s, job 3 s): 50 jobs at once on
// 10 workers of two slots, mean wait from the job's creation to its start
// against the ideal (each job waits only for the earliest free slot plus a
// boot).
//
//	go test -run '^$' -bench FleetBurst -benchtime 1x -count 3 ./orchard/
func BenchmarkFleetBurst(b *testing.B) {
	boot, job := time.Second, 3*time.Second
	for range b.N {
		measured, ideal, fl := burst(b, 10, 50, boot, job)
		st := fl.fake.Stats()
		if st.MaxPerWorker > 2 || st.NeverPlaced != 0 {
			b.Fatalf("controller saw %+v", st)
		}
		b.ReportMetric(measured.Seconds(), "wait-s")
		b.ReportMetric(ideal.Seconds(), "ideal-s")
		b.ReportMetric(100*(measured.Seconds()/ideal.Seconds()-1), "over-ideal-%")
		b.ReportMetric(float64(st.Requests)/50, "requests/job")
	}
}

func TestFleetWorkerLostMidJob(t *testing.T) {
	fl := newFleet(t, fleetConfig{workers: 2, slots: 2, boot: 100 * time.Millisecond, jobTime: 3 * time.Second})
	s := fl.start(4)
	first := []int64{fl.queue(), fl.queue()}
	waitUntil(t, 20*time.Second, "both jobs running", func() bool { return fl.count("in_progress") == 2 })
	v, _ := fl.fake.VM(fl.jobs[first[0]].runner)
	lostWorker := v.Worker
	fl.fake.LoseWorker(lostWorker)
	waitUntil(t, 20*time.Second, "the lost worker's VMs deleted", func() bool {
		for _, vm := range fl.fake.VMs() {
			if vm.Worker == lostWorker {
				return false
			}
		}
		return true
	})
	// The remaining worker serves what comes next at once.
	more := []int64{fl.queue(), fl.queue()}
	waitUntil(t, 30*time.Second, "the next jobs completed on the other worker", func() bool {
		fl.mu.Lock()
		defer fl.mu.Unlock()
		for _, id := range more {
			if fl.jobs[id].status != "completed" || fl.jobs[id].failed {
				return false
			}
		}
		return true
	})
	if lost := fl.backend.Stats().Lost; lost < 1 || lost > 2 {
		t.Errorf("%d VMs counted lost", lost)
	}
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, sl := range st.Slots {
		if sl.State == scheduler.SlotDegraded || sl.State == scheduler.SlotBackoff {
			t.Errorf("slot %d %s: %s", sl.Index, sl.State, sl.Reason)
		}
	}
	for _, w := range st.Workers {
		if w.Name == lostWorker && (w.Online || w.Matches) {
			t.Errorf("lost worker shown %+v", w)
		}
	}
	// One warning per lost VM, not a storm.
	warns := strings.Count(fl.log.String(), `"level":"warn"`) + strings.Count(fl.log.String(), `"level":"error"`)
	if warns > 6 {
		t.Errorf("%d warnings for one lost worker:\n%s", warns, fl.log.String())
	}
}

func TestFleetPendingVMThatNeverPlaces(t *testing.T) {
	fl := newFleet(t, fleetConfig{workers: 1, slots: 2, boot: 100 * time.Millisecond, jobTime: 200 * time.Millisecond,
		placeTimeout: 500 * time.Millisecond})
	fl.fake.HoldPlacement(true) // the controller's scheduler takes nothing
	s := fl.start(2)
	fl.queue()
	waitUntil(t, 10*time.Second, "the unplaced VM deleted and the launch held", func() bool {
		st, _ := s.Status(context.Background())
		for _, sl := range st.Slots {
			if (sl.State == scheduler.SlotBackoff || sl.State == scheduler.SlotDegraded) && strings.Contains(sl.Reason, "no worker took") {
				return fl.fake.Stats().NeverPlaced >= 1
			}
		}
		return false
	})
	for _, vm := range fl.fake.VMs() {
		t.Errorf("VM left on the controller: %+v", vm)
	}
	if fl.backend.Stats().Unplaced < 1 {
		t.Errorf("backend stats %+v", fl.backend.Stats())
	}
	// Once the controller places again the job is served (after the backoff).
	fl.fake.HoldPlacement(false)
	waitUntil(t, 45*time.Second, "the job served", func() bool { return fl.count("completed") == 1 })
}

func TestFleetLabelsMatchNoWorker(t *testing.T) {
	fl := newFleet(t, fleetConfig{workers: 2, slots: 2, workerLabels: map[string]string{"pool": "ci"},
		placeOn: map[string]string{"pool": "gpu"}, boot: 50 * time.Millisecond, jobTime: 100 * time.Millisecond})
	s := fl.start(4)
	fl.queue()
	time.Sleep(1500 * time.Millisecond) // three polls
	if st := fl.fake.Stats(); st.Created != 0 {
		t.Fatalf("%d VMs created that no worker could take", st.Created)
	}
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Capacity != 0 || len(st.Queued) != 1 || !strings.Contains(st.Queued[0].Reason, "at capacity") {
		t.Errorf("status capacity %d queued %+v", st.Capacity, st.Queued)
	}
	if len(st.Workers) != 2 || st.Workers[0].Matches || st.Workers[0].Labels["pool"] != "ci" {
		t.Errorf("workers %+v", st.Workers)
	}
}
