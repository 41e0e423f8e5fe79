package scheduler

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
)

// core is the scheduler's whole state and the rules that change it. It does
// no I/O and starts no goroutine: the owner goroutine (Scheduler.Run), the
// simulator (replay) and the tests feed it events with the time they
// happened and carry out the actions it returns. Nothing else touches it.
type core struct {
	opts  Options
	match tarty.LabelMatcher
	log   zerolog.Logger
	obs   observer

	slots    []*slot
	jobs     map[int64]*job       // queued and parked (waiting) jobs
	parked   int                  // how many of jobs are parked: queued() is len(jobs) - parked
	finished map[int64]finishMark // jobs seen in_progress or completed: never demand again
	removals map[int64]*removal   // runner registrations still to delete

	capacity    tarty.Capacity
	recovered   bool // start-up recovery done: before it, nothing launches
	draining    bool // shutting down: launch nothing, tear down what has no job
	launchAt    time.Time
	launchBoff  *backoff.ExponentialBackOff
	degradeBoff *backoff.ExponentialBackOff
	failStreak  int
	limitStreak int // two-VM-limit refusals in a row while the backend said there was room

	nextPoll    time.Time
	polling     bool
	pollAgain   bool // a reconcile was asked for during a poll
	pollStarted time.Time
	polled      bool // a poll reached GitHub since start
	nextCheck   time.Time
	checking    bool

	rebuild   rebuildState
	lastPrune time.Time
}

// job is a job in demand, or parked behind an approval.
type job struct {
	ev        tarty.JobEvent // its latest queued or waiting event
	waiting   bool           // parked: status waiting
	firstSeen time.Time      // when Tarty first heard of it
	lastSeen  time.Time      // when an event or a poll last said it waits
}

// finishMark records that a job was seen taken or finished, so a late or
// replayed queued event never resurrects it.
type finishMark struct {
	at        time.Time
	completed bool
}

// slot is one unit of the VM budget.
type slot struct {
	index int
	state SlotState
	since time.Time

	vm        string // VM and runner name
	runnerID  int64
	jobID     int64     // the job its runner took
	createdAt time.Time // launch began (or adoption): max_lifetime counts from here
	readyAt   time.Time // runner started: idle_timeout counts from here
	jobDoneAt time.Time // its job completed or its registration vanished: stop after a grace
	retryAt   time.Time // backoff or degraded until
	reason    string    // why it is stopping, backing off or degraded
	adopted   bool      // a VM from before a restart; its `tart run` is not ours
	reserved  bool      // once torn down it goes to the rebuild
	owed      bool      // stopping, and its tear-down is still to be started
}

// removal is a runner registration to delete, retried with backoff.
type removal struct {
	name     string
	since    time.Time
	nextAt   time.Time
	attempts int
	inFlight bool
}

// rebuildState is the nightly rebuild: its schedule, its claim on the
// budget, and what /status shows of it.
type rebuildState struct {
	enabled bool      // rebuild.enabled, on a backend with local images
	nextAt  time.Time // the next scheduled rebuild
	running bool      // a rebuild (or rollback) worker runs
	phase   string    // what it does now
	since   time.Time // when it started

	wanted bool // it waits for a slot
	slot   int  // the slot it holds, -1 when none
	hold   bool // it asks that no launch start (its promote renames the image)

	lastResult  string
	lastAt      time.Time
	lastSuccess time.Time
}

// observer receives what the metrics measure. Every field is optional.
type observer struct {
	bootTime      func(time.Duration)
	jobWait       func(time.Duration)
	launchFailure func(stage string)
	missedJob     func()
	limitLeak     func()
}

// Backoff bounds for launches. A launch failure holds every launch (the cause
// is usually the host or the image, not the slot); a failure only the operator
// can fix (a leaked VM counter, no GUI session) probes far less often.
const (
	launchBackoffFirst  = 15 * time.Second
	launchBackoffMax    = 10 * time.Minute
	degradedBackoffFrst = 2 * time.Minute
	degradedBackoffMax  = time.Hour
	// quickExit: a runner whose VM stops this soon after it started, without
	// a job, failed to start.
	quickExit = time.Minute
	// degradeAfter consecutive failures make the slot degraded.
	degradeAfter = 3
	// removalGiveUp: GitHub deletes an offline ephemeral runner within a day
	// anyway; past this Tarty stops retrying (and logs it).
	removalGiveUp = 30 * time.Minute
	removalFirst  = 15 * time.Second
	removalMax    = 5 * time.Minute
	// finishedTTL bounds the memory of finished jobs: older queued events are
	// stale (24 h) anyway.
	finishedTTL = 2 * tarty.StaleAfter
	pruneEvery  = 5 * time.Minute
)

