package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/tartyci/tarty"
)

// Status is a snapshot of the scheduler for /status and `tarty status`
// (DESIGN.md section 4). It never holds a secret.
type Status struct {
	Ready       bool          `json:"ready"`
	NotReady    string        `json:"not_ready,omitempty"` // why not, when not ready
	Draining    bool          `json:"draining,omitempty"`
	Capacity    int           `json:"capacity"`
	MaxRunners  int           `json:"max_runners"`
	Warm        int           `json:"warm"`
	ForeignVMs  []string      `json:"foreign_vms"`
	Slots       []SlotStatus  `json:"slots"`
	Queued      []JobStatus   `json:"queued"`
	LaunchHeld  *time.Time    `json:"launch_held_until,omitempty"`
	Rebuild     RebuildStatus `json:"rebuild"`
	Runner      RunnerStatus  `json:"runner"`
	GitHub      GitHubStatus  `json:"github"`
	RunnersGone int           `json:"runner_removals_pending"`
	Now         time.Time     `json:"now"`
	// Workers is the fleet, when the backend is one (Fleet).
	Workers      []tarty.Worker `json:"workers,omitempty"`
	WorkersError string         `json:"workers_error,omitempty"`
}

// SlotStatus is one slot.
type SlotStatus struct {
	Index   int        `json:"index"`
	State   SlotState  `json:"state"`
	VM      string     `json:"vm,omitempty"`
	Runner  string     `json:"runner,omitempty"`
	JobID   int64      `json:"job_id,omitempty"`
	Since   time.Time  `json:"since"`
	Reason  string     `json:"reason,omitempty"`
	RetryAt *time.Time `json:"retry_at,omitempty"`
	Adopted bool       `json:"adopted,omitempty"`
	Worker  string     `json:"worker,omitempty"` // the fleet's Mac its VM is on
}

// JobStatus is one job in demand, or parked behind an approval.
type JobStatus struct {
	JobID      int64     `json:"job_id"`
	RunID      int64     `json:"run_id"`
	Repository string    `json:"repository"`
	Labels     []string  `json:"labels"`
	QueuedAt   time.Time `json:"queued_at"`
	Reason     string    `json:"reason"`
}

// RebuildStatus is the nightly rebuild's state.
type RebuildStatus struct {
	State         string     `json:"state"` // disabled, idle, or what it does now
	Since         *time.Time `json:"since,omitempty"`
	NextAt        *time.Time `json:"next_at,omitempty"`
	LastResult    string     `json:"last_result,omitempty"`
	LastAt        *time.Time `json:"last_at,omitempty"`
	LastSuccessAt *time.Time `json:"last_success_at,omitempty"`
	HoldsSlot     int        `json:"holds_slot"` // -1 when none
}

// RunnerStatus is what Tarty knows of the actions runner baked into the
// runner image, against the version GitHub asks for. It is set by whoever
// checks it (SetRunnerStatus); the scheduler only reports it.
type RunnerStatus struct {
	ImageVersion string     `json:"image_version,omitempty"` // in the runner image
	Latest       string     `json:"latest,omitempty"`        // the newest release, or what the server asks for
	BehindDays   float64    `json:"behind_days"`             // since the first release newer than the image's; 0 when current
	Note         string     `json:"note,omitempty"`          // e.g. why the latest is unknown
	CheckedAt    *time.Time `json:"checked_at,omitempty"`
}

// GitHubStatus is what Tarty knows of GitHub's side.
type GitHubStatus struct {
	RateLimitRemaining int  `json:"rate_limit_remaining"`
	Polled             bool `json:"polled"` // a poll reached GitHub since start
}

// Refusal is a request the scheduler turned down, with the reason (the admin
// listener answers it 409).
type Refusal string

func (r Refusal) Error() string { return string(r) }

// Refused marks the error as a refusal rather than a failure.
func (Refusal) Refused() bool { return true }

// ErrNotRunning is returned by requests when the scheduler's loop is not running.
var ErrNotRunning = errors.New("scheduler is not running")

type request struct {
	kind  string
	arg   string
	reply chan any
}

