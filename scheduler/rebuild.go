package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
)

// RebuildOptions configure the nightly rebuild (DESIGN.md section 2).
type RebuildOptions struct {
	Enabled       bool
	Base          string         // images.base: a local image or an OCI reference
	Command       string         // rebuild.command, run in a clone of the base over SSH
	VerifyCommand string         // rebuild.verify_command, run in a fresh boot of the result
	Hour          int            // rebuild.hour, local time
	Location      *time.Location // the local time zone (time.Local when nil)
	Timeout       time.Duration  // rebuild.timeout: bounds each command

	SlotWait     time.Duration // how long to wait for a slot before skipping tonight
	PullTimeout  time.Duration // one `tart pull`
	PullAttempts int
	ShutdownWait time.Duration // the guest's own shutdown, before a host stop
}

// Rebuild defaults.
const (
	DefaultRebuildTimeout = 2 * time.Hour
	DefaultSlotWait       = 6 * time.Hour
	DefaultPullTimeout    = 2 * time.Hour
	DefaultPullAttempts   = 3
	DefaultShutdownWait   = 3 * time.Minute
)

func (o *RebuildOptions) normalize() {
	if o.Location == nil {
		o.Location = time.Local
	}
	setDefault(&o.Timeout, DefaultRebuildTimeout)
	setDefault(&o.SlotWait, DefaultSlotWait)
	setDefault(&o.PullTimeout, DefaultPullTimeout)
	setDefault(&o.ShutdownWait, DefaultShutdownWait)
	if o.PullAttempts <= 0 {
		o.PullAttempts = DefaultPullAttempts
	}
}

// RebuildDiskNeeded is the free space the rebuild wants before it clones an
// image of size bytes: the clone can grow to the image's full size, plus a
// quarter of it (at least 1 GiB) for what rebuild.command installs and for
// tart's own files.
func RebuildDiskNeeded(size uint64) uint64 {
	return size + max(size/4, 1<<30)
}

func gb(n uint64) float64 { return float64(n) / 1e9 }

// nextRebuild is the first rebuild.hour strictly after now, in loc. On a
// night when that hour does not exist (clocks go forward) it is the hour
// after; when it exists twice (clocks go back) it is the first: either way
// the rebuild runs once that night.
func nextRebuild(now time.Time, hour int, loc *time.Location) time.Time {
	at := func(n time.Time) time.Time {
		t := time.Date(n.Year(), n.Month(), n.Day(), hour, 0, 0, 0, loc)
		if t.Hour() != hour {
			// The hour falls in the gap when clocks go forward: run when
			// the clock has passed it, not an hour early.
			t = time.Date(n.Year(), n.Month(), n.Day(), hour+1, 0, 0, 0, loc)
		}
		return t
	}
	n := now.In(loc)
	t := at(n)
	for !t.After(now) {
		n = n.AddDate(0, 0, 1)
		t = at(n)
	}
	return t
}

// Rebuild phases, shown in /status.
const (
	phasePull    = "pulling the base image"
	phaseDisk    = "checking free disk"
	phaseSlot    = "waiting for a slot"
	phaseBuild   = "building"
	phaseVerify  = "verifying"
	phasePromote = "promoting"
	phaseRollbk  = "rolling back"
)

// Rebuild results (tarty_rebuild_total{result}).
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
	ResultSkipped = "skipped"
)

// RebuildResults lists the results, for initialising the metric.
var RebuildResults = []string{ResultSuccess, ResultFailure, ResultSkipped}

// startRebuild marks a rebuild (or rollback) running; the next scheduled one
// is tomorrow's.
func (c *core) startRebuild(now time.Time, why string) {
	rb := &c.rebuild
	rb.running, rb.phase, rb.since = true, why, now
	if rb.enabled {
		rb.nextAt = nextRebuild(now, c.opts.Rebuild.Hour, c.opts.Rebuild.Location)
	}
}

