package scheduler

import (
	"context"
	"strings"
	"time"

	"github.com/tartyci/tarty"
)

// Bounds of the short-lived workers.
const (
	teardownTimeout = 3 * time.Minute
	callTimeout     = time.Minute     // one GitHub or backend call
	pollTimeout     = 5 * time.Minute // a poll of a large organisation
	recoverRetry    = 30 * time.Second
)

// teardown stops and deletes a VM, then reports it gone; its runner is
// removed by the owner loop's removal queue.
func (s *Scheduler) teardown(base context.Context, slot int, vm string) {
	ctx, cancel := context.WithTimeout(base, teardownTimeout)
	defer cancel()
	log := s.log.With().Int("slot", slot).Str("vm", vm).Logger()
	if err := s.backend.Stop(ctx, vm); err != nil {
		log.Warn().Err(err).Msg("stopping VM")
	}
	if err := s.backend.Delete(ctx, vm); err != nil {
		// The sweep retries: the VM carries the prefix and no slot will have it.
		log.Warn().Err(err).Msg("deleting VM")
	} else {
		log.Info().Msg("VM deleted")
	}
	s.send(func(now time.Time) { s.core.onTornDown(now, slot, vm) })
}

func (s *Scheduler) removeRunner(base context.Context, id int64, name string) {
	ctx, cancel := context.WithTimeout(base, callTimeout)
	defer cancel()
	err := s.runners.RemoveRunner(ctx, id)
	log := s.log.With().Int64("runner_id", id).Str("runner", name).Logger()
	switch {
	case err == nil:
		log.Info().Msg("runner registration removed")
	case tarty.IsBusy(err):
		log.Info().Msg("runner still busy on GitHub; removal retried later")
	default:
		log.Warn().Err(err).Msg("removing runner registration; retried later")
	}
	s.send(func(now time.Time) { s.core.onRemoval(now, id, err) })
}

// poll reconciles demand with GitHub (queued jobs per repository, Tarty's
// runner registrations) and the backend (capacity, Tarty's VMs).
func (s *Scheduler) poll(base context.Context) {
	ctx, cancel := context.WithTimeout(base, pollTimeout)
	defer cancel()
	started := s.opts.Now()
	res, jobsErr := s.jobs.QueuedJobs(ctx)
	runners, runnersErr := s.runners.ListRunners(ctx, s.opts.Prefix+"-")
	capacity, capErr := s.backend.Capacity(ctx)
	vms, vmsErr := s.backend.VMs(ctx, s.opts.Prefix+"-")
	if base.Err() != nil {
		return // the daemon stopped mid-poll: nothing to report
	}

	if jobsErr != nil {
		s.met.pollErrors.WithLabelValues("poll").Inc()
		s.log.Warn().Err(jobsErr).Msg("reconcile poll failed; demand kept as it was")
	}
	for repo, err := range res.Failed {
		s.met.pollErrors.WithLabelValues("repository").Inc()
		s.log.Warn().Err(err).Str("repo", repo).Msg("reconcile: repository not read; its demand kept as it was")
	}
	if runnersErr != nil {
		s.log.Warn().Err(runnersErr).Msg("listing runner registrations")
	}
	if capErr != nil {
		s.log.Warn().Err(capErr).Msg("reading the backend's capacity")
	}
	s.send(func(now time.Time) {
		c := s.core
		c.polling = false
		c.nextPoll = started.Add(s.opts.ReconcileInterval)
		if c.pollAgain {
			c.nextPoll, c.pollAgain = now, false
		}
		if d, ok := tarty.RetryAfter(jobsErr); ok && now.Add(d).After(c.nextPoll) {
			c.nextPoll = now.Add(d)
		}
		if jobsErr == nil {
			before := c.queued()
			c.onPoll(now, started, res)
			s.log.Debug().Int("found", len(res.Jobs)).Int("queued_before", before).Int("queued", c.queued()).
				Int("repositories", len(res.Complete)).Msg("reconciled demand")
		}
		if runnersErr == nil {
			c.onRunners(now, started, runners)
		}
		if capErr == nil {
			c.capacity = capacity
		}
		if vmsErr == nil {
			s.sweep(now, vms)
		}
	})
}

// checkVMs looks up the backend's VMs: adopted VMs that stopped are torn down,
// orphans deleted.
func (s *Scheduler) checkVMs(base context.Context) {
	ctx, cancel := context.WithTimeout(base, callTimeout)
	defer cancel()
	vms, err := s.backend.VMs(ctx, s.opts.Prefix+"-")
	if err != nil {
		s.log.Warn().Err(err).Msg("listing VMs")
	}
	s.send(func(now time.Time) {
		s.core.checking = false
		s.core.nextCheck = now.Add(s.opts.AdoptedCheck)
		if err == nil {
			s.sweep(now, vms)
		}
	})
}

