package scheduler

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
)

// ReplayJob is one job of a history to replay.
type ReplayJob struct {
	ID         int64
	Repository string
	Labels     []string
	Arrival    time.Time     // when GitHub queued it (created_at)
	Duration   time.Duration // how long it ran (completed_at - started_at)
	// CancelAt, when set, is when the job was cancelled: still queued then,
	// it leaves the queue without running (demand that never ran: it may
	// still have made a Tarty launch a VM); taken earlier, it runs until
	// then. Cancelled jobs count as demand but not in the wait statistics.
	CancelAt time.Time
}

// ReplayConfig describes the simulated fleet. Each Mac runs its own Tarty
// (the real scheduler core) with two slots; every Tarty hears every job, and
// a simulated GitHub hands each queued job, oldest first, to the runner that
// has been listening longest, as GitHub does.
type ReplayConfig struct {
	Macs        int
	SlotsPerMac int // default 2 (Apple's limit)
	Warm        int // runners.warm on each Mac
	Labels      []string

	Boot   time.Duration // clone to runner listening; default 25 s
	Delete time.Duration // guest power-off to VM deleted; default 5 s

	IdleTimeout time.Duration // default DefaultIdleTimeout
	MaxLifetime time.Duration // default DefaultMaxLifetime

	// RebuildHour >= 0 holds one slot of each Mac for RebuildDuration from
	// that local hour every night (it waits for a slot like the real one).
	RebuildHour     int
	RebuildDuration time.Duration
	Location        *time.Location
}

// ReplayStats is what a replay measured.
type ReplayStats struct {
	Jobs        int
	Waits       []time.Duration // per job, in the order given (0: a cancelled job never started)
	Mean        time.Duration
	P50         time.Duration
	P95         time.Duration
	Max         time.Duration
	Over1m      float64 // share of jobs that waited over a minute
	Over5m      float64
	Utilisation float64 // busy slot time / slot time over the replay
	PeakQueue   int     // most jobs queued at once
	VMHours     float64 // time VMs existed, booting and idle included
	// Unserved jobs were still queued 24 hours after their creation, when
	// GitHub fails them; each counts in the wait statistics with that wait.
	Unserved  int
	Cancelled int // jobs with CancelAt: not in the wait statistics
	Launches  int
}