// endRebuild records how a rebuild ended and releases whatever it held.
func (c *core) endRebuild(now time.Time, result string, err error, rollback bool) {
	rb := &c.rebuild
	c.releaseRebuildSlot(now)
	rb.running, rb.phase, rb.hold, rb.wanted = false, "", false, false
	if rollback {
		return
	}
	rb.lastAt = now
	rb.lastResult = result
	if err != nil {
		rb.lastResult = result + ": " + err.Error()
	}
	if result == ResultSuccess {
		rb.lastSuccess = now
	}
}

func (c *core) releaseRebuildSlot(now time.Time) {
	rb := &c.rebuild
	if rb.slot >= 0 && rb.slot < len(c.slots) {
		c.to(now, c.slots[rb.slot], seRelease)
	}
	rb.slot, rb.wanted = -1, false
	for _, s := range c.slots {
		s.reserved = false
	}
}

// ---- requests from the rebuild worker to the owner loop ----

// rbReserve asks for a slot and waits until the owner loop gives one.
func (s *Scheduler) rbReserve(ctx context.Context) error {
	_, err := s.ask(ctx, "rb-reserve")
	return err
}

// rbHold asks that no launch start, and waits until none is in flight.
func (s *Scheduler) rbHold(ctx context.Context) error {
	_, err := s.ask(ctx, "rb-hold")
	return err
}

// rbPhase shows what the rebuild does now. It goes through the same channel
// as the rebuild's other requests, so they are seen in order.
func (s *Scheduler) rbPhase(ctx context.Context, phase string) {
	s.ask(context.WithoutCancel(ctx), "rb-phase", phase) //nolint:errcheck // only fails once the loop left
}

// answerRebuild replies to the rebuild worker's pending requests once the
// state allows; the owner loop calls it after every decision.
func (s *Scheduler) answerRebuild() {
	rb := &s.core.rebuild
	if s.rbReserveReply != nil && rb.slot >= 0 {
		s.rbReserveReply <- struct{}{}
		s.rbReserveReply = nil
	}
	if s.rbHoldReply != nil && rb.hold {
		for _, sl := range s.core.slots {
			if sl.state == SlotLaunching {
				return
			}
		}
		s.rbHoldReply <- struct{}{}
		s.rbHoldReply = nil
	}
}

// handleRebuild answers the rebuild's requests in the owner goroutine.
func (s *Scheduler) handleRebuild(now time.Time, r request) bool {
	c := s.core
	switch r.kind {
	case "rebuild", "rollback":
		switch {
		case s.images == nil:
			r.reply <- Refusal("the nightly rebuild does not apply to this backend: its images live in a registry")
		case c.draining:
			r.reply <- Refusal("the scheduler is shutting down")
		case c.rebuild.running && r.kind == "rebuild" && c.rebuild.phase != phaseRollbk:
			r.reply <- struct{}{} // coalesced with the one pending or running
		case c.rebuild.running:
			r.reply <- Refusal("a rebuild or rollback is in progress (" + c.rebuild.phase + ")")
		case r.kind == "rebuild":
			c.startRebuild(now, "requested")
			s.startRebuildWorker("requested")
			r.reply <- struct{}{}
		default:
			c.startRebuild(now, phaseRollbk)
			s.spawn(func() {
				err := s.rollback(s.base)
				// The caller hears once the loop has seen the rollback end.
				s.send(func(now time.Time) {
					s.core.endRebuild(now, "", nil, true)
					if err != nil {
						r.reply <- err
					} else {
						r.reply <- struct{}{}
					}
				})
			})
		}
	case "rb-phase":
		c.rebuild.phase = r.arg
		r.reply <- struct{}{}
	case "rb-reserve":
		c.rebuild.wanted = true
		c.rebuild.phase = phaseSlot
		s.rbReserveReply = r.reply
	case "rb-hold":
		c.rebuild.hold = true
		s.rbHoldReply = r.reply
	case "rb-unhold":
		c.rebuild.hold = false
		r.reply <- struct{}{}
	case "rb-release":
		c.releaseRebuildSlot(now)
		r.reply <- struct{}{}
	default:
		return false
	}
	return true
}

