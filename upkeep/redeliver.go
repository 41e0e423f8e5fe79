package upkeep

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty/ghapi"
)

// HookSource is what the redelivery asks GitHub (*ghapi.Client).
type HookSource interface {
	FindHook(ctx context.Context, id int64, path string) (ghapi.Hook, error)
	HookDeliveries(ctx context.Context, h ghapi.Hook, afterID int64, since time.Time, max int) ([]ghapi.HookDelivery, bool, error)
	RedeliverHookDelivery(ctx context.Context, h ghapi.Hook, deliveryID int64) error
}

// Defaults of the redelivery's bounds.
const (
	// DefaultMaxAge: github.com keeps deliveries for redelivery three days.
	DefaultMaxAge = 3 * 24 * time.Hour
	// DefaultMaxPerSweep bounds the redeliveries asked in one sweep; the
	// rest wait for the next (MinInterval later).
	DefaultMaxPerSweep = 50
	// DefaultMaxListed bounds the deliveries read in one sweep (20 pages).
	DefaultMaxListed = 2000
	// DefaultMinInterval is the least time between two sweeps after the
	// one at start.
	DefaultMinInterval = 10 * time.Minute
)

// RedeliverOptions configure a Redeliverer.
type RedeliverOptions struct {
	GitHub HookSource
	// HookID is github.hook_id (0: find the hook by Path).
	HookID int64
	// Path is server.webhook_path.
	Path    string
	Store   *Store
	Metrics *Metrics
	Logger  zerolog.Logger
	Now     func() time.Time

	MaxAge      time.Duration // default DefaultMaxAge
	MaxPerSweep int           // default DefaultMaxPerSweep
	MaxListed   int           // default DefaultMaxListed
	MinInterval time.Duration // default DefaultMinInterval
}

// Redeliverer asks GitHub to redeliver the workflow_job deliveries that
// failed while Tarty could not take them (GitHub never retries by itself):
// at start, and after a gap (Gap: the poller found a job no webhook
// announced), at most once per MinInterval. Each failed delivery is asked
// once, oldest first; the writes are spaced by the GitHub client.
type Redeliverer struct {
	o   RedeliverOptions
	log zerolog.Logger
	gap chan struct{}

	mu     sync.Mutex // one sweep at a time
	hook   *ghapi.Hook
	warned map[string]bool // sweep results whose problem was logged once
}

// NewRedeliverer builds a Redeliverer; it starts nothing.
func NewRedeliverer(o RedeliverOptions) *Redeliverer {
	if o.Now == nil {
		o.Now = time.Now
	}
	setDefault(&o.MaxAge, DefaultMaxAge)
	setDefault(&o.MinInterval, DefaultMinInterval)
	if o.MaxPerSweep <= 0 {
		o.MaxPerSweep = DefaultMaxPerSweep
	}
	if o.MaxListed <= 0 {
		o.MaxListed = DefaultMaxListed
	}
	return &Redeliverer{o: o, log: o.Logger.With().Str("component", "redelivery").Logger(),
		gap: make(chan struct{}, 1), warned: map[string]bool{}}
}

// Gap says deliveries may have failed (the scheduler's OnMissedJob). It
// never blocks.
func (r *Redeliverer) Gap() {
	select {
	case r.gap <- struct{}{}:
	default:
	}
}

