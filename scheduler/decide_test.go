package scheduler

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
)

func TestTransitionTableIsComplete(t *testing.T) {
	valid := map[SlotState]bool{}
	for _, st := range SlotStates {
		valid[st] = true
	}
	if len(transitions) != len(SlotStates) {
		t.Errorf("%d states in the table, %d declared", len(transitions), len(SlotStates))
	}
	for _, st := range SlotStates {
		row, ok := transitions[st]
		if !ok {
			t.Errorf("state %s has no row", st)
			continue
		}
		for ev := slotEvent(0); ev < numSlotEvents; ev++ {
			c := row[ev]
			n := 0
			for _, b := range []bool{c.stay, c.bad, c.next != ""} {
				if b {
					n++
				}
			}
			if n != 1 {
				t.Errorf("(%s, %s) is not defined exactly once: %+v", st, ev, c)
			}
			if c.next != "" && !valid[c.next] {
				t.Errorf("(%s, %s) goes to unknown state %q", st, ev, c.next)
			}
		}
	}
	// Every state is reachable from free.
	seen := map[SlotState]bool{SlotFree: true}
	for changed := true; changed; {
		changed = false
		for st := range seen {
			for _, c := range transitions[st] {
				if c.next != "" && !seen[c.next] {
					seen[c.next], changed = true, true
				}
			}
		}
	}
	for _, st := range SlotStates {
		if !seen[st] {
			t.Errorf("state %s is unreachable", st)
		}
	}
	if _, _, err := transition(SlotBusy, seLaunch); err == nil {
		t.Error("launching a busy slot was allowed")
	}
}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// coreWith builds a recovered core at t0 with nothing due but what the test sets.
func coreWith(max, warm int, setup func(c *core)) *core {
	opts := Options{Prefix: "tp", Image: "img", Labels: []string{"tarty"}, Max: max, Warm: warm,
		Now: func() time.Time { return t0 }}
	n := 0
	opts.NewName = func() string { n++; return fmt.Sprintf("%08d", n) }
	if err := opts.normalize(); err != nil {
		panic(err)
	}
	c := newCore(opts, zerolog.Nop(), observer{})
	c.recovered, c.polled = true, true
	c.nextPoll = t0.Add(time.Hour)
	if setup != nil {
		setup(c)
	}
	return c
}

func queue(c *core, ids ...int64) {
	for _, id := range ids {
		c.onJob(t0.Add(-time.Minute), tarty.JobEvent{Action: tarty.ActionQueued, Status: "queued", JobID: id,
			Labels: []string{"tarty"}, Repository: "acme/app", CreatedAt: t0.Add(-time.Minute)})
	}
}

func put(c *core, i int, st SlotState, f func(s *slot)) {
	s := c.slots[i]
	s.state, s.vm, s.runnerID = st, fmt.Sprintf("tp-vm%d", i), int64(100+i)
	s.createdAt, s.readyAt, s.since = t0.Add(-time.Minute), t0.Add(-time.Minute), t0.Add(-time.Minute)
	if st == SlotFree {
		s.vm, s.runnerID = "", 0
	}
	if f != nil {
		f(s)
	}
}