func newBackoff(first, max time.Duration) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = first
	b.MaxInterval = max
	b.Multiplier = 2
	// One host, one scheduler: nothing to de-synchronise, and replays stay
	// deterministic.
	b.RandomizationFactor = 0
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

func newCore(opts Options, log zerolog.Logger, obs observer) *core {
	c := &core{
		opts:        opts,
		match:       tarty.NewLabelMatcher(opts.Labels),
		log:         log,
		obs:         obs,
		jobs:        map[int64]*job{},
		finished:    map[int64]finishMark{},
		removals:    map[int64]*removal{},
		capacity:    tarty.Capacity{Slots: opts.Max},
		launchBoff:  newBackoff(launchBackoffFirst, launchBackoffMax),
		degradeBoff: newBackoff(degradedBackoffFrst, degradedBackoffMax),
		rebuild:     rebuildState{slot: -1},
	}
	now := opts.Now()
	for i := 0; i < opts.Max; i++ {
		c.slots = append(c.slots, &slot{index: i, state: SlotFree, since: now})
	}
	return c
}

// to applies a slot event through the transition table.
func (c *core) to(now time.Time, s *slot, ev slotEvent) bool {
	next, changed, err := transition(s.state, ev)
	if err != nil {
		c.log.Error().Err(err).Int("slot", s.index).Str("vm", s.vm).Msg("scheduler: impossible slot event ignored")
		return false
	}
	if changed {
		s.state, s.since = next, now
	}
	return changed
}

func (c *core) slotByVM(vm string) *slot {
	if vm == "" {
		return nil
	}
	for _, s := range c.slots {
		if s.vm == vm && s.state != SlotFree {
			return s
		}
	}
	return nil
}

func (c *core) slotAt(i int, vm string) *slot {
	if i < 0 || i >= len(c.slots) || c.slots[i].vm != vm {
		return nil
	}
	return c.slots[i]
}

// ---- jobs ----

// onJob applies one job event. It reports whether the event added demand.
func (c *core) onJob(now time.Time, ev tarty.JobEvent) bool {
	if ev.JobID == 0 {
		return false
	}
	switch ev.Action {
	case tarty.ActionQueued, tarty.ActionWaiting:
		return c.onQueued(now, ev)
	case tarty.ActionInProgress:
		c.onTaken(now, ev, false)
	case tarty.ActionCompleted:
		c.onTaken(now, ev, true)
	}
	return false
}

func (c *core) onQueued(now time.Time, ev tarty.JobEvent) bool {
	if _, done := c.finished[ev.JobID]; done {
		return false // monotonic: never resurrected
	}
	j, known := c.jobs[ev.JobID]
	// A webhook's queued event for a job created over 24 h ago is a replay
	// (GitHub fails jobs queued that long), unless Tarty saw the job parked:
	// an approval can come days later. The poller reads GitHub's state now,
	// so what it finds queued is queued.
	if ev.Source != tarty.SourcePoller && ev.Stale(now) && !(known && j.waiting) {
		return false
	}
	if !c.match.Match(ev.Labels) {
		return false
	}
	waiting := ev.Action == tarty.ActionWaiting || ev.Status == "waiting"
	if !known {
		j = &job{firstSeen: now}
		c.jobs[ev.JobID] = j
	}
	if known && j.waiting {
		c.parked--
	}
	if waiting {
		c.parked++
	}
	j.ev, j.waiting, j.lastSeen = ev, waiting, now
	if !known && !waiting && ev.Source == tarty.SourcePoller && c.obs.missedJob != nil {
		c.obs.missedJob()
	}
	return !waiting
}