// Rebuild asks for a rebuild now; one pending or running absorbs it.
func (s *Scheduler) Rebuild(ctx context.Context) error {
	_, err := s.ask(ctx, "rebuild")
	return err
}

// Rollback swaps <runner>-previous back into place and waits for it.
func (s *Scheduler) Rollback(ctx context.Context) error {
	_, err := s.ask(ctx, "rollback")
	return err
}

func (s *Scheduler) startRebuildWorker(trigger string) {
	ctx, cancel := context.WithCancel(s.base)
	s.rbCancel = cancel
	s.spawn(func() {
		defer cancel()
		start := s.opts.Now()
		result, err := s.rebuildOnce(ctx, trigger)
		log := s.log.With().Str("component", "rebuild").Str("result", result).Dur("took", s.opts.Now().Sub(start)).Logger()
		if err != nil {
			log.Error().Err(err).Msg("nightly rebuild did not promote a new image; the runner image is unchanged")
		} else {
			log.Info().Msg("nightly rebuild promoted a new runner image")
		}
		s.met.rebuilds.WithLabelValues(result).Inc()
		if result == ResultSuccess {
			s.met.rebuildSuccess.Set(float64(s.opts.Now().Unix()))
		}
		s.send(func(now time.Time) { s.core.endRebuild(now, result, err, false) })
	})
}

// rebuildOnce runs one rebuild from pull to promote. It returns the result
// label and, unless it succeeded, why not. Whatever happens, the build VM is
// deleted and the runner image and its host key are left as they were unless
// the promote completed.
func (s *Scheduler) rebuildOnce(ctx context.Context, trigger string) (string, error) {
	o := s.opts.Rebuild
	log := s.log.With().Str("component", "rebuild").Str("base", o.Base).Str("trigger", trigger).Logger()
	log.Info().Msg("nightly rebuild starting")
	s.builtVersion = ""

	// A pull is no VM and can take an hour: it holds no slot.
	baseChanged := false
	if s.images.Remote(o.Base) {
		s.rbPhase(ctx, phasePull)
		changed, err := s.pullBase(ctx, log)
		if err != nil {
			return ResultFailure, fmt.Errorf("pull %s: %w", o.Base, err)
		}
		baseChanged = changed
	} else if ok, err := s.images.Exists(ctx, o.Base); err != nil || !ok {
		return ResultFailure, errors.Join(fmt.Errorf("base image %s not found", o.Base), err)
	}

	s.rbPhase(ctx, phaseDisk)
	if err := s.checkDisk(ctx, o.Base); err != nil {
		return ResultFailure, err
	}

	wait, cancel := context.WithTimeout(ctx, o.SlotWait)
	err := s.rbReserve(wait)
	cancel()
	defer s.ask(context.WithoutCancel(ctx), "rb-release") //nolint:errcheck // the loop may have left; nothing to release then
	if err != nil {
		if ctx.Err() == nil {
			return ResultSkipped, fmt.Errorf("no slot freed within %s (runners kept busy); skipped tonight", o.SlotWait)
		}
		return ResultFailure, err
	}

	name := s.opts.Prefix + "-build-" + s.opts.Now().UTC().Format("20060102T150405")
	log = log.With().Str("vm", name).Logger()
	verifyKey := ""
	defer func() {
		// On success the build VM was renamed into the runner image, so this
		// finds nothing.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		s.backend.Stop(cctx, name) //nolint:errcheck // best effort; Delete reports
		if err := s.images.Delete(cctx, name); err != nil {
			log.Warn().Err(err).Msg("deleting the build VM")
		}
		if verifyKey != "" {
			s.hostKeys.ForgetHostKey(verifyKey) //nolint:errcheck // a stale entry for a name never reused
		}
	}()

	if baseChanged {
		// A new digest may carry a new host key: trust it once, for it.
		log.Warn().Msg("the base image changed with the pull: its SSH host key will be trusted anew")
		if err := s.hostKeys.ForgetHostKey(o.Base); err != nil {
			return ResultFailure, err
		}
	}
	s.rbPhase(ctx, phaseBuild)
	if err := s.build(ctx, log, name); err != nil {
		return ResultFailure, err
	}

	keyFrom := o.Base // what the build VM presented, checked against the base's key
	if o.VerifyCommand != "" {
		s.rbPhase(ctx, phaseVerify)
		verifyKey = name
		if err := s.verify(ctx, log, name); err != nil {
			return ResultFailure, fmt.Errorf("verify: %w", err)
		}
		keyFrom = name // the built image's own key, learnt by the verify boot
	}

	s.rbPhase(ctx, phasePromote)
	if err := s.rbHold(ctx); err != nil {
		return ResultFailure, err
	}
	defer s.ask(context.WithoutCancel(ctx), "rb-unhold") //nolint:errcheck // the loop may have left
	if err := s.promote(ctx, log, name, keyFrom); err != nil {
		return ResultFailure, fmt.Errorf("promote: %w", err)
	}
	return ResultSuccess, nil
}