// ask sends a request to the owner loop and waits for its answer.
func (s *Scheduler) ask(ctx context.Context, kind string, arg ...string) (any, error) {
	r := request{kind: kind, reply: make(chan any, 1)}
	if len(arg) > 0 {
		r.arg = arg[0]
	}
	select {
	case s.requests <- r:
	case <-s.done:
		return nil, ErrNotRunning
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case v := <-r.reply:
		if err, ok := v.(error); ok {
			return nil, err
		}
		return v, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Status returns a snapshot of the scheduler.
func (s *Scheduler) Status(ctx context.Context) (Status, error) {
	v, err := s.ask(ctx, "status")
	if err != nil {
		return Status{}, err
	}
	st := v.(Status)
	if f, ok := s.backend.(Fleet); ok {
		st.addFleet(ctx, f)
	}
	return st, nil
}

// addFleet adds the fleet's workers and each slot's worker (I/O, outside the owner loop).
func (st *Status) addFleet(ctx context.Context, f Fleet) {
	ws, err := f.Workers(ctx)
	if err != nil {
		st.WorkersError = err.Error()
		return
	}
	st.Workers = ws
	for i := range st.Slots {
		for _, w := range ws {
			if slices.Contains(w.VMs, st.Slots[i].VM) && st.Slots[i].VM != "" {
				st.Slots[i].Worker = w.Name
			}
		}
	}
}

// Reconcile asks for a poll now (it runs after the one in flight, if any).
func (s *Scheduler) Reconcile(ctx context.Context) error {
	_, err := s.ask(ctx, "reconcile")
	return err
}

// handle answers a request in the owner goroutine.
func (s *Scheduler) handle(r request) {
	now := s.opts.Now()
	switch r.kind {
	case "status":
		r.reply <- s.snapshot(now)
	case "reconcile":
		if s.core.draining {
			r.reply <- Refusal("the scheduler is shutting down")
			return
		}
		s.core.nextPoll = now
		s.core.pollAgain = s.core.polling
		r.reply <- struct{}{}
	default:
		if !s.handleRebuild(now, r) {
			r.reply <- fmt.Errorf("unknown request %q", r.kind)
		}
	}
}

func (s *Scheduler) snapshot(now time.Time) Status {
	c := s.core
	st := Status{
		Capacity:   max(0, min(c.opts.Max, c.capacity.Slots)),
		MaxRunners: c.opts.Max,
		Warm:       c.opts.Warm,
		ForeignVMs: append([]string{}, c.capacity.Foreign...),
		Draining:   c.draining,
		GitHub:     GitHubStatus{RateLimitRemaining: int(s.rateRemaining.Load()), Polled: c.polled},
		Now:        now,
		Slots:      []SlotStatus{},
		Queued:     []JobStatus{},
	}
	st.Ready, st.NotReady = c.readiness()
	if c.launchAt.After(now) {
		t := c.launchAt
		st.LaunchHeld = &t
	}
	st.RunnersGone = len(c.removals)
	for _, sl := range c.slots {
		ss := SlotStatus{Index: sl.index, State: sl.state, VM: sl.vm, JobID: sl.jobID, Since: sl.since,
			Reason: sl.reason, Adopted: sl.adopted}
		if sl.runnerID != 0 {
			ss.Runner = sl.vm
		}
		if sl.state == SlotBackoff || sl.state == SlotDegraded {
			t := sl.retryAt
			ss.RetryAt = &t
		}
		st.Slots = append(st.Slots, ss)
	}
	st.Queued = c.queuedStatus(now)
	st.Rebuild = c.rebuildStatus(s.images != nil)
	if r := s.runnerStatus.Load(); r != nil {
		st.Runner = *r
	}
	return st
}

// readiness is what /readyz answers: ready once start-up recovery worked and
// a poll reached GitHub.
func (c *core) readiness() (bool, string) {
	switch {
	case !c.recovered:
		return false, "start-up recovery has not finished (is tart working? see the log)"
	case !c.polled:
		return false, "the first reconcile poll has not reached GitHub yet"
	}
	return true, ""
}

// queuedStatus lists the jobs in demand, oldest first, each with the reason
// it waits, then the parked ones.
func (c *core) queuedStatus(now time.Time) []JobStatus {
	var active, parked []*job
	for _, j := range c.jobs {
		if j.waiting {
			parked = append(parked, j)
		} else {
			active = append(active, j)
		}
	}
	byAge := func(js []*job) {
		sort.Slice(js, func(a, b int) bool {
			ta, tb := js[a].ev.CreatedAt, js[b].ev.CreatedAt
			if ta.Equal(tb) {
				return js[a].ev.JobID < js[b].ev.JobID
			}
			return ta.Before(tb)
		})
	}
	byAge(active)
	byAge(parked)
	idle, launching := 0, 0
	for _, s := range c.slots {
		switch {
		case s.state == SlotIdle && s.jobDoneAt.IsZero():
			idle++
		case s.state == SlotLaunching:
			launching++
		}
	}
	general := c.waitReason(now)
	out := []JobStatus{}
	for k, j := range active {
		reason := general
		switch {
		case k < idle:
			reason = "a runner is listening; waiting for GitHub to assign the job"
		case k < idle+launching:
			reason = "a runner VM is booting for it"
		}
		out = append(out, jobStatus(j, reason))
	}
	for _, j := range parked {
		out = append(out, jobStatus(j, "waiting for an approval (environment protection rule); not demand yet"))
	}
	return out
}

func jobStatus(j *job, reason string) JobStatus {
	at := j.ev.CreatedAt
	if at.IsZero() {
		at = j.firstSeen
	}
	return JobStatus{JobID: j.ev.JobID, RunID: j.ev.RunID, Repository: j.ev.Repository,
		Labels: append([]string{}, j.ev.Labels...), QueuedAt: at, Reason: reason}
}

// waitReason says why a job that no runner covers is not getting one.
func (c *core) waitReason(now time.Time) string {
	switch {
	case c.draining:
		return "Tarty is shutting down"
	case !c.recovered:
		return "start-up recovery has not finished"
	case c.rebuild.hold:
		return "the nightly rebuild is promoting the new image (launches wait a few seconds)"
	}
	for _, s := range c.slots {
		if s.state == SlotDegraded && s.retryAt.After(now) {
			return "degraded: " + s.reason
		}
	}
	if c.launchAt.After(now) {
		for _, s := range c.slots {
			if s.state == SlotBackoff && s.reason != "" {
				return "launch failing, retried at " + c.launchAt.UTC().Format(time.RFC3339) + ": " + s.reason
			}
		}
		return "launches held until " + c.launchAt.UTC().Format(time.RFC3339)
	}
	capacity := min(c.opts.Max, c.capacity.Slots)
	switch {
	case c.rebuild.slot >= 0 || c.rebuild.wanted:
		return "at capacity: the nightly rebuild holds a slot"
	case len(c.capacity.Foreign) > 0 && c.capacity.Slots < c.opts.Max:
		return fmt.Sprintf("at capacity: %d foreign VM(s) take room (%v)", len(c.capacity.Foreign), c.capacity.Foreign)
	}
	return fmt.Sprintf("at capacity: %d of %d runner VMs in use", c.activeVMs(nil), capacity)
}

func (c *core) rebuildStatus(available bool) RebuildStatus {
	rb := c.rebuild
	ptr := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	out := RebuildStatus{State: "idle", NextAt: ptr(rb.nextAt), LastResult: rb.lastResult,
		LastAt: ptr(rb.lastAt), LastSuccessAt: ptr(rb.lastSuccess), HoldsSlot: rb.slot}
	switch {
	case rb.running:
		out.State, out.Since = rb.phase, ptr(rb.since)
	case !available:
		out.State = "not available with this backend"
	case !rb.enabled:
		out.State = "disabled"
	}
	return out
}

// SetRunnerStatus records the runner image's runner version and how far it
// is behind, for /status. Safe from any goroutine.
func (s *Scheduler) SetRunnerStatus(r RunnerStatus) { s.runnerStatus.Store(&r) }
