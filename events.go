package tarty

import "time"

// JobAction is the top-level action of a workflow_job delivery (never the job's
// own status field: a real action=queued payload can carry status=waiting).
type JobAction string

// The workflow_job actions the scheduler reacts to.
const (
	ActionQueued     JobAction = "queued"
	ActionWaiting    JobAction = "waiting"
	ActionInProgress JobAction = "in_progress"
	ActionCompleted  JobAction = "completed"
)

// Valid reports whether a is one of the four workflow_job actions.
func (a JobAction) Valid() bool {
	switch a {
	case ActionQueued, ActionWaiting, ActionInProgress, ActionCompleted:
		return true
	}
	return false
}

// Source says who reported a job event.
type Source string

// Event sources.
const (
	SourceWebhook Source = "webhook"
	SourcePoller  Source = "poller"
)

// JobEvent is one observation of a GitHub Actions job, from a webhook delivery or
// from the reconciliation poller. Demand is keyed by JobID, never by event count.
type JobEvent struct {
	Source     Source
	Action     JobAction
	JobID      int64
	RunID      int64
	RunAttempt int64
	// Status is the job's own workflow_job.status (queued, waiting,
	// in_progress, completed). It can differ from Action: GitHub's first
	// delivery of a job behind an environment approval is action=queued with
	// status=waiting, and such a job is not demand until a later queued event
	// says status=queued. Empty means "as the action says".
	Status       string
	Labels       []string // the job's runs-on labels, as written in the workflow
	Repository   string   // owner/name
	Organization string   // the repository's owner login
	RunnerName   string   // set once a runner took the job (in_progress, completed)
	RunnerID     int64    // set with RunnerName
	CreatedAt    time.Time
	StartedAt    time.Time // when a runner took it; zero while queued
	DeliveryID   string    // X-GitHub-Delivery; empty for the poller
}

// StaleAfter is how long after its creation a queued job stops being demand:
// GitHub fails a job that stayed queued for 24 hours, so an older queued event
// (a replay, a very late redelivery) must not boot a VM.
const StaleAfter = 24 * time.Hour

// Stale reports whether ev announces a job created more than StaleAfter before now.
func (ev JobEvent) Stale(now time.Time) bool {
	return !ev.CreatedAt.IsZero() && now.Sub(ev.CreatedAt) > StaleAfter
}

// PollResult is what one reconciliation poll saw, per repository.
type PollResult struct {
	// Jobs are the queued jobs found (ActionQueued events from SourcePoller),
	// each with its own Status.
	Jobs []JobEvent
	// Complete lists the repositories (owner/name, as GitHub spells them) that
	// were read in full: only there may a job the poll did not see leave demand.
	Complete []string
	// Failed maps each repository that could not be read in full to why. Its
	// demand stays as it was.
	Failed map[string]error
}

// Runner is a self-hosted runner registration seen through the GitHub API.
type Runner struct {
	ID     int64
	Name   string
	Online bool // status "online"
	Busy   bool // running a job right now
}

// Capacity is what a backend can run right now.
type Capacity struct {
	// Slots is how many of Tarty's VMs may run at once (Tarty's own running
	// VMs included, foreign ones excluded), before runners.max.
	Slots int
	// Foreign names the VMs that are not Tarty's but count against the limit.
	Foreign []string
}

// VM is one of a VM backend's VMs.
type VM struct {
	Name    string
	Running bool
}

// Worker is one Mac of a fleet backend (an Orchard worker), as /status shows it.
type Worker struct {
	Name    string            `json:"name"`
	Online  bool              `json:"online"`
	Paused  bool              `json:"paused,omitempty"` // scheduling paused: takes no new VM
	Slots   int               `json:"slots"`            // VMs it may run at once
	Free    int               `json:"free_slots"`       // of them, free now
	Labels  map[string]string `json:"labels,omitempty"` // its labels
	Matches bool              `json:"matches"`          // online, unpaused, with Tarty's worker labels
	VMs     []string          `json:"vms,omitempty"`    // Tarty's VMs on it
}