func TestDecide(t *testing.T) {
	launch := func(slot int, name string) Action {
		return Action{Kind: ActLaunch, Slot: slot, VM: "tp-" + name}
	}
	down := func(kind ActionKind, slot int, reason string) Action {
		return Action{Kind: kind, Slot: slot, VM: fmt.Sprintf("tp-vm%d", slot), RunnerID: int64(100 + slot), Reason: reason}
	}
	tests := []struct {
		name string
		c    *core
		want []Action
	}{
		{"nothing to do", coreWith(2, 0, nil), nil},
		{"three queued, two slots", coreWith(2, 0, func(c *core) { queue(c, 1, 2, 3) }),
			[]Action{launch(0, "00000001"), launch(1, "00000002")}},
		{"a foreign VM leaves one slot", coreWith(2, 0, func(c *core) {
			queue(c, 1, 2, 3)
			c.capacity = tarty.Capacity{Slots: 1, Foreign: []string{"other"}}
		}), []Action{launch(0, "00000001")}},
		{"runners.max caps", coreWith(1, 0, func(c *core) { queue(c, 1, 2) }), []Action{launch(0, "00000001")}},
		{"an idle runner covers the job", coreWith(2, 0, func(c *core) {
			queue(c, 1)
			put(c, 0, SlotIdle, nil)
		}), nil},
		{"a booting runner covers the job", coreWith(2, 0, func(c *core) {
			queue(c, 1)
			put(c, 0, SlotLaunching, nil)
		}), nil},
		{"busy runners do not cover", coreWith(2, 0, func(c *core) {
			queue(c, 1)
			put(c, 0, SlotBusy, nil)
		}), []Action{launch(1, "00000001")}},
		{"parked jobs are not demand", coreWith(2, 0, func(c *core) {
			c.onJob(t0, tarty.JobEvent{Action: tarty.ActionQueued, Status: "waiting", JobID: 9, Labels: []string{"tarty"}})
		}), nil},
		{"warm runners with no demand", coreWith(2, 2, nil), []Action{launch(0, "00000001"), launch(1, "00000002")}},
		{"idle past idle_timeout with no demand", coreWith(2, 0, func(c *core) {
			put(c, 0, SlotIdle, func(s *slot) { s.readyAt = t0.Add(-DefaultIdleTimeout) })
		}), []Action{down(ActTeardown, 0, reasonIdle)}},
		{"idle not yet past idle_timeout", coreWith(2, 0, func(c *core) { put(c, 0, SlotIdle, nil) }), nil},
		{"a warm runner outlives idle_timeout", coreWith(2, 1, func(c *core) {
			put(c, 0, SlotIdle, func(s *slot) { s.readyAt = t0.Add(-DefaultIdleTimeout) })
			put(c, 1, SlotBusy, nil)
		}), nil},
		{"the older of two idle runners goes first", coreWith(2, 1, func(c *core) {
			put(c, 0, SlotIdle, func(s *slot) { s.readyAt = t0.Add(-time.Hour) })
			put(c, 1, SlotIdle, func(s *slot) { s.readyAt = t0.Add(-2 * time.Hour) })
		}), []Action{down(ActTeardown, 1, reasonIdle)}},
		{"boot_timeout cancels the launch", coreWith(2, 0, func(c *core) {
			queue(c, 1)
			put(c, 0, SlotLaunching, func(s *slot) { s.createdAt = t0.Add(-DefaultBootTimeout) })
		}), []Action{down(ActCancel, 0, reasonBootTimeout)}},
		{"max_lifetime kills even a busy runner", coreWith(2, 0, func(c *core) {
			put(c, 0, SlotBusy, func(s *slot) { s.createdAt = t0.Add(-DefaultMaxLifetime) })
		}), []Action{down(ActTeardown, 0, reasonLifetime)}},
		{"a VM still running after its job's grace", coreWith(2, 0, func(c *core) {
			put(c, 0, SlotBusy, func(s *slot) { s.jobDoneAt = t0.Add(-DefaultJobDoneGrace) })
		}), []Action{down(ActTeardown, 0, reasonJobDone)}},
		{"a VM that exited is deleted", coreWith(2, 0, func(c *core) {
			put(c, 0, SlotStopping, func(s *slot) { s.owed, s.reason = true, reasonExited })
		}), []Action{down(ActTeardown, 0, reasonExited)}},
		{"draining: cancel launches, tear down idle, keep busy, launch nothing", coreWith(2, 0, func(c *core) {
			queue(c, 1, 2, 3)
			put(c, 0, SlotLaunching, nil)
			put(c, 1, SlotIdle, nil)
			c.slots = append(c.slots, &slot{index: 2, state: SlotBusy, vm: "tp-vm2", runnerID: 102, createdAt: t0})
			c.draining = true
		}), []Action{down(ActCancel, 0, reasonShutdown), down(ActTeardown, 1, reasonShutdown)}},
		{"launches held by a backoff", coreWith(2, 0, func(c *core) {
			queue(c, 1)
			c.launchAt = t0.Add(time.Second)
		}), nil},
		{"nothing launches before recovery", coreWith(2, 0, func(c *core) {
			queue(c, 1)
			c.recovered = false
		}), nil},
		{"a backed-off slot launches when its wait is over", coreWith(1, 0, func(c *core) {
			queue(c, 1)
			put(c, 0, SlotBackoff, func(s *slot) { s.retryAt = t0 })
		}), []Action{launch(0, "00000001")}},
		{"a degraded slot waits", coreWith(1, 0, func(c *core) {
			queue(c, 1)
			put(c, 0, SlotDegraded, func(s *slot) { s.retryAt = t0.Add(time.Minute) })
			c.launchAt = s0(c).retryAt
		}), nil},
		{"tear-downs come before launches", coreWith(2, 0, func(c *core) {
			queue(c, 1)
			put(c, 0, SlotBusy, func(s *slot) { s.createdAt = t0.Add(-DefaultMaxLifetime) })
		}), []Action{down(ActTeardown, 0, reasonLifetime), launch(1, "00000001")}},
		{"the rebuild takes a free slot; the runner gets the other", coreWith(2, 0, func(c *core) {
			queue(c, 1, 2)
			c.rebuild.wanted = true
		}), []Action{{Kind: ActReserve, Slot: 0}, launch(1, "00000001")}},
		{"the rebuild preempts an idle runner, never a busy one", coreWith(2, 0, func(c *core) {
			put(c, 0, SlotBusy, nil)
			put(c, 1, SlotIdle, nil)
			c.rebuild.wanted = true
		}), []Action{down(ActTeardown, 1, reasonRebuild)}},
		{"the rebuild waits for busy runners", coreWith(2, 0, func(c *core) {
			queue(c, 1)
			put(c, 0, SlotBusy, nil)
			put(c, 1, SlotBusy, nil)
			c.rebuild.wanted = true
		}), nil},
		{"a waiting rebuild keeps the next free slot: no launch", coreWith(2, 0, func(c *core) {
			queue(c, 1)
			put(c, 0, SlotBusy, nil)
			put(c, 1, SlotStopping, nil)
			c.rebuild.wanted = true
		}), nil},
		{"while the rebuild holds a slot, capacity - 1 runners", coreWith(2, 0, func(c *core) {
			queue(c, 1, 2)
			put(c, 0, SlotRebuild, nil)
			c.rebuild.slot = 0
		}), []Action{launch(1, "00000001")}},
		{"the promote holds launches", coreWith(2, 0, func(c *core) {
			queue(c, 1)
			c.rebuild.hold = true
		}), nil},
		{"due removals and the poll", coreWith(2, 0, func(c *core) {
			c.addRemoval(t0, 7, "tp-old")
			c.nextPoll = t0
		}), []Action{{Kind: ActRemoveRunner, RunnerID: 7, VM: "tp-old"}, {Kind: ActPoll}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decide(t0, tt.c)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decide =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

func s0(c *core) *slot { return c.slots[0] }

func TestJobTransitionsAreMonotonic(t *testing.T) {
	c := coreWith(2, 0, nil)
	ev := tarty.JobEvent{JobID: 5, Labels: []string{"tarty"}, Repository: "acme/app", CreatedAt: t0}
	at := func(a tarty.JobAction, status string) tarty.JobEvent {
		e := ev
		e.Action, e.Status = a, status
		return e
	}
	steps := []struct {
		ev     tarty.JobEvent
		queued int
	}{
		{at(tarty.ActionQueued, "waiting"), 0},
		{at(tarty.ActionWaiting, "waiting"), 0},
		{at(tarty.ActionQueued, "queued"), 1},
		{at(tarty.ActionQueued, "queued"), 1},
		{at(tarty.ActionInProgress, "in_progress"), 0},
		{at(tarty.ActionQueued, "queued"), 0},
		{at(tarty.ActionWaiting, "waiting"), 0},
		{at(tarty.ActionCompleted, "completed"), 0},
		{at(tarty.ActionQueued, "queued"), 0},
	}
	for i, st := range steps {
		c.onJob(t0, st.ev)
		if got := c.queued(); got != st.queued {
			t.Fatalf("step %d (%s/%s): queued = %d, want %d", i, st.ev.Action, st.ev.Status, got, st.queued)
		}
	}
	// Stale and foreign-label jobs never enter.
	stale := ev
	stale.JobID, stale.Action, stale.Source, stale.CreatedAt = 6, tarty.ActionQueued, tarty.SourceWebhook, t0.Add(-25*time.Hour)
	c.onJob(t0, stale)
	other := ev
	other.JobID, other.Action, other.Labels = 7, tarty.ActionQueued, []string{"self-hosted"}
	c.onJob(t0, other)
	if c.queued() != 0 {
		t.Errorf("a stale or unmatched job became demand")
	}
	// A job parked for two days and then approved is demand; so is an old job
	// the poller finds queued (GitHub's state now, not a replay).
	parked := stale
	parked.JobID, parked.Status, parked.CreatedAt = 8, "waiting", t0.Add(-47*time.Hour)
	c.onJob(t0.Add(-47*time.Hour), parked)
	parked.Status = "queued"
	c.onJob(t0, parked)
	polled := stale
	polled.JobID, polled.Source = 9, tarty.SourcePoller
	c.onJob(t0, polled)
	c.pruneFinished(t0)
	if c.queued() != 2 {
		t.Errorf("queued = %d, want the approved job and the polled one", c.queued())
	}
}

func TestPollReconcile(t *testing.T) {
	c := coreWith(2, 0, nil)
	queue(c, 1, 2, 3) // known before the poll
	started := t0
	// Job 4 arrives by webhook during the poll; job 3 is in lib, which failed.
	c.onJob(t0.Add(time.Second), tarty.JobEvent{Action: tarty.ActionQueued, JobID: 4, Labels: []string{"tarty"},
		Repository: "acme/app", CreatedAt: t0})
	c.jobs[3].ev.Repository = "acme/lib"
	missed := 0
	c.obs.missedJob = func() { missed++ }
	c.onPoll(t0.Add(2*time.Second), started, tarty.PollResult{
		Jobs:     []tarty.JobEvent{{JobID: 1, Labels: []string{"tarty"}, Repository: "acme/app"}, {JobID: 9, Labels: []string{"tarty"}, Repository: "acme/app"}},
		Complete: []string{"ACME/app"},
		Failed:   map[string]error{"acme/lib": fmt.Errorf("502")},
	})
	want := map[int64]bool{1: true, 3: true, 4: true, 9: true}
	got := map[int64]bool{}
	for id := range c.jobs {
		got[id] = true
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("demand after the poll = %v, want %v (2 gone, 3 kept: lib unread, 4 newer than the poll, 9 found)", got, want)
	}
	if missed != 1 {
		t.Errorf("missed jobs counted %d, want 1 (job 9)", missed)
	}
}
