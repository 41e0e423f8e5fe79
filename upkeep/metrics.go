package upkeep

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Redelivery results (tarty_webhook_redeliveries_total{result}): what
// GitHub said to the request, then what became of the attempt.
const (
	ResultAccepted    = "accepted"     // GitHub accepted the request (202)
	ResultRefused     = "refused"      // GitHub refused it (permission, a delivery too old)
	ResultError       = "error"        // it failed (rate limit, 5xx, network): asked again next sweep
	ResultDelivered   = "delivered"    // the attempt reached Tarty
	ResultFailedAgain = "failed_again" // the attempt failed too: not asked again
)

// Sweep results (tarty_webhook_redelivery_sweeps_total{result}).
const (
	SweepOK           = "ok"
	SweepNoPermission = "no_permission"
	SweepNoHook       = "no_hook"
	SweepError        = "error"
)

// Metrics are the upkeep's Prometheus metrics; every label value is
// exported from the start.
type Metrics struct {
	behindDays    prometheus.Gauge
	info          *prometheus.GaugeVec
	earlyRebuilds prometheus.Counter
	redeliveries  *prometheus.CounterVec
	sweeps        *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg (a private registry when nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		behindDays: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tarty_runner_image_behind_days",
			Help: "Days since GitHub published the first actions runner release newer than the runner image's (0 when current or unknown; GitHub stops sending jobs to a runner 30 days behind)."}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tarty_runner_image_info",
			Help: "1 for the runner image's actions runner version and the latest GitHub offers (\"unknown\" until known)."},
			[]string{"image", "version", "latest"}),
		earlyRebuilds: prometheus.NewCounter(prometheus.CounterOpts{Name: "tarty_runner_early_rebuilds_total",
			Help: "Rebuilds asked for at a quiet moment because the image's actions runner was older than rebuild.runner_max_age."}),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tarty_webhook_redeliveries_total",
			Help: "Redeliveries of failed workflow_job deliveries asked of GitHub, by what GitHub answered (accepted, refused, error) and what became of the attempt (delivered, failed_again)."},
			[]string{"result"}),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tarty_webhook_redelivery_sweeps_total",
			Help: "Looks at the webhook's recent deliveries, by result (ok, no_permission, no_hook, error)."},
			[]string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.behindDays, m.info, m.earlyRebuilds, m.redeliveries, m.sweeps} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{ResultAccepted, ResultRefused, ResultError, ResultDelivered, ResultFailedAgain} {
		m.redeliveries.WithLabelValues(r)
	}
	for _, r := range []string{SweepOK, SweepNoPermission, SweepNoHook, SweepError} {
		m.sweeps.WithLabelValues(r)
	}
	return m, nil
}

func (m *Metrics) setRunner(image, version, latest string, behindDays float64) {
	if m == nil {
		return
	}
	if version == "" {
		version = "unknown"
	}
	if latest == "" {
		latest = "unknown"
	}
	m.behindDays.Set(behindDays)
	m.info.Reset()
	m.info.WithLabelValues(image, version, latest).Set(1)
}

func (m *Metrics) earlyRebuild() {
	if m != nil {
		m.earlyRebuilds.Inc()
	}
}

func (m *Metrics) redelivery(result string) {
	if m != nil {
		m.redeliveries.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) sweep(result string) {
	if m != nil {
		m.sweeps.WithLabelValues(result).Inc()
	}
}