// onTaken handles in_progress and completed: the job leaves demand whatever
// runner took it, and a runner of Tarty's becomes busy (or done).
func (c *core) onTaken(now time.Time, ev tarty.JobEvent, completed bool) {
	prev, seen := c.finished[ev.JobID]
	c.dropJob(ev.JobID)
	if !seen || completed {
		c.finished[ev.JobID] = finishMark{at: now, completed: completed || prev.completed}
	}
	s := c.slotByVM(ev.RunnerName)
	if s == nil {
		return
	}
	if completed {
		if s.jobID == 0 || s.jobID == ev.JobID {
			s.jobID = ev.JobID
			if s.jobDoneAt.IsZero() {
				s.jobDoneAt = now
			}
			c.to(now, s, seJobDone)
		}
		return
	}
	if prev.completed {
		return // in_progress after completed: the job is over already
	}
	s.jobID = ev.JobID
	if c.to(now, s, seJobStarted) && c.obs.jobWait != nil && !ev.CreatedAt.IsZero() {
		started := ev.StartedAt
		if started.IsZero() {
			started = now
		}
		c.obs.jobWait(started.Sub(ev.CreatedAt))
	}
}

// onPoll reconciles demand with a poll that began at started. Jobs found are
// demand; a job not found leaves demand only if its repository was read in
// full and Tarty knew the job before the poll began (an event that arrived
// during the poll is newer news).
func (c *core) onPoll(now, started time.Time, res tarty.PollResult) {
	found := map[int64]bool{}
	for _, ev := range res.Jobs {
		found[ev.JobID] = true
		ev.Source = tarty.SourcePoller
		if ev.Action == "" {
			ev.Action = tarty.ActionQueued
		}
		c.onQueued(now, ev)
	}
	complete := map[string]bool{}
	for _, r := range res.Complete {
		complete[strings.ToLower(r)] = true
	}
	for id, j := range c.jobs {
		// Parked jobs are not queued, so no poll lists them: they leave on
		// their own in_progress or completed event, or when stale.
		if !j.waiting && !found[id] && complete[strings.ToLower(j.ev.Repository)] && j.firstSeen.Before(started) {
			c.dropJob(id)
		}
	}
	c.polled = true
}

// onRunners compares the registrations GitHub lists (listing began at
// started) with the slots: a runner of an idle or busy slot that is gone ends
// its VM after a grace; an offline registration of Tarty's with no slot is
// deleted.
func (c *core) onRunners(now, started time.Time, runners []tarty.Runner) {
	listed := map[int64]tarty.Runner{}
	for _, r := range runners {
		listed[r.ID] = r
	}
	mine := map[int64]bool{}
	for _, s := range c.slots {
		if s.runnerID == 0 {
			continue
		}
		mine[s.runnerID] = true
		if _, ok := listed[s.runnerID]; ok || (s.state != SlotIdle && s.state != SlotBusy) {
			continue
		}
		if s.readyAt.Before(started) && s.jobDoneAt.IsZero() {
			s.jobDoneAt = now
			c.to(now, s, seJobDone)
		}
	}
	for _, r := range runners {
		if mine[r.ID] || r.Online || !tarty.Owned(c.opts.Prefix, r.Name) {
			continue
		}
		c.addRemoval(now, r.ID, r.Name)
	}
}

func (c *core) addRemoval(now time.Time, id int64, name string) {
	if id == 0 {
		return
	}
	if _, ok := c.removals[id]; !ok {
		c.removals[id] = &removal{name: name, since: now, nextAt: now}
	}
}

// onRemoval records the outcome of deleting a registration.
func (c *core) onRemoval(now time.Time, id int64, err error) {
	r, ok := c.removals[id]
	if !ok {
		return
	}
	r.inFlight = false
	if err == nil {
		delete(c.removals, id)
		return
	}
	r.attempts++
	if now.Sub(r.since) >= removalGiveUp {
		c.log.Warn().Err(err).Int64("runner_id", id).Str("runner", r.name).
			Msg("giving up removing the runner registration; GitHub deletes offline ephemeral runners within a day")
		delete(c.removals, id)
		return
	}
	wait := min(removalFirst<<min(r.attempts-1, 8), removalMax)
	if d, ok := tarty.RetryAfter(err); ok && d > wait {
		wait = d
	}
	r.nextAt = now.Add(wait)
}

// queued counts the jobs in demand (parked ones are not). It runs at every
// decision, so it is a count kept up to date, not a walk over the demand.
func (c *core) queued() int { return len(c.jobs) - c.parked }

// dropJob removes a job from demand (or from the parked ones).
func (c *core) dropJob(id int64) {
	if j, ok := c.jobs[id]; ok {
		if j.waiting {
			c.parked--
		}
		delete(c.jobs, id)
	}
}

