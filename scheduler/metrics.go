package scheduler

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LaunchStages are the values of tarty_vm_launch_failures_total{stage}.
var LaunchStages = []string{"create", "boot", "address", "ssh", "start", "register", "runner", reasonBootTimeout}

// metrics are the scheduler's Prometheus metrics (DESIGN.md section 4). Every
// label value known in advance is initialised, so dashboards see zeros.
type metrics struct {
	jobsQueued     prometheus.Gauge
	slots          *prometheus.GaugeVec
	bootSeconds    prometheus.Histogram
	jobWait        prometheus.Histogram
	launchFailures *prometheus.CounterVec
	missedJobs     prometheus.Counter
	pollErrors     *prometheus.CounterVec
	limitLeaks     prometheus.Counter
	rateLimit      prometheus.Gauge
	capacity       prometheus.Gauge
	rebuilds       *prometheus.CounterVec
	rebuildSuccess prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		jobsQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tarty_jobs_queued", Help: "Matching jobs queued on GitHub and not yet taken by a runner."}),
		slots: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tarty_slots", Help: "VM slots by state."}, []string{"state"}),
		bootSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tarty_vm_boot_seconds", Help: "From clone to the runner started in its VM.",
			Buckets: []float64{10, 15, 20, 25, 30, 40, 50, 60, 90, 120, 180, 300}}),
		jobWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tarty_job_wait_seconds", Help: "From a job's creation to its start on one of Tarty's runners.",
			Buckets: []float64{5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600}}),
		launchFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tarty_vm_launch_failures_total", Help: "Runner VM launches that failed, by the stage that failed."}, []string{"stage"}),
		missedJobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tarty_reconcile_missed_jobs_total", Help: "Queued jobs the poller found that no webhook had announced."}),
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tarty_reconcile_errors_total", Help: "Reconcile polls (kind=poll) or repositories (kind=repository) that could not be read."},
			[]string{"kind"}),
		limitLeaks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tarty_vm_limit_leaks_total", Help: "Two-VM limit errors while fewer VMs ran than the host allows (a leaked counter: reboot the Mac)."}),
		rateLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tarty_github_rate_limit_remaining", Help: "GitHub's X-RateLimit-Remaining on the last answer (-1 before any)."}),
		capacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tarty_capacity", Help: "Runner VMs Tarty may run at once now: min(runners.max, backend capacity)."}),
		rebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tarty_rebuild_total", Help: "Nightly rebuilds by result."}, []string{"result"}),
		rebuildSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tarty_rebuild_last_success_timestamp_seconds", Help: "When the last rebuild promoted a new runner image (Unix time; 0 = never since start)."}),
	}
	for _, c := range []prometheus.Collector{m.jobsQueued, m.slots, m.bootSeconds, m.jobWait, m.launchFailures,
		m.missedJobs, m.pollErrors, m.limitLeaks, m.rateLimit, m.capacity, m.rebuilds, m.rebuildSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("scheduler metrics: %w", err)
		}
	}
	for _, st := range SlotStates {
		m.slots.WithLabelValues(string(st))
	}
	for _, st := range LaunchStages {
		m.launchFailures.WithLabelValues(st)
	}
	m.pollErrors.WithLabelValues("poll")
	m.pollErrors.WithLabelValues("repository")
	for _, r := range RebuildResults {
		m.rebuilds.WithLabelValues(r)
	}
	m.rateLimit.Set(-1)
	return m, nil
}

func (m *metrics) observer() observer {
	return observer{
		bootTime:      func(d time.Duration) { m.bootSeconds.Observe(d.Seconds()) },
		jobWait:       func(d time.Duration) { m.jobWait.Observe(max(d, 0).Seconds()) },
		launchFailure: func(stage string) { m.launchFailures.WithLabelValues(stage).Inc() },
		missedJob:     m.missedJobs.Inc,
		limitLeak:     m.limitLeaks.Inc,
	}
}

// update sets the gauges from the state; called by the owner goroutine.
func (m *metrics) update(c *core) {
	m.jobsQueued.Set(float64(c.queued()))
	counts := map[SlotState]int{}
	for _, s := range c.slots {
		counts[s.state]++
	}
	for _, st := range SlotStates {
		m.slots.WithLabelValues(string(st)).Set(float64(counts[st]))
	}
	m.capacity.Set(float64(min(c.opts.Max, c.capacity.Slots)))
}