func (s *Scheduler) pullBase(ctx context.Context, log zerolog.Logger) (bool, error) {
	o := s.opts.Rebuild
	b := newBackoff(time.Minute, 15*time.Minute)
	var changed bool
	attempt := 0
	err := backoff.Retry(func() error {
		attempt++
		pctx, cancel := context.WithTimeout(ctx, o.PullTimeout)
		defer cancel()
		w := newLineLogger(log.With().Str("step", "pull").Logger())
		defer w.Flush()
		c, err := s.images.Pull(pctx, o.Base, w)
		if err != nil {
			log.Warn().Err(err).Int("attempt", attempt).Msg("pull failed")
			if attempt >= o.PullAttempts || ctx.Err() != nil {
				return backoff.Permanent(err)
			}
			return err
		}
		changed = c
		return nil
	}, backoff.WithContext(b, ctx))
	return changed, err
}

func (s *Scheduler) checkDisk(ctx context.Context, image string) error {
	size, err := s.images.SizeBytes(ctx, image)
	if err != nil {
		return fmt.Errorf("size of %s: %w", image, err)
	}
	free, err := s.images.FreeBytes(ctx)
	if err != nil {
		return fmt.Errorf("free disk: %w", err)
	}
	if need := RebuildDiskNeeded(size); free < need {
		return fmt.Errorf("not enough free disk: a clone of %s may take %.1f GB and %.1f GB are kept spare, but %.1f GB are free",
			image, gb(size), gb(need-size), gb(free))
	}
	return nil
}

// build clones the base, boots it, runs rebuild.command in it over SSH with
// its output in the log, and shuts the guest down from inside.
func (s *Scheduler) build(ctx context.Context, log zerolog.Logger, name string) error {
	o := s.opts.Rebuild
	return s.inVM(ctx, log, o.Base, name, o.Base, func(ctx context.Context, addr string) error {
		cctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		log.Info().Msg("running rebuild.command in the build VM")
		out := newLineLogger(log.With().Str("step", "command").Logger())
		defer out.Flush()
		if err := s.guest.Run(cctx, o.Base, addr, o.Command, nil, out, out); err != nil {
			if errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
				return fmt.Errorf("rebuild.command did not finish within rebuild.timeout (%s)", o.Timeout)
			}
			return fmt.Errorf("rebuild.command: %w", err)
		}
		if v, err := s.runnerVersion(ctx, o.Base, addr); err == nil {
			s.builtVersion = v
			log.Info().Str("runner_version", v).Msg("the new image's actions runner")
		} else {
			log.Warn().Err(err).Msg("reading the new image's runner version")
		}
		return nil
	}, true)
}