// Run sweeps at once, then after each Gap, while a sweep left work, and
// after a sweep that failed for a passing reason (GitHub unreachable at
// start), never twice within MinInterval, until ctx ends.
func (r *Redeliverer) Run(ctx context.Context) error {
	pending := true
	var last time.Time
	for {
		var t *time.Timer
		var wake <-chan time.Time
		if pending {
			wait := time.Duration(0)
			if !last.IsZero() {
				wait = last.Add(r.o.MinInterval).Sub(r.o.Now())
			}
			if wait <= 0 {
				rep, err := r.Sweep(ctx)
				last, pending = r.o.Now(), rep.More || retryable(err)
				if ctx.Err() != nil {
					return nil
				}
				continue
			}
			t = time.NewTimer(wait)
			wake = t.C
		}
		select {
		case <-ctx.Done():
		case <-r.gap:
			pending = true
		case <-wake:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// retryable reports a sweep that failed for a reason that may pass by
// itself (GitHub or the network down, a rate limit): try again after
// MinInterval. A missing permission or webhook waits for the next gap.
func retryable(err error) bool {
	return err != nil && sweepResult(err) == SweepError && !errors.Is(err, context.Canceled)
}

// sweepResult is the sweep result an error means: no permission, no
// (single) webhook, or another error.
func sweepResult(err error) string {
	switch {
	case errors.Is(err, ghapi.ErrHookAccess):
		return SweepNoPermission
	case errors.Is(err, ghapi.ErrHookNotFound), errors.Is(err, ghapi.ErrHookAmbiguous):
		return SweepNoHook
	}
	return SweepError
}

// SweepReport is what one sweep did.
type SweepReport struct {
	Hook        ghapi.Hook
	Listed      int      // deliveries read
	Redelivered []string // GUIDs whose redelivery GitHub accepted, oldest first
	Refused     int      // requests GitHub refused
	Delivered   int      // earlier attempts seen to have arrived
	FailedAgain int      // earlier attempts seen to have failed (not asked again)
	More        bool     // work left for another sweep
}

// Sweep looks at the hook's deliveries since the last one examined and
// asks GitHub to redeliver each failed workflow_job delivery (one per GUID,
// never one already asked for, none older than MaxAge), oldest first, at
// most MaxPerSweep.
func (r *Redeliverer) Sweep(ctx context.Context) (SweepReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rep SweepReport
	hook, err := r.findHook(ctx)
	if err != nil {
		return rep, err
	}
	rep.Hook = hook
	now := r.o.Now()
	st := r.o.Store.redeliver()
	if st.HookID != hook.ID {
		st.HookID, st.LastDeliveryID = hook.ID, 0
	}
	ds, complete, err := r.o.GitHub.HookDeliveries(ctx, hook, st.LastDeliveryID, now.Add(-r.o.MaxAge), r.o.MaxListed)
	if err != nil {
		r.hook = nil // deleted or recreated: find it again next time
		r.o.Metrics.sweep(r.problem(err))
		return rep, err
	}
	rep.Listed = len(ds)
	if !complete {
		r.log.Warn().Int("listed", len(ds)).Int64("hook", hook.ID).
			Msg("more deliveries since the last look than one sweep reads: older failures were not examined")
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].ID < ds[j].ID }) // oldest first
	newest := st.LastDeliveryID
	if len(ds) > 0 {
		newest = max(newest, ds[len(ds)-1].ID)
	}

	// What became of earlier requests, and which GUIDs got through anyway.
	ok := map[string]bool{}
	for _, d := range ds {
		if d.OK() {
			ok[d.GUID] = true
		}
		a, asked := st.Attempted[d.GUID]
		if !d.Redelivery || !asked || a.Outcome != "" || d.ID <= a.AfterID {
			continue
		}
		a.Outcome = ResultFailedAgain
		if d.OK() {
			a.Outcome = ResultDelivered
			rep.Delivered++
			r.log.Info().Int64("delivery_id", d.ID).Str("guid", d.GUID).Msg("a redelivered delivery arrived")
		} else {
			rep.FailedAgain++
			r.log.Warn().Int64("delivery_id", d.ID).Str("guid", d.GUID).Str("status", d.Status).
				Msg("a redelivered delivery failed again: it is not asked for again")
		}
		st.Attempted[d.GUID] = a
		r.o.Metrics.redelivery(a.Outcome)
	}

	var todo []ghapi.HookDelivery
	seen := map[string]bool{}
	for _, d := range ds {
		if d.Event != "workflow_job" || d.OK() || ok[d.GUID] || seen[d.GUID] {
			continue
		}
		seen[d.GUID] = true
		if _, asked := st.Attempted[d.GUID]; asked {
			continue
		}
		todo = append(todo, d)
	}

	watermark, result := newest, SweepOK
	for i, d := range todo {
		if i >= r.o.MaxPerSweep {
			watermark, rep.More = d.ID-1, true
			break
		}
		err := r.o.GitHub.RedeliverHookDelivery(ctx, hook, d.ID)
		if err == nil {
			st.Attempted[d.GUID] = attempt{DeliveryID: d.ID, At: r.o.Now(), AfterID: newest}
			rep.Redelivered = append(rep.Redelivered, d.GUID)
			r.o.Metrics.redelivery(ResultAccepted)
			r.log.Info().Int64("delivery_id", d.ID).Str("guid", d.GUID).Str("action", d.Action).
				Time("delivered_at", d.DeliveredAt).Str("status", d.Status).Msg("asked GitHub to redeliver a failed delivery")
			r.save(st)
			continue
		}
		var ae *ghapi.APIError
		switch {
		case errors.Is(err, ghapi.ErrHookAccess):
			r.o.Metrics.redelivery(ResultRefused)
			rep.Refused++
			result = r.problem(err)
			watermark = d.ID - 1
		case errors.As(err, &ae) && !ae.Temporary():
			// GitHub will not redeliver this one (too old, say): not again.
			r.o.Metrics.redelivery(ResultRefused)
			rep.Refused++
			st.Attempted[d.GUID] = attempt{DeliveryID: d.ID, At: r.o.Now(), AfterID: newest, Outcome: ResultRefused}
			r.log.Warn().Err(err).Int64("delivery_id", d.ID).Str("guid", d.GUID).Msg("GitHub refused to redeliver a delivery")
			r.save(st)
			continue
		default: // a rate limit, a 5xx, the network, shutting down: the next sweep asks again
			r.o.Metrics.redelivery(ResultError)
			r.log.Warn().Err(err).Int64("delivery_id", d.ID).Msg("asking for a redelivery; the next sweep tries again")
			watermark, rep.More = d.ID-1, true
		}
		break
	}
	st.LastDeliveryID = max(watermark, st.LastDeliveryID)
	st.LastSweepAt = now
	for guid, a := range st.Attempted {
		if now.Sub(a.At) > r.o.MaxAge+24*time.Hour {
			delete(st.Attempted, guid)
		}
	}
	r.save(st)
	r.o.Metrics.sweep(result)
	if len(rep.Redelivered) > 0 || rep.Refused > 0 || rep.Delivered > 0 || rep.FailedAgain > 0 {
		r.log.Info().Int64("hook", hook.ID).Int("listed", rep.Listed).Int("redelivered", len(rep.Redelivered)).
			Int("refused", rep.Refused).Int("arrived", rep.Delivered).Int("failed_again", rep.FailedAgain).
			Bool("more", rep.More).Msg("webhook redelivery sweep")
	} else {
		r.log.Debug().Int64("hook", hook.ID).Int("listed", rep.Listed).Msg("webhook redelivery sweep: nothing to redeliver")
	}
	return rep, nil
}

func (r *Redeliverer) save(st redeliverState) {
	if err := r.o.Store.setRedeliver(st); err != nil {
		r.log.Warn().Err(err).Msg("recording the redelivery state")
	}
}

// findHook returns the webhook, looked up once.
func (r *Redeliverer) findHook(ctx context.Context) (ghapi.Hook, error) {
	if r.hook != nil {
		return *r.hook, nil
	}
	h, err := r.o.GitHub.FindHook(ctx, r.o.HookID, r.o.Path)
	if err != nil {
		r.o.Metrics.sweep(r.problem(err))
		return ghapi.Hook{}, err
	}
	r.hook = &h
	r.log.Info().Int64("hook", h.ID).Str("where", h.Where()).Msg("webhook found: failed deliveries will be redelivered")
	return h, nil
}

// problem logs why a sweep could not work, each kind once (a missing
// permission does not go away by itself), and returns the sweep's result.
func (r *Redeliverer) problem(err error) string {
	result := sweepResult(err)
	switch {
	case result == SweepError:
		r.log.Warn().Err(err).Msg("looking at the webhook's deliveries; trying again later")
	case r.warned[result]:
		r.log.Debug().Err(err).Msg("webhook redelivery unavailable")
	default:
		r.warned[result] = true
		r.log.Warn().Err(err).Msg(Cost)
	}
	return result
}

// Cost is what running without redelivery costs, for logs and doctor.
const Cost = "Tarty cannot redeliver the webhook deliveries that failed while it was down: " +
	"their in_progress and completed events are lost (wait metrics, idle runners found only by the idle timeout) " +
	"and queued jobs wait for the next poll (reconcile.interval); everything else works"