func (c *core) pruneFinished(now time.Time) {
	// Hours-old memories need no per-event care: prune every few minutes.
	if now.Sub(c.lastPrune) < pruneEvery {
		return
	}
	c.lastPrune = now
	for id, f := range c.finished {
		if now.Sub(f.at) > finishedTTL {
			delete(c.finished, id)
		}
	}
	for id, j := range c.jobs {
		if now.Sub(j.lastSeen) > tarty.StaleAfter {
			c.dropJob(id) // nothing said it waits for a day: GitHub has failed it by now
		}
	}
}

// ---- VMs ----

// launchFailure is how a launch ended when it did not start a runner. The
// worker has already deleted what it made.
type launchFailure struct {
	stage    string // create, boot, address, ssh, register, start, boot_timeout
	err      error
	capacity *tarty.Capacity // re-read after the two-VM-limit error
}

func (c *core) onLaunched(now time.Time, i int, vm string, runnerID int64) {
	s := c.slotAt(i, vm)
	if s == nil {
		return
	}
	s.runnerID = runnerID
	if s.state == SlotStopping {
		// Cancelled as it finished: tear the fresh VM down.
		c.to(now, s, seLaunched)
		s.owed = true
		return
	}
	if !c.to(now, s, seLaunched) {
		return
	}
	s.readyAt = now
	c.failStreak, c.limitStreak = 0, 0
	c.launchBoff.Reset()
	c.degradeBoff.Reset()
	if c.obs.bootTime != nil {
		c.obs.bootTime(now.Sub(s.createdAt))
	}
	if s.jobID != 0 {
		// Its runner took a job before the launch reported.
		if _, done := c.finished[s.jobID]; done && c.finished[s.jobID].completed {
			s.jobDoneAt = now
		} else {
			c.to(now, s, seJobStarted)
		}
	}
}

func (c *core) onLaunchFailed(now time.Time, i int, vm string, f launchFailure) {
	s := c.slotAt(i, vm)
	if s == nil {
		return
	}
	if s.state == SlotStopping {
		if s.reason != reasonBootTimeout {
			// Cancelled by Tarty (shutdown, preemption): not a failure.
			c.to(now, s, seLaunchCancelled)
			c.clearVM(now, s)
			return
		}
		f.stage = reasonBootTimeout
	}
	if f.capacity != nil {
		c.capacity = *f.capacity
	}
	if c.obs.launchFailure != nil {
		c.obs.launchFailure(f.stage)
	}
	switch {
	case tarty.IsVMLimit(f.err) && c.limitLeaked(s):
		// Refused with room to spare: once can be a race with a VM that has
		// stopped since; twice in a row, only a leaked counter explains it.
		c.limitStreak++
		if c.limitStreak < 2 {
			c.failStreak++
			c.to(now, s, seLaunchFailed)
			c.hold(now, s, c.launchBoff.NextBackOff(), "two-VM limit although the host seemed to have room; retrying")
			break
		}
		if c.obs.limitLeak != nil {
			c.obs.limitLeak()
		}
		fix, ok := tarty.HostFix(f.err)
		if !ok {
			fix = "the backend keeps refusing VMs it reports room for"
		}
		c.degrade(now, s, "VM limit reached although "+strconv.Itoa(c.activeVMs(s))+" of Tarty's and "+
			strconv.Itoa(len(c.capacity.Foreign))+" foreign VMs run: "+fix)
	case tarty.IsVMLimit(f.err):
		// A foreign VM took the room: the capacity was lowered; not a failure of ours.
		c.to(now, s, seLaunchCancelled)
		c.clearVM(now, s)
		s.reason = "two-VM limit: another macOS VM runs on this Mac"
	default:
		if fix, ok := tarty.HostFix(f.err); ok {
			c.degrade(now, s, fix)
			break
		}
		c.failStreak++
		wait := c.launchBoff.NextBackOff()
		if d, ok := tarty.RetryAfter(f.err); ok && d > wait {
			wait = d
		}
		reason := "launch failed at " + f.stage + ": " + errString(f.err)
		if c.failStreak >= degradeAfter {
			c.to(now, s, seLaunchDegraded)
			reason = strconv.Itoa(c.failStreak) + " launches failed in a row; last at " + f.stage + ": " + errString(f.err)
		} else {
			c.to(now, s, seLaunchFailed)
		}
		c.hold(now, s, wait, reason)
	}
}

// limitLeaked reports whether the two-VM limit came while the backend says
// there was room for slot s: with fewer VMs running than the host allows,
// only a leaked counter explains it.
func (c *core) limitLeaked(s *slot) bool {
	return c.capacity.Slots > c.activeVMs(s)
}

