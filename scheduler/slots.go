package scheduler

import "fmt"

// SlotState is where one unit of the VM budget stands.
type SlotState string

// Slot states. Every (state, event) pair has an entry in the transition table.
const (
	SlotFree      SlotState = "free"      // no VM; may launch
	SlotLaunching SlotState = "launching" // creating, booting, registering and starting the runner
	SlotIdle      SlotState = "idle"      // runner listening, no job yet
	SlotBusy      SlotState = "busy"      // runner running a job
	SlotStopping  SlotState = "stopping"  // tearing down its VM (or cancelling its launch)
	SlotBackoff   SlotState = "backoff"   // a launch failed; retried at RetryAt
	SlotDegraded  SlotState = "degraded"  // repeated failures or a host problem; probed again at RetryAt
	SlotRebuild   SlotState = "rebuild"   // held by the nightly rebuild
)

// SlotStates lists every state, in display order (metrics are initialised from it).
var SlotStates = []SlotState{SlotFree, SlotLaunching, SlotIdle, SlotBusy, SlotStopping, SlotBackoff, SlotDegraded, SlotRebuild}

// slotEvent is something that happens to one slot.
type slotEvent int

const (
	seLaunch          slotEvent = iota // the decision: start a runner here
	seLaunched                         // its runner was started in the guest
	seLaunchFailed                     // its launch failed and was cleaned up: back off
	seLaunchDegraded                   // its launch failed in a way only the operator can fix, or again and again
	seLaunchCancelled                  // its launch was cancelled (shutdown, capacity lowered) and cleaned up
	seJobStarted                       // in_progress for its runner
	seJobDone                          // completed for its runner, or its registration is gone
	seVMExited                         // its VM stopped (guest power-off, crash, or seen stopped)
	seTeardown                         // the decision: tear it down (watchdog, idle, shutdown, rebuild)
	seTornDown                         // its VM is stopped and deleted
	seRetryDue                         // its backoff or degraded wait is over
	seReserve                          // the nightly rebuild takes it
	seRelease                          // the nightly rebuild gives it back
	seAdopt                            // at start: a busy VM from before a restart is watched here
	numSlotEvents
)

var slotEventNames = [...]string{"launch", "launched", "launch-failed", "launch-degraded", "launch-cancelled",
	"job-started", "job-done", "vm-exited", "teardown", "torn-down", "retry-due", "reserve", "release", "adopt"}

func (e slotEvent) String() string {
	if e >= 0 && int(e) < len(slotEventNames) {
		return slotEventNames[e]
	}
	return fmt.Sprintf("slotEvent(%d)", int(e))
}

// cell is one entry of the transition table.
type cell struct {
	next SlotState
	// stay: the event changes nothing here (a late or duplicate report).
	stay bool
	// bad: the event cannot happen in this state; it is logged as a bug and
	// ignored, never allowed to corrupt the budget.
	bad bool
}

func to(s SlotState) cell { return cell{next: s} }

var (
	stay = cell{stay: true}
	bad  = cell{bad: true}
)

// transitions is the whole slot state machine. A test checks that every
// (state, event) pair is defined.
var transitions = map[SlotState][numSlotEvents]cell{
	SlotFree: {
		seLaunch: to(SlotLaunching), seLaunched: bad, seLaunchFailed: bad, seLaunchDegraded: bad,
		seLaunchCancelled: bad, seJobStarted: stay, seJobDone: stay, seVMExited: stay, seTeardown: bad,
		seTornDown: stay, seRetryDue: stay, seReserve: to(SlotRebuild), seRelease: bad, seAdopt: to(SlotBusy),
	},
	SlotLaunching: {
		seLaunch: bad, seLaunched: to(SlotIdle), seLaunchFailed: to(SlotBackoff), seLaunchDegraded: to(SlotDegraded),
		seLaunchCancelled: to(SlotFree), seJobStarted: stay, seJobDone: stay, seVMExited: stay,
		seTeardown: to(SlotStopping), seTornDown: bad, seRetryDue: stay, seReserve: bad, seRelease: bad, seAdopt: bad,
	},
	SlotIdle: {
		seLaunch: bad, seLaunched: bad, seLaunchFailed: bad, seLaunchDegraded: bad, seLaunchCancelled: bad,
		seJobStarted: to(SlotBusy), seJobDone: stay, seVMExited: to(SlotStopping), seTeardown: to(SlotStopping),
		seTornDown: bad, seRetryDue: stay, seReserve: bad, seRelease: bad, seAdopt: bad,
	},
	SlotBusy: {
		seLaunch: bad, seLaunched: bad, seLaunchFailed: bad, seLaunchDegraded: bad, seLaunchCancelled: bad,
		seJobStarted: stay, seJobDone: stay, seVMExited: to(SlotStopping), seTeardown: to(SlotStopping),
		seTornDown: bad, seRetryDue: stay, seReserve: bad, seRelease: bad, seAdopt: bad,
	},
	SlotStopping: {
		// A launch that finished as it was being cancelled still reports: the
		// handler tears its VM down.
		seLaunch: bad, seLaunched: stay, seLaunchFailed: to(SlotBackoff), seLaunchDegraded: to(SlotDegraded),
		seLaunchCancelled: to(SlotFree), seJobStarted: stay, seJobDone: stay, seVMExited: stay, seTeardown: stay,
		seTornDown: to(SlotFree), seRetryDue: stay, seReserve: bad, seRelease: bad, seAdopt: bad,
	},
	SlotBackoff: {
		seLaunch: bad, seLaunched: bad, seLaunchFailed: bad, seLaunchDegraded: bad, seLaunchCancelled: bad,
		seJobStarted: stay, seJobDone: stay, seVMExited: stay, seTeardown: bad, seTornDown: stay,
		seRetryDue: to(SlotFree), seReserve: to(SlotRebuild), seRelease: bad, seAdopt: bad,
	},
	SlotDegraded: {
		seLaunch: bad, seLaunched: bad, seLaunchFailed: bad, seLaunchDegraded: bad, seLaunchCancelled: bad,
		seJobStarted: stay, seJobDone: stay, seVMExited: stay, seTeardown: bad, seTornDown: stay,
		seRetryDue: to(SlotFree), seReserve: to(SlotRebuild), seRelease: bad, seAdopt: bad,
	},
	SlotRebuild: {
		seLaunch: bad, seLaunched: bad, seLaunchFailed: bad, seLaunchDegraded: bad, seLaunchCancelled: bad,
		seJobStarted: stay, seJobDone: stay, seVMExited: stay, seTeardown: bad, seTornDown: stay,
		seRetryDue: stay, seReserve: bad, seRelease: to(SlotFree), seAdopt: bad,
	},
}

// transition returns the state after ev, whether it changed, and an error
// when ev cannot happen in from.
func transition(from SlotState, ev slotEvent) (SlotState, bool, error) {
	row, ok := transitions[from]
	if !ok {
		return from, false, fmt.Errorf("slot state %q has no transitions", from)
	}
	c := row[ev]
	switch {
	case c.bad:
		return from, false, fmt.Errorf("slot event %s cannot happen in state %s", ev, from)
	case c.stay:
		return from, false, nil
	case c.next == "":
		return from, false, fmt.Errorf("slot event %s undefined in state %s", ev, from)
	}
	return c.next, c.next != from, nil
}

// hasVM reports whether a slot in state s may have a VM of Tarty's running or
// being made: it counts against the host's two-VM budget.
func (s SlotState) hasVM() bool {
	switch s {
	case SlotLaunching, SlotIdle, SlotBusy, SlotStopping, SlotRebuild:
		return true
	}
	return false
}
