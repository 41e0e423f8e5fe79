package scheduler

import (
	"sort"
	"time"
)

// ActionKind is what the scheduler decided to do.
type ActionKind string

// Actions. Tear-downs come before launches in every decision.
const (
	ActCancel       ActionKind = "cancel"        // stop a launch in progress (its worker cleans up)
	ActTeardown     ActionKind = "teardown"      // stop and delete a VM, then remove its runner
	ActReserve      ActionKind = "reserve"       // give a free slot to the nightly rebuild
	ActLaunch       ActionKind = "launch"        // make, boot and register a runner VM
	ActRemoveRunner ActionKind = "remove-runner" // delete a runner registration
	ActPoll         ActionKind = "poll"          // reconcile with GitHub and the backend
	ActCheckVMs     ActionKind = "check-vms"     // look up adopted VMs
	ActRebuild      ActionKind = "rebuild"       // start the scheduled nightly rebuild
)

// Action is one decision. Slot and VM name the slot it concerns.
type Action struct {
	Kind     ActionKind
	Slot     int
	VM       string
	RunnerID int64
	Reason   string
}

// Reasons a VM is torn down (logged, and shown in /status while it stops).
const (
	reasonBootTimeout = "boot_timeout"
	reasonIdle        = "idle_timeout"
	reasonLifetime    = "max_lifetime"
	reasonShutdown    = "shutdown"
	reasonJobDone     = "still running after its job ended"
	reasonExited      = "vm exited"
	reasonRebuild     = "preempted for the nightly rebuild"
)