// Replay runs jobs through the real scheduler core in simulated time. It is
// deterministic: the same input gives the same output.
func Replay(cfg ReplayConfig, jobs []ReplayJob) (ReplayStats, error) {
	if cfg.Macs < 1 {
		return ReplayStats{}, errors.New("replay: at least one Mac")
	}
	if len(jobs) == 0 {
		return ReplayStats{}, errors.New("replay: no jobs")
	}
	if cfg.SlotsPerMac <= 0 {
		cfg.SlotsPerMac = 2
	}
	if len(cfg.Labels) == 0 {
		cfg.Labels = []string{"tarty"}
	}
	if cfg.Boot <= 0 {
		cfg.Boot = 25 * time.Second
	}
	if cfg.Delete <= 0 {
		cfg.Delete = 5 * time.Second
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Warm > cfg.SlotsPerMac {
		return ReplayStats{}, fmt.Errorf("replay: warm %d above %d slots", cfg.Warm, cfg.SlotsPerMac)
	}
	sim := newSim(cfg, jobs)
	return sim.run()
}

// ---- the event queue ----

type simEvent struct {
	at   time.Time
	seq  uint64
	mac  int // -1: not for one Mac
	kind int
	slot int
	vm   string
	job  int // index into sim.jobs
}

const (
	evArrive = iota
	evTick
	evLaunched
	evJobEnd
	evVMExit
	evTornDown
	evRebuildDone
	evDeadline // a job's CancelAt, or GitHub's 24-hour limit on a queued job
)

type eventHeap []simEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(a, b int) bool {
	if !h[a].at.Equal(h[b].at) {
		return h[a].at.Before(h[b].at)
	}
	return h[a].seq < h[b].seq
}
func (h eventHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(simEvent)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// ---- the simulation ----

type simRunner struct {
	mac, slot int
	vm        string
	readyAt   time.Time
}

type sim struct {
	cfg    ReplayConfig
	jobs   []ReplayJob
	cores  []*core
	events eventHeap
	seq    uint64
	now    time.Time

	queue   []int                // job indexes queued on GitHub, oldest first (some may be gone)
	inQueue []bool               // per job: queued on GitHub now
	queued  int                  // jobs queued on GitHub now
	order   []int                // per sorted job: its index in the caller's slice
	idle    map[string]simRunner // listening runners by VM name
	started []time.Time          // per job: when a runner took it
	vmSince map[string]time.Time // per VM: created
	ticks   []time.Time          // per Mac: the tick already scheduled
	names   []int
	done    int // jobs that ended: completed, cancelled or failed by GitHub

	vmTime    time.Duration
	busyTime  time.Duration
	peak      int
	launches  int
	rebuildAt []time.Time // per Mac: the reserved slot's start
}

func newSim(cfg ReplayConfig, jobs []ReplayJob) *sim {
	order := make([]int, len(jobs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return jobs[order[a]].Arrival.Before(jobs[order[b]].Arrival) })
	sorted := make([]ReplayJob, len(jobs))
	for i, k := range order {
		sorted[i] = jobs[k]
	}
	s := &sim{cfg: cfg, jobs: sorted, order: order, idle: map[string]simRunner{}, vmSince: map[string]time.Time{},
		started: make([]time.Time, len(sorted)), inQueue: make([]bool, len(sorted)),
		ticks: make([]time.Time, cfg.Macs), names: make([]int, cfg.Macs), rebuildAt: make([]time.Time, cfg.Macs)}
	// Start at the first day's midnight, so that night's rebuild counts too.
	first := sorted[0].Arrival.In(cfg.Location)
	s.now = time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, cfg.Location)
	for m := 0; m < cfg.Macs; m++ {
		m := m
		opts := Options{
			Prefix: "mac" + strconv.Itoa(m), Image: "runner", Labels: cfg.Labels, Max: cfg.SlotsPerMac, Warm: cfg.Warm,
			BootTimeout: 24 * time.Hour, IdleTimeout: cfg.IdleTimeout, MaxLifetime: cfg.MaxLifetime,
			ReconcileInterval: 24 * time.Hour, Now: func() time.Time { return s.now },
			NewName: func() string { s.names[m]++; return strconv.Itoa(s.names[m]) },
			Rebuild: RebuildOptions{Hour: max(cfg.RebuildHour, 0), Location: cfg.Location},
		}
		if err := opts.normalize(); err != nil {
			panic(err) // the options above are always valid
		}
		c := newCore(opts, zerolog.Nop(), observer{})
		c.recovered, c.polled = true, true
		c.nextPoll = time.Time{}.Add(1<<62 - 1) // webhooks are reliable here: no poll
		// Every job's end reaches the cores (GitHub's 24-hour failure of a
		// queued job too), and no event is ever replayed: the pruning of
		// stale demand and of the memory of finished jobs has nothing to
		// do, and with tens of thousands of jobs it would dominate the run.
		c.lastPrune = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
		if cfg.RebuildHour >= 0 && cfg.RebuildDuration > 0 {
			c.rebuild.enabled = true
			c.rebuild.nextAt = nextRebuild(s.now, cfg.RebuildHour, cfg.Location)
		}
		s.cores = append(s.cores, c)
	}
	for i, j := range s.jobs {
		s.push(simEvent{at: j.Arrival, mac: -1, kind: evArrive, job: i})
		deadline := j.Arrival.Add(tarty.StaleAfter)
		if !j.CancelAt.IsZero() && j.CancelAt.Before(deadline) {
			deadline = j.CancelAt
		}
		s.push(simEvent{at: deadline, mac: -1, kind: evDeadline, job: i})
	}
	return s
}

func (s *sim) push(e simEvent) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.events, e)
}

