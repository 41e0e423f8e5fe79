package scheduler

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
	Source       Source
	Action       JobAction
	JobID        int64
	RunID        int64
	RunAttempt   int64
	Labels       []string // the job's runs-on labels, as written in the workflow
	Repository   string   // owner/name
	Organization string   // the repository's owner login
	RunnerName   string   // set once a runner took the job (in_progress, completed)
	CreatedAt    time.Time
	DeliveryID   string // X-GitHub-Delivery; empty for the poller
}