// verify boots a clone of the build result and runs rebuild.verify_command.
func (s *Scheduler) verify(ctx context.Context, log zerolog.Logger, built string) error {
	o := s.opts.Rebuild
	name := built + "-verify"
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		s.backend.Stop(cctx, name) //nolint:errcheck // Delete reports
		if err := s.images.Delete(cctx, name); err != nil {
			log.Warn().Err(err).Str("vm", name).Msg("deleting the verify VM")
		}
	}()
	return s.inVM(ctx, log, built, name, built, func(ctx context.Context, addr string) error {
		cctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		out := newLineLogger(log.With().Str("step", "verify").Logger())
		defer out.Flush()
		return s.guest.Run(cctx, built, addr, o.VerifyCommand, nil, out, out)
	}, false)
}

// inVM clones image to name, boots it, waits for SSH (trusting the host key
// of keyImage), runs do, then shuts the guest down: from inside when clean is
// set (a hard stop can lose its last writes), from the host after a bound.
func (s *Scheduler) inVM(ctx context.Context, log zerolog.Logger, image, name, keyImage string,
	do func(ctx context.Context, addr string) error, clean bool) error {
	w := &vmWatch{}
	vmCtx, release, addr, stage, err := s.bootToSSH(ctx, image, name, keyImage, s.opts.BootTimeout, w)
	defer release()
	switch {
	case stage == "create":
		return fmt.Errorf("clone %s: %w", image, err)
	case err != nil:
		return fmt.Errorf("boot: %w", err)
	}
	if err := do(vmCtx, addr); err != nil {
		return fmt.Errorf("in the VM: %w", exitCause(vmCtx, err))
	}
	if !clean {
		return nil
	}
	log.Info().Msg("shutting the build VM down from inside")
	sctx, scancel := context.WithTimeout(ctx, s.opts.Rebuild.ShutdownWait)
	defer scancel()
	// The session ends with the guest, often without an exit status.
	_ = s.guest.Run(sctx, keyImage, addr, "export TARTY_RUNNER_NAME="+shQuote(name)+"; "+s.opts.ShutdownCommand, nil, nil, nil)
	w.wait(sctx)
	if sctx.Err() != nil && ctx.Err() == nil {
		// A hard stop can lose what the guest had not written yet: the build
		// is stopped from the host to free the slot, and not promoted.
		log.Warn().Dur("waited", s.opts.Rebuild.ShutdownWait).Msg("the guest did not power off; stopping it from the host")
		stctx, stcancel := context.WithTimeout(ctx, time.Minute)
		defer stcancel()
		_ = s.backend.Stop(stctx, name)
		return fmt.Errorf("the guest did not power off within %s after %q; a hard stop can lose its last writes, so the build is not promoted",
			s.opts.Rebuild.ShutdownWait, s.opts.ShutdownCommand)
	}
	return ctx.Err()
}

// promote makes the build the runner image: the runner image becomes
// <runner>-previous (replacing an older one), the build the runner image, and
// the trusted host keys follow. Any failure undoes what was renamed. The
// owner loop holds launches meanwhile: tart's rename takes no lock while a
// clone reads its source.
func (s *Scheduler) promote(ctx context.Context, log zerolog.Logger, build, keyFrom string) error {
	runner := s.opts.Image
	prev := runner + "-previous"
	older := build + "-older" // the old previous, kept until the promote worked
	im := s.images
	hadPrev, err := im.Exists(ctx, prev)
	if err != nil {
		return err
	}
	hadRunner, err := im.Exists(ctx, runner)
	if err != nil {
		return err
	}
	rn := &renames{images: im}
	rollback := func(cause error) error {
		if err := rn.undo(ctx); err != nil {
			log.Error().Err(err).Msg("undoing the promote: the runner image may need a manual `tarty rollback`")
			return errors.Join(cause, err)
		}
		return cause
	}
	if hadPrev {
		if err := rn.do(ctx, prev, older); err != nil {
			return rollback(err)
		}
	}
	if hadRunner {
		if err := rn.do(ctx, runner, prev); err != nil {
			return rollback(err)
		}
	}
	if err := rn.do(ctx, build, runner); err != nil {
		return rollback(err)
	}
	// The images are in place: now the keys, the previous image's first.
	if hadRunner {
		if err := s.hostKeys.CopyHostKey(runner, prev); err != nil {
			return rollback(err)
		}
	}
	if err := s.hostKeys.CopyHostKey(keyFrom, runner); err != nil {
		if hadRunner {
			_ = s.hostKeys.CopyHostKey(prev, runner)
		}
		return rollback(err)
	}
	if hadPrev {
		if err := im.Delete(ctx, older); err != nil {
			log.Warn().Err(err).Str("vm", older).Msg("deleting the older previous image (the next start deletes it)")
		}
	}
	log.Info().Str("runner_image", runner).Str("previous", prev).Msg("promoted the new runner image")
	s.versionKnown.Store(false)
	if s.builtVersion != "" && s.opts.OnRunnerVersion != nil {
		s.opts.OnRunnerVersion(runner, s.builtVersion)
		s.versionKnown.Store(true)
	}
	return nil
}