func (s *sim) run() (ReplayStats, error) {
	for m := range s.cores {
		s.step(m)
	}
	for s.events.Len() > 0 {
		e := heap.Pop(&s.events).(simEvent)
		s.advance(e.at)
		switch e.kind {
		case evArrive:
			s.queue = append(s.queue, e.job)
			s.inQueue[e.job] = true
			s.queued++
			s.peak = max(s.peak, s.queued)
			s.broadcast(e.job, tarty.ActionQueued, "")
			s.dispatch()
		case evDeadline:
			if !s.inQueue[e.job] {
				break // taken by a runner before: its end comes as evJobEnd
			}
			// GitHub cancels it, or fails it after 24 hours queued: the
			// completed event carries no runner.
			s.inQueue[e.job] = false
			s.queued--
			s.broadcast(e.job, tarty.ActionCompleted, "")
			s.done++
		case evTick:
			if e.at.Equal(s.ticks[e.mac]) {
				s.ticks[e.mac] = time.Time{}
			}
		case evLaunched:
			c := s.cores[e.mac]
			c.onLaunched(s.now, e.slot, e.vm, int64(s.launches))
			if sl := c.slotAt(e.slot, e.vm); sl != nil && sl.state == SlotIdle {
				s.idle[e.vm] = simRunner{mac: e.mac, slot: e.slot, vm: e.vm, readyAt: s.now}
				s.dispatch()
			}
		case evJobEnd:
			s.broadcast(e.job, tarty.ActionCompleted, e.vm)
			s.done++
			// The guest powers off a few seconds after its job.
			s.push(simEvent{at: s.now.Add(2 * time.Second), mac: e.mac, kind: evVMExit, slot: e.slot, vm: e.vm})
		case evVMExit:
			delete(s.idle, e.vm)
			s.cores[e.mac].onVMExited(s.now, e.slot, e.vm)
		case evTornDown:
			s.vmTime += s.now.Sub(s.vmSince[e.vm])
			delete(s.vmSince, e.vm)
			s.cores[e.mac].onTornDown(s.now, e.slot, e.vm)
		case evRebuildDone:
			c := s.cores[e.mac]
			c.endRebuild(s.now, ResultSuccess, nil, false)
			s.rebuildAt[e.mac] = time.Time{}
		}
		if e.mac >= 0 {
			s.step(e.mac)
		} else {
			for m := range s.cores {
				s.step(m)
			}
		}
		if s.done == len(s.jobs) {
			break
		}
	}
	return s.stats(), nil
}

// advance moves the clock, accounting busy slot time.
func (s *sim) advance(to time.Time) {
	if to.Before(s.now) {
		return
	}
	busy := 0
	for _, c := range s.cores {
		for _, sl := range c.slots {
			if sl.state == SlotBusy {
				busy++
			}
		}
	}
	s.busyTime += time.Duration(busy) * to.Sub(s.now)
	s.now = to
}

// broadcast delivers a job event to every Mac's Tarty, as the organisation's
// webhook does.
func (s *sim) broadcast(i int, action tarty.JobAction, runner string) {
	j := s.jobs[i]
	ev := tarty.JobEvent{Source: tarty.SourceWebhook, Action: action, JobID: j.ID, Labels: j.Labels,
		Repository: j.Repository, RunnerName: runner, CreatedAt: j.Arrival, Status: string(action)}
	if action == tarty.ActionInProgress || action == tarty.ActionCompleted {
		ev.StartedAt = s.started[i]
	}
	for _, c := range s.cores {
		c.onJob(s.now, ev)
	}
}

// dispatch is GitHub: the oldest queued job goes to the runner that has
// listened longest.
func (s *sim) dispatch() {
	for s.queued > 0 && len(s.idle) > 0 {
		var best simRunner
		first := true
		for _, r := range s.idle {
			if first || r.readyAt.Before(best.readyAt) || (r.readyAt.Equal(best.readyAt) && r.vm < best.vm) {
				best, first = r, false
			}
		}
		for !s.inQueue[s.queue[0]] {
			s.queue = s.queue[1:] // cancelled or failed while queued
		}
		i := s.queue[0]
		s.queue = s.queue[1:]
		s.inQueue[i] = false
		s.queued--
		delete(s.idle, best.vm)
		s.started[i] = s.now
		s.broadcast(i, tarty.ActionInProgress, best.vm)
		end := s.now.Add(s.jobs[i].Duration)
		if c := s.jobs[i].CancelAt; !c.IsZero() {
			end = c // it runs until it is cancelled
			if end.Before(s.now) {
				end = s.now
			}
		}
		s.push(simEvent{at: end, mac: best.mac, kind: evJobEnd, slot: best.slot, vm: best.vm, job: i})
	}
}