// decide is the scheduler's policy: a pure function of the time and the state
// (demand, slots, capacity, the rebuild's claim). It returns tear-downs first,
// then the rebuild's reservation, then launches, then housekeeping. It changes
// nothing; commit applies what it returns.
func decide(now time.Time, c *core) []Action {
	var acts []Action
	o := c.opts
	down := map[int]bool{} // slots torn down by this decision

	teardown := func(s *slot, reason string) {
		kind := ActTeardown
		if s.state == SlotLaunching {
			kind = ActCancel
		}
		acts = append(acts, Action{Kind: kind, Slot: s.index, VM: s.vm, RunnerID: s.runnerID, Reason: reason})
		down[s.index] = true
	}

	// Watchdogs, VM exits and the shutdown.
	for _, s := range c.slots {
		switch s.state {
		case SlotLaunching:
			switch {
			case c.draining:
				teardown(s, reasonShutdown)
			case !now.Before(s.createdAt.Add(o.BootTimeout)):
				teardown(s, reasonBootTimeout)
			}
		case SlotIdle, SlotBusy:
			switch {
			case c.draining && s.state == SlotIdle:
				teardown(s, reasonShutdown)
			case !now.Before(s.createdAt.Add(o.MaxLifetime)):
				teardown(s, reasonLifetime)
			case !s.jobDoneAt.IsZero() && !now.Before(s.jobDoneAt.Add(o.JobDoneGrace)):
				teardown(s, reasonJobDone)
			}
		case SlotStopping:
			if s.owed {
				// Its VM stopped by itself, or its launch finished as it was
				// cancelled: delete it.
				teardown(s, s.reason)
			}
		}
	}

	// Idle runners beyond the demand they could serve, oldest first, once
	// their idle_timeout has passed; runners.warm of them are kept.
	queued := c.queued()
	ready := 0
	for _, s := range c.slots {
		if down[s.index] {
			continue
		}
		if s.state == SlotLaunching || (s.state == SlotIdle && s.jobDoneAt.IsZero()) {
			ready++
		}
	}
	surplus := ready - (queued + o.Warm)
	for _, s := range c.sortedSlots(SlotIdle, func(s *slot) time.Time { return s.readyAt }) {
		if surplus <= 0 {
			break
		}
		if down[s.index] || !s.jobDoneAt.IsZero() {
			continue
		}
		if !now.Before(s.readyAt.Add(o.IdleTimeout)) {
			teardown(s, reasonIdle)
			surplus--
		}
	}

	// The nightly rebuild takes the first slot that frees; an idle runner
	// (no job) may be torn down for it; a runner with a job never is.
	usable := min(o.Max, c.capacity.Slots)
	if c.rebuild.wanted && c.rebuild.slot < 0 && !c.draining {
		switch free := c.freeSlots(now, down); {
		case len(free) > 0 && c.activeVMs(nil) < usable:
			acts = append(acts, Action{Kind: ActReserve, Slot: free[0].index})
			down[free[0].index] = true
		case !c.preempting():
			idle := c.sortedSlots(SlotIdle, func(s *slot) time.Time { return s.readyAt })
			for _, s := range idle {
				if s.jobID == 0 && !down[s.index] {
					teardown(s, reasonRebuild)
					break
				}
			}
		}
	}

	// Launches: desired runners = min(capacity, queued + warm), counting the
	// ones booting or listening. None while draining, while the rebuild holds
	// launches for its promote, during a backoff, or before start-up recovery.
	if !c.draining && !c.rebuild.hold && c.recovered && !c.opts.RebuildOnly && !now.Before(c.launchAt) {
		if c.rebuild.wanted && c.rebuild.slot < 0 {
			usable-- // the first slot to free is the rebuild's
		}
		room := usable - c.activeVMs(nil)
		launching, idle := 0, 0
		for _, s := range c.slots {
			switch {
			case s.state == SlotLaunching:
				// Even one being cancelled covers its demand until its
				// worker reports: a boot timeout is a failure, and the
				// backoff it starts decides when to try again.
				launching++
			case down[s.index]:
			case s.state == SlotIdle && s.jobDoneAt.IsZero():
				idle++
			}
		}
		need := queued + o.Warm - launching - idle
		for _, s := range c.freeSlots(now, down) {
			if room <= 0 || need <= 0 {
				break
			}
			acts = append(acts, Action{Kind: ActLaunch, Slot: s.index, VM: o.Prefix + "-" + o.NewName()})
			room--
			need--
		}
	}

	// Housekeeping: runner removals due, the poll, the adopted VMs' check.
	var ids []int64
	for id, r := range c.removals {
		if !r.inFlight && !now.Before(r.nextAt) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	for _, id := range ids {
		acts = append(acts, Action{Kind: ActRemoveRunner, RunnerID: id, VM: c.removals[id].name})
	}
	if !c.polling && !c.draining && !c.opts.RebuildOnly && !now.Before(c.nextPoll) {
		acts = append(acts, Action{Kind: ActPoll})
	}
	if !c.checking && !c.draining && c.hasAdopted() && !now.Before(c.nextCheck) {
		acts = append(acts, Action{Kind: ActCheckVMs})
	}
	rb := c.rebuild
	if rb.enabled && !rb.running && !c.draining && c.recovered && !rb.nextAt.IsZero() && !now.Before(rb.nextAt) {
		acts = append(acts, Action{Kind: ActRebuild, Slot: -1, Reason: "scheduled"})
	}
	return acts
}

// freeSlots lists the slots a launch or the rebuild may take now, lowest
// index first: free ones, and backed-off or degraded ones whose wait is over.
func (c *core) freeSlots(now time.Time, skip map[int]bool) []*slot {
	var out []*slot
	for _, s := range c.slots {
		if skip[s.index] || s.index >= c.opts.Max {
			continue
		}
		switch s.state {
		case SlotFree:
			out = append(out, s)
		case SlotBackoff, SlotDegraded:
			if !now.Before(s.retryAt) {
				out = append(out, s)
			}
		}
	}
	return out
}

// preempting reports whether a slot is already being torn down for the rebuild.
func (c *core) preempting() bool {
	for _, s := range c.slots {
		if s.reserved {
			return true
		}
	}
	return false
}

func (c *core) hasAdopted() bool {
	for _, s := range c.slots {
		if s.adopted {
			return true
		}
	}
	return false
}

// commit applies a decision's actions to the state, so that the next decision
// sees them in flight.
func (c *core) commit(now time.Time, acts []Action) {
	for _, a := range acts {
		switch a.Kind {
		case ActCancel, ActTeardown:
			s := c.slots[a.Slot]
			if s.state != SlotStopping {
				c.to(now, s, seTeardown)
			}
			s.reason, s.owed = a.Reason, false
			if a.Reason == reasonRebuild {
				s.reserved = true
			}
		case ActReserve:
			s := c.slots[a.Slot]
			if s.state == SlotBackoff || s.state == SlotDegraded {
				c.to(now, s, seRetryDue)
			}
			c.reserve(now, s)
		case ActLaunch:
			s := c.slots[a.Slot]
			if s.state == SlotBackoff || s.state == SlotDegraded {
				c.to(now, s, seRetryDue)
			}
			if c.to(now, s, seLaunch) {
				s.vm, s.createdAt, s.reason, s.retryAt = a.VM, now, "", time.Time{}
			}
		case ActRemoveRunner:
			c.removals[a.RunnerID].inFlight = true
		case ActPoll:
			c.polling, c.pollStarted = true, now
		case ActCheckVMs:
			c.checking = true
		case ActRebuild:
			c.startRebuild(now, "scheduled")
		}
	}
}

// step decides and commits: what the owner loop calls after every event.
func (c *core) step(now time.Time) []Action {
	c.pruneFinished(now)
	acts := decide(now, c)
	c.commit(now, acts)
	return acts
}

// nextDeadline is the earliest time after now at which a decision could
// change with no event arriving: the one timer the owner loop arms. Times
// already past are left out: the decision at now has seen them, and what it
// did not act on waits for a condition that only an event can change.
func (c *core) nextDeadline(now time.Time) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.After(now) {
			return
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	o := c.opts
	for _, s := range c.slots {
		switch s.state {
		case SlotLaunching:
			consider(s.createdAt.Add(o.BootTimeout))
		case SlotIdle, SlotBusy:
			consider(s.createdAt.Add(o.MaxLifetime))
			if s.state == SlotIdle {
				consider(s.readyAt.Add(o.IdleTimeout))
			}
			if !s.jobDoneAt.IsZero() {
				consider(s.jobDoneAt.Add(o.JobDoneGrace))
			}
		case SlotBackoff, SlotDegraded:
			consider(s.retryAt)
		}
	}
	consider(c.launchAt)
	for _, r := range c.removals {
		if !r.inFlight {
			consider(r.nextAt)
		}
	}
	if !c.polling && !c.opts.RebuildOnly {
		consider(c.nextPoll)
	}
	if !c.checking && c.hasAdopted() {
		consider(c.nextCheck)
	}
	if c.rebuild.enabled && !c.rebuild.running {
		consider(c.rebuild.nextAt)
	}
	return next
}