// renames renames images and can undo what it renamed, newest first.
type renames struct {
	images Images
	done   [][2]string
}

func (r *renames) do(ctx context.Context, from, to string) error {
	if err := r.images.Rename(ctx, from, to); err != nil {
		return err
	}
	r.done = append(r.done, [2]string{from, to})
	return nil
}

// undo renames back, even when ctx was cancelled (bounded by cleanupTimeout).
func (r *renames) undo(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for i := len(r.done) - 1; i >= 0; i-- {
		if err := r.images.Rename(ctx, r.done[i][1], r.done[i][0]); err != nil {
			return err
		}
	}
	r.done = nil
	return nil
}

// rollback swaps <runner>-previous and the runner image, with their keys.
func (s *Scheduler) rollback(ctx context.Context) (err error) {
	log := s.log.With().Str("component", "rebuild").Logger()
	runner := s.opts.Image
	prev := runner + "-previous"
	ok, err := s.images.Exists(ctx, prev)
	if err != nil {
		return err
	}
	if !ok {
		return Refusal("no previous runner image " + prev + " to roll back to")
	}
	if err := s.rbHold(ctx); err != nil {
		return err
	}
	defer s.ask(context.WithoutCancel(ctx), "rb-unhold") //nolint:errcheck // the loop may have left
	tmp := s.opts.Prefix + "-rollback-" + s.opts.Now().UTC().Format("20060102T150405")
	rn := &renames{images: s.images}
	for _, st := range [][2]string{{runner, tmp}, {prev, runner}, {tmp, prev}} {
		if err := rn.do(ctx, st[0], st[1]); err != nil {
			return fmt.Errorf("rollback: %w", errors.Join(err, rn.undo(ctx)))
		}
	}
	hk := s.hostKeys
	if err := errors.Join(hk.CopyHostKey(runner, tmp), hk.CopyHostKey(prev, runner), hk.CopyHostKey(tmp, prev), hk.ForgetHostKey(tmp)); err != nil {
		return fmt.Errorf("rollback: host keys: %w", err)
	}
	log.Info().Str("runner_image", runner).Str("previous", prev).Msg("rolled back to the previous runner image")
	s.versionKnown.Store(false) // the next runner VM reads it
	return nil
}

// lineLogger logs what is written to it line by line (a guest command's
// output), each line bounded so a binary blob cannot flood the log.
type lineLogger struct {
	mu  sync.Mutex
	log zerolog.Logger
	buf bytes.Buffer
}

const maxLogLine = 4096

func newLineLogger(log zerolog.Logger) *lineLogger { return &lineLogger{log: log} }

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			if l.buf.Len() > maxLogLine {
				l.emit(l.buf.Next(maxLogLine))
			}
			return len(p), nil
		}
		l.emit(l.buf.Next(i + 1))
	}
}

func (l *lineLogger) emit(b []byte) {
	line := strings.TrimRight(string(b), "\r\n")
	if len(line) > maxLogLine {
		line = line[:maxLogLine] + "…"
	}
	l.log.Info().Msg(line)
}

// Flush logs a last line without a newline.
func (l *lineLogger) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 0 {
		l.emit(l.buf.Bytes())
		l.buf.Reset()
	}
}