// step runs one Mac's decision and turns its actions into future events.
func (s *sim) step(m int) {
	c := s.cores[m]
	again := false
	for _, a := range c.step(s.now) {
		switch a.Kind {
		case ActLaunch:
			s.launches++
			s.vmSince[a.VM] = s.now
			s.push(simEvent{at: s.now.Add(s.cfg.Boot), mac: m, kind: evLaunched, slot: a.Slot, vm: a.VM})
		case ActCancel, ActTeardown:
			delete(s.idle, a.VM)
			s.push(simEvent{at: s.now.Add(s.cfg.Delete), mac: m, kind: evTornDown, slot: a.Slot, vm: a.VM})
		case ActRemoveRunner:
			c.onRemoval(s.now, a.RunnerID, nil)
		case ActPoll:
			c.polling = false
			c.nextPoll = s.now.Add(24 * time.Hour)
		case ActCheckVMs:
			c.checking = false
		case ActRebuild:
			// The worker asks for its slot at once; the request is an
			// event of its own, so the core decides again.
			c.rebuild.wanted = true
			again = true
		}
	}
	// The rebuild holds its slot for RebuildDuration from when it got it:
	// a free slot (ActReserve) or an idle runner's, reserved as its
	// tear-down ends (in onTornDown, with no action of its own).
	if c.rebuild.slot >= 0 && s.rebuildAt[m].IsZero() {
		s.rebuildAt[m] = s.now
		s.push(simEvent{at: s.now.Add(s.cfg.RebuildDuration), mac: m, kind: evRebuildDone})
	}
	if again {
		s.step(m)
		return
	}
	if next := c.nextDeadline(s.now); !next.IsZero() && (s.ticks[m].IsZero() || next.Before(s.ticks[m])) {
		s.ticks[m] = next
		s.push(simEvent{at: next, mac: m, kind: evTick})
	}
}

func (s *sim) stats() ReplayStats {
	st := ReplayStats{Jobs: len(s.jobs), PeakQueue: s.peak, Launches: s.launches}
	for vm, since := range s.vmSince {
		_ = vm
		s.vmTime += s.now.Sub(since)
	}
	var waits []time.Duration
	var total time.Duration
	st.Waits = make([]time.Duration, len(s.jobs))
	for i, j := range s.jobs {
		var w time.Duration
		switch {
		case !j.CancelAt.IsZero():
			st.Cancelled++
			if !s.started[i].IsZero() {
				st.Waits[s.order[i]] = s.started[i].Sub(j.Arrival)
			}
			continue
		case s.started[i].IsZero():
			st.Unserved++ // GitHub failed it after waiting a day
			w = tarty.StaleAfter
		default:
			w = s.started[i].Sub(j.Arrival)
		}
		st.Waits[s.order[i]] = w
		waits = append(waits, w)
		total += w
		if w > time.Minute {
			st.Over1m++
		}
		if w > 5*time.Minute {
			st.Over5m++
		}
	}
	if n := len(waits); n > 0 {
		slices.Sort(waits)
		st.Mean = total / time.Duration(n)
		st.P50 = waits[(n-1)/2]
		st.P95 = waits[(n*95+99)/100-1]
		st.Max = waits[n-1]
		st.Over1m /= float64(n)
		st.Over5m /= float64(n)
	}
	span := s.now.Sub(s.jobs[0].Arrival)
	if slots := s.cfg.Macs * s.cfg.SlotsPerMac; span > 0 {
		st.Utilisation = float64(s.busyTime) / float64(span*time.Duration(slots))
	}
	st.VMHours = s.vmTime.Hours()
	return st
}

// IdealWaits is the yardstick: each job, in arrival order, takes the
// earliest free slot of the fleet and waits only for it plus the boot.
func IdealWaits(slots int, boot time.Duration, jobs []ReplayJob) []time.Duration {
	sorted := slices.Clone(jobs)
	sort.SliceStable(sorted, func(a, b int) bool { return sorted[a].Arrival.Before(sorted[b].Arrival) })
	free := make([]time.Time, slots)
	waits := make([]time.Duration, len(sorted))
	for i, j := range sorted {
		k := 0
		for s := range free {
			if free[s].Before(free[k]) {
				k = s
			}
		}
		start := j.Arrival
		if free[k].After(start) {
			start = free[k]
		}
		start = start.Add(boot)
		waits[i] = start.Sub(j.Arrival)
		free[k] = start.Add(j.Duration)
	}
	return waits
}