// activeVMs counts Tarty's VMs running or being made, other than except's.
func (c *core) activeVMs(except *slot) int {
	n := 0
	for _, o := range c.slots {
		if o != except && o.state.hasVM() {
			n++
		}
	}
	return n
}

func (c *core) degrade(now time.Time, s *slot, reason string) {
	c.to(now, s, seLaunchDegraded)
	c.hold(now, s, c.degradeBoff.NextBackOff(), reason)
}

// hold keeps s (and every launch) waiting until now+wait.
func (c *core) hold(now time.Time, s *slot, wait time.Duration, reason string) {
	c.clearVM(now, s)
	s.reason = reason
	s.retryAt = now.Add(wait)
	if s.retryAt.After(c.launchAt) {
		c.launchAt = s.retryAt
	}
	c.log.Warn().Int("slot", s.index).Str("state", string(s.state)).Time("retry_at", s.retryAt).
		Str("reason", reason).Msg("launch held")
}

func (c *core) clearVM(now time.Time, s *slot) {
	if s.runnerID != 0 {
		c.addRemoval(now, s.runnerID, s.vm)
	}
	s.vm, s.runnerID, s.jobID = "", 0, 0
	s.createdAt, s.readyAt, s.jobDoneAt = time.Time{}, time.Time{}, time.Time{}
	s.adopted, s.owed = false, false
}

func (c *core) onVMExited(now time.Time, i int, vm string) {
	s := c.slotAt(i, vm)
	if s == nil {
		return
	}
	quick := s.state == SlotIdle && s.jobID == 0 && !s.adopted && now.Sub(s.readyAt) < quickExit
	if !c.to(now, s, seVMExited) {
		return
	}
	s.reason, s.owed = reasonExited, true
	if quick {
		// The runner quit at once (a broken image, a refused config): count it
		// as a failed launch, or the next launches would loop at boot speed.
		c.failStreak++
		if c.obs.launchFailure != nil {
			c.obs.launchFailure("runner")
		}
		if t := now.Add(c.launchBoff.NextBackOff()); t.After(c.launchAt) {
			c.launchAt = t
		}
		c.log.Warn().Int("slot", s.index).Str("vm", vm).Time("retry_at", c.launchAt).
			Msg("the runner exited right after it started, without a job; launches held (see ~/tarty-start.log in the guest)")
	}
}

func (c *core) onTornDown(now time.Time, i int, vm string) {
	s := c.slotAt(i, vm)
	if s == nil || !c.to(now, s, seTornDown) {
		return
	}
	c.clearVM(now, s) // queues its runner's removal
	s.reason = ""
	if s.reserved {
		s.reserved = false
		c.reserve(now, s)
	}
}

// onAdopted starts watching a VM whose runner was busy when Tarty restarted.
func (c *core) onAdopted(now time.Time, vm string, runnerID int64) {
	var s *slot
	for _, o := range c.slots {
		if o.state == SlotFree {
			s = o
			break
		}
	}
	if s == nil {
		// More busy VMs than slots (runners.max was lowered): watch it anyway,
		// in an extra slot that never launches.
		s = &slot{index: len(c.slots), state: SlotFree, since: now}
		c.slots = append(c.slots, s)
	}
	if c.to(now, s, seAdopt) {
		s.vm, s.runnerID, s.adopted = vm, runnerID, true
		s.createdAt, s.readyAt = now, now
	}
}

// onVMsSeen compares the backend's running VMs with the adopted slots.
func (c *core) onVMsSeen(now time.Time, running map[string]bool) {
	for _, s := range c.slots {
		if s.adopted && (s.state == SlotIdle || s.state == SlotBusy) && !running[s.vm] {
			c.onVMExited(now, s.index, s.vm)
		}
	}
}

// ---- rebuild ----

// reserve gives slot s to the waiting rebuild.
func (c *core) reserve(now time.Time, s *slot) {
	if c.to(now, s, seReserve) {
		c.rebuild.wanted = false
		c.rebuild.slot = s.index
		s.reason = ""
	}
}

// ---- helpers ----

func errString(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// sortedSlots returns the slots in state st, ordered by key (ascending).
func (c *core) sortedSlots(st SlotState, key func(*slot) time.Time) []*slot {
	var out []*slot
	for _, s := range c.slots {
		if s.state == st {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return key(out[a]).Before(key(out[b])) })
	return out
}