// sweep applies a VM listing: adopted VMs that stopped are torn down, and a
// VM with Tarty's prefix that no slot holds (left by a launch whose clean-up
// failed) is deleted. Runs in the owner goroutine.
func (s *Scheduler) sweep(now time.Time, vms []tarty.VM) {
	if !s.core.recovered {
		return // the start-up recovery decides about every VM first
	}
	running := map[string]bool{}
	for _, vm := range vms {
		running[vm.Name] = vm.Running
	}
	s.core.onVMsSeen(now, running)
	for _, vm := range vms {
		if s.core.slotByVM(vm.Name) != nil || strings.HasPrefix(vm.Name, s.opts.Prefix+"-build-") {
			continue
		}
		name := vm.Name
		s.log.Warn().Str("vm", name).Bool("running", vm.Running).Msg("deleting an orphan VM with Tarty's prefix")
		s.spawn(func() {
			ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
			defer cancel()
			if err := s.backend.Stop(ctx, name); err != nil {
				s.log.Warn().Err(err).Str("vm", name).Msg("stopping orphan VM")
			}
			if err := s.backend.Delete(ctx, name); err != nil {
				s.log.Warn().Err(err).Str("vm", name).Msg("deleting orphan VM")
			}
		})
	}
}

// recoverVMs makes a fresh start safe: VMs with the prefix whose runner is
// busy are adopted and watched to the end; every other VM with the prefix is
// deleted and offline runners with the prefix are removed. Nothing without
// the prefix is touched. Until it succeeds nothing launches.
func (s *Scheduler) recoverVMs(base context.Context) {
	for {
		err := s.recoverOnce(base)
		if err == nil {
			return
		}
		s.log.Error().Err(err).Dur("retry_in", recoverRetry).Msg("start-up recovery failed; nothing launches until it works")
		t := time.NewTimer(recoverRetry)
		select {
		case <-base.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *Scheduler) recoverOnce(base context.Context) error {
	ctx, cancel := context.WithTimeout(base, teardownTimeout)
	defer cancel()
	prefix := s.opts.Prefix + "-"
	vms, err := s.backend.VMs(ctx, prefix)
	if err != nil {
		return err
	}
	runners, runnersErr := s.runners.ListRunners(ctx, prefix)
	if runnersErr != nil {
		// Without GitHub's view, a running VM may be running a job: keep and
		// watch every running one; delete only stopped ones.
		s.log.Warn().Err(runnersErr).Msg("cannot list runners at start: keeping every running VM with the prefix")
	}
	byName := map[string]tarty.Runner{}
	for _, r := range runners {
		byName[r.Name] = r
	}
	type adopted struct {
		vm string
		id int64
	}
	var keep []adopted
	for _, vm := range vms {
		r, hasRunner := byName[vm.Name]
		if vm.Running && !strings.HasPrefix(vm.Name, prefix+"build-") &&
			(runnersErr != nil || (hasRunner && r.Busy)) {
			keep = append(keep, adopted{vm.Name, r.ID})
			s.log.Info().Str("vm", vm.Name).Int64("runner_id", r.ID).Msg("adopting a VM whose runner is busy")
			continue
		}
		s.log.Info().Str("vm", vm.Name).Bool("running", vm.Running).Msg("deleting a VM left from before the restart")
		if err := s.backend.Stop(ctx, vm.Name); err != nil {
			s.log.Warn().Err(err).Str("vm", vm.Name).Msg("stopping VM")
		}
		if err := s.backend.Delete(ctx, vm.Name); err != nil {
			s.log.Warn().Err(err).Str("vm", vm.Name).Msg("deleting VM")
		}
	}
	capacity, capErr := s.backend.Capacity(ctx)
	if capErr != nil {
		s.log.Warn().Err(capErr).Msg("reading the backend's capacity")
	}
	kept := map[string]bool{}
	for _, a := range keep {
		kept[a.vm] = true
	}
	s.send(func(now time.Time) {
		c := s.core
		for _, a := range keep {
			c.onAdopted(now, a.vm, a.id)
		}
		for _, r := range runners {
			if !kept[r.Name] {
				c.addRemoval(now, r.ID, r.Name)
			}
		}
		if capErr == nil {
			c.capacity = capacity
		}
		c.recovered = true
		c.nextCheck = now.Add(s.opts.AdoptedCheck)
		s.log.Info().Int("adopted", len(keep)).Int("capacity", capacity.Slots).Strs("foreign_vms", capacity.Foreign).
			Msg("start-up recovery done")
	})
	return nil
}
