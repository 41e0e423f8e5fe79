package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the event label. Only these four exist, whatever a client sends in
// X-GitHub-Event, so the series count stays bounded.
const (
	eventWorkflowJob = "workflow_job"
	eventPing        = "ping"
	eventOther       = "other"   // any other event name
	eventUnknown     = "unknown" // no X-GitHub-Event header
)

// Values of the result label, one per way a request can end.
const (
	resultAccepted      = "accepted"       // 202, handed to the scheduler
	resultIgnoredLabels = "ignored_labels" // 202, runs-on labels are not Tarty's
	resultIgnoredScope  = "ignored_scope"  // 202, another organisation or repository
	resultIgnoredStale  = "ignored_stale"  // 202, queued for a job created more than tarty.StaleAfter ago (a replay)
	// 202, queued or waiting in a repository the runner group cannot serve (Options.Serves)
	resultIgnoredRunnerGroup = "ignored_runner_group"
	resultIgnoredAction      = "ignored_action" // 202, an action GitHub does not document for workflow_job
	resultIgnoredEvent       = "ignored_event"  // 202, a signed event other than workflow_job/ping
	resultDuplicate          = "duplicate"      // 202, X-GitHub-Delivery seen before
	resultPong               = "pong"           // 200, ping
	resultBadSignature       = "bad_signature"  // 401
	resultBadRequest         = "bad_request"    // 400
	resultTooLarge           = "too_large"      // 413
	resultOverloaded         = "overloaded"     // 503, the scheduler's queue stayed full
	resultBusy               = "busy"           // 503, no read slot: too many bodies being read at once
	resultNotFound           = "not_found"      // 404, another path
	resultBadMethod          = "bad_method"     // 405, another method on the webhook path
)

// initialSeries are exported as zero from the start, so dashboards and alerts
// see them before the first delivery.
var initialSeries = map[string][]string{
	eventWorkflowJob: {
		resultAccepted, resultIgnoredLabels, resultIgnoredScope, resultIgnoredStale, resultIgnoredRunnerGroup,
		resultIgnoredAction, resultDuplicate, resultBadSignature, resultBadRequest, resultTooLarge,
		resultOverloaded, resultBusy,
	},
	eventPing:  {resultPong, resultBadSignature, resultBadRequest, resultTooLarge, resultBusy},
	eventOther: {resultIgnoredEvent},
	// Scanners probing the listener send no X-GitHub-Event header.
	eventUnknown: {resultNotFound, resultBadMethod},
}

type metrics struct {
	deliveries *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tarty",
		Subsystem: "webhook",
		Name:      "deliveries_total",
		Help:      "Requests to the webhook listener by GitHub event (workflow_job, ping, other, unknown) and outcome.",
	}, []string{"event", "result"})}
	if err := reg.Register(m.deliveries); err != nil {
		return nil, fmt.Errorf("register tarty_webhook_deliveries_total: %w", err)
	}
	for event, results := range initialSeries {
		for _, r := range results {
			m.deliveries.WithLabelValues(event, r)
		}
	}
	return m, nil
}

// eventLabel maps an X-GitHub-Event value onto the bounded label set.
func eventLabel(event string) string {
	switch event {
	case eventWorkflowJob, eventPing:
		return event
	case "":
		return eventUnknown
	}
	return eventOther
}
