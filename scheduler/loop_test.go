package scheduler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tartyci/tarty"
)

// These tests run the real owner loop against the simulated world inside a
// synctest bubble: time only moves when every goroutine waits, so hours pass
// in milliseconds and nothing sleeps for real.

// waitFor advances simulated time in steps until cond holds, checking the
// two-VM limit after every step.
func waitFor(t *testing.T, w *world, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		w.checkLimit()
	}
}

func status(t *testing.T, s *Scheduler) Status {
	t.Helper()
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestLoopBurstOfTen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		_, stop := w.start(w.options())
		defer stop()
		for range 10 {
			w.queue("acme/app")
		}
		waitFor(t, w, 2*time.Hour, "10 jobs completed", func() bool { return w.count("completed") == 10 })
		waitFor(t, w, time.Minute, "every VM deleted", func() bool { return w.vmCount() == 0 })
		if w.maxSeen != 2 {
			t.Errorf("at most %d VMs ran at once; want both slots used", w.maxSeen)
		}
		if w.overLimit != 0 {
			t.Errorf("%d boots refused by the host limit", w.overLimit)
		}
		if w.created != 10 {
			t.Errorf("%d VMs created for 10 jobs", w.created)
		}
	})
}

func TestLoopForeignVMLowersCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.foreign = 1
		s, stop := w.start(w.options())
		defer stop()
		for range 3 {
			w.queue("acme/app")
		}
		waitFor(t, w, time.Hour, "3 jobs completed", func() bool { return w.count("completed") == 3 })
		if w.maxSeen != 2 || w.overLimit != 0 {
			t.Errorf("max %d VMs (foreign included), %d refused: want one runner at a time", w.maxSeen, w.overLimit)
		}
		if st := status(t, s); st.Capacity != 1 || len(st.ForeignVMs) != 1 {
			t.Errorf("status capacity %d foreign %v", st.Capacity, st.ForeignVMs)
		}
	})
}

func TestLoopMissedWebhookFoundByPoller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.dropHooks = true
		_, stop := w.start(w.options())
		defer stop()
		synctest.Wait()
		w.queue("acme/app")
		waitFor(t, w, 10*time.Minute, "the job found by the poll and taken", func() bool {
			return w.count("in_progress")+w.count("completed") == 1
		})
	})
}

func TestLoopCancelledJobIdleVMReclaimed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		opts := w.options()
		s, stop := w.start(opts)
		defer stop()
		// The job is cancelled while its VM boots; the runner then has nothing to do.
		id := w.queue("acme/app", "self-hosted", "tarty")
		w.mu.Lock()
		w.jobs[id].labels = []string{"self-hosted", "tarty", "not-served"} // GitHub will not hand it to us
		w.mu.Unlock()
		waitFor(t, w, time.Minute, "a VM launching", func() bool { return w.vmCount() == 1 })
		w.cancel(id)
		waitFor(t, w, 2*time.Minute, "the runner idle", func() bool {
			return status(t, s).Slots[0].State == SlotIdle || status(t, s).Slots[1].State == SlotIdle
		})
		idleAt := time.Now()
		waitFor(t, w, opts.IdleTimeout+DefaultIdleTimeout, "the idle VM reclaimed", func() bool { return w.vmCount() == 0 })
		if d := time.Since(idleAt); d < DefaultIdleTimeout-time.Minute {
			t.Errorf("reclaimed after %s, before idle_timeout", d)
		}
	})
}

func TestLoopOutOfOrderAndDuplicateEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		s, stop := w.start(w.options())
		defer stop()
		synctest.Wait()
		var id int64 = 77
		send := func(a tarty.JobAction, status string) { w.deliver(id, a, status) }
		// completed arrives before queued: the job must never become demand.
		send(tarty.ActionCompleted, "completed")
		send(tarty.ActionQueued, "queued")
		send(tarty.ActionQueued, "queued")
		if st := status(t, s); len(st.Queued) != 0 {
			t.Fatalf("a completed job came back as demand: %+v", st.Queued)
		}
		// A duplicate queued for a fresh job counts once.
		id = 78
		send(tarty.ActionQueued, "queued")
		send(tarty.ActionQueued, "queued")
		if st := status(t, s); len(st.Queued) != 1 {
			t.Fatalf("queued = %+v, want job 78 once", st.Queued)
		}
		send(tarty.ActionInProgress, "in_progress")
		send(tarty.ActionQueued, "queued") // late
		if st := status(t, s); len(st.Queued) != 0 {
			t.Fatalf("a late queued resurrected a started job: %+v", st.Queued)
		}
	})
}

func TestLoopApprovalParksTheJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		s, stop := w.start(w.options())
		defer stop()
		synctest.Wait()
		send := func(a tarty.JobAction, status string) { w.deliver(90, a, status) }
		send(tarty.ActionQueued, "waiting") // GitHub's first delivery of a gated job
		send(tarty.ActionWaiting, "waiting")
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := w.vmCount(); n != 0 {
			t.Fatalf("%d VMs booted for a job waiting for approval", n)
		}
		st := status(t, s)
		if len(st.Queued) != 1 || !strings.Contains(st.Queued[0].Reason, "approval") {
			t.Fatalf("queued = %+v, want the parked job with its reason", st.Queued)
		}
		send(tarty.ActionQueued, "queued") // approved
		waitFor(t, w, time.Minute, "a VM launching after the approval", func() bool { return w.vmCount() == 1 })
	})
}

func TestLoopBootFailuresBackOffThenRecover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		var fails atomic.Int32
		fails.Store(4)
		var attempts []time.Time
		w.onCreate = func(string) error {
			attempts = append(attempts, time.Now())
			if fails.Add(-1) >= 0 {
				return errors.New("tart clone: exit 1: disk full")
			}
			return nil
		}
		opts := w.options()
		opts.Max = 1
		s, stop := w.start(opts)
		defer stop()
		w.queue("acme/app")
		waitFor(t, w, 10*time.Minute, "the slot degraded after 3 failures", func() bool {
			return status(t, s).Slots[0].State == SlotDegraded
		})
		if r := status(t, s).Slots[0].Reason; !strings.Contains(r, "disk full") {
			t.Errorf("degraded reason %q", r)
		}
		waitFor(t, w, 30*time.Minute, "the job served after recovery", func() bool { return w.count("completed") == 1 })
		for i := 1; i < len(attempts); i++ {
			if gap := attempts[i].Sub(attempts[i-1]); gap < launchBackoffFirst {
				t.Errorf("attempt %d came %s after the previous one: a hot loop", i, gap)
			}
		}
		if len(attempts) != 5 {
			t.Errorf("%d attempts, want 4 failures and 1 success", len(attempts))
		}
	})
}

func TestLoopVMLimitLeaked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.leaked = true
		s, stop := w.start(w.options())
		defer stop()
		w.queue("acme/app")
		waitFor(t, w, 5*time.Minute, "a degraded slot", func() bool {
			for _, sl := range status(t, s).Slots {
				if sl.State == SlotDegraded && strings.Contains(sl.Reason, "reboot") {
					return true
				}
			}
			return false
		})
		// Probing again with backoff, never a hot loop: a few tries in an hour.
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := w.overLimit; n > 6 {
			t.Errorf("%d boots in an hour against a leaked limit", n)
		}
		w.mu.Lock()
		w.leaked = false
		w.mu.Unlock()
		waitFor(t, w, 2*time.Hour, "the job served after the reboot", func() bool { return w.count("completed") == 1 })
	})
}

func TestLoopVMLimitLateWithForeignVM(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		s, stop := w.start(w.options())
		defer stop()
		synctest.Wait()
		// A foreign VM starts after Tarty read its capacity: the next boot
		// hits the limit, capacity is re-read and lowered, nothing degrades.
		w.mu.Lock()
		w.foreign = 1
		w.mu.Unlock()
		w.queue("acme/app")
		w.queue("acme/app")
		waitFor(t, w, time.Hour, "both jobs served one at a time", func() bool { return w.count("completed") == 2 })
		for _, sl := range status(t, s).Slots {
			if sl.State == SlotDegraded {
				t.Errorf("slot degraded by a foreign VM: %+v", sl)
			}
		}
	})
}

func TestLoopGuestCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		crashed := false
		w.lateBoot = func(string) error {
			if crashed {
				return nil
			}
			crashed = true
			return errors.New("guest has stopped the virtual machine due to error")
		}
		_, stop := w.start(w.options())
		defer stop()
		w.queue("acme/app")
		waitFor(t, w, 30*time.Minute, "the job served after the crash", func() bool { return w.count("completed") == 1 })
		waitFor(t, w, time.Minute, "every VM deleted", func() bool { return w.vmCount() == 0 })
	})
}

func TestLoopMaxLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.jobTime = 10 * time.Hour
		opts := w.options()
		opts.MaxLifetime = time.Hour
		_, stop := w.start(opts)
		defer stop()
		w.queue("acme/app")
		waitFor(t, w, time.Minute, "a VM", func() bool { return w.vmCount() == 1 })
		waitFor(t, w, 2*time.Hour, "the VM killed at max_lifetime", func() bool { return w.vmCount() == 0 })
	})
}

func TestLoopGuestDoesNotPowerOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.noPowerOff = true
		_, stop := w.start(w.options())
		defer stop()
		w.queue("acme/app")
		waitFor(t, w, 10*time.Minute, "the job completed", func() bool { return w.count("completed") == 1 })
		waitFor(t, w, DefaultJobDoneGrace+time.Minute, "the VM stopped from the host", func() bool { return w.vmCount() == 0 })
	})
}

func TestLoopWarmRunners(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		opts := w.options()
		opts.Warm = 2
		s, stop := w.start(opts)
		defer stop()
		waitFor(t, w, 2*time.Minute, "two warm runners listening", func() bool {
			st := status(t, s)
			return st.Slots[0].State == SlotIdle && st.Slots[1].State == SlotIdle
		})
		// Warm runners are exempt from idle_timeout.
		time.Sleep(2 * DefaultIdleTimeout)
		synctest.Wait()
		if n := w.created; n != 2 {
			t.Fatalf("%d VMs created; warm runners were torn down", n)
		}
		w.queue("acme/app")
		waitFor(t, w, time.Minute, "the job started at once on a warm runner", func() bool { return w.count("in_progress") == 1 })
		waitFor(t, w, 10*time.Minute, "a fresh warm runner replaces the used one", func() bool {
			st := status(t, s)
			return w.count("completed") == 1 && st.Slots[0].State == SlotIdle && st.Slots[1].State == SlotIdle
		})
	})
}

func TestLoopPollFailsForOneRepository(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.jobTime = time.Hour
		opts := w.options()
		opts.Max = 1
		s, stop := w.start(opts)
		defer stop()
		// One job runs; two wait, one per repository; both webhooks arrived.
		w.queue("acme/app")
		w.queue("acme/app")
		w.queue("acme/lib")
		waitFor(t, w, 2*time.Minute, "the first job running", func() bool { return w.count("in_progress") == 1 })
		// lib cannot be read, and its job was cancelled (the webhook lost):
		// its demand is kept. app is read in full.
		w.mu.Lock()
		w.pollFail["acme/lib"] = errors.New("502 Bad Gateway")
		w.dropHooks = true
		for _, j := range w.jobs {
			if j.repo == "acme/lib" {
				j.status = "completed"
			}
		}
		w.mu.Unlock()
		time.Sleep(2 * opts.ReconcileInterval)
		synctest.Wait()
		if q := status(t, s).Queued; len(q) != 2 {
			t.Fatalf("queued = %+v: the unread repository's job must stay", q)
		}
		// Once lib reads again, its cancelled job leaves demand.
		w.mu.Lock()
		delete(w.pollFail, "acme/lib")
		w.mu.Unlock()
		time.Sleep(2 * opts.ReconcileInterval)
		synctest.Wait()
		if q := status(t, s).Queued; len(q) != 1 || q[0].Repository != "acme/app" {
			t.Fatalf("queued = %+v, want app's job only", q)
		}
	})
}

func TestLoopShutdownLeavesBusyVMsAndAdoptsThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.jobTime = time.Hour
		opts := w.options()
		opts.Warm = 1
		s, cancel, done := w.startLoop(opts)
		w.queue("acme/app")
		waitFor(t, w, 3*time.Minute, "one busy and one warm runner", func() bool {
			busy, idle := 0, 0
			for _, sl := range status(t, s).Slots {
				switch sl.State {
				case SlotBusy:
					busy++
				case SlotIdle:
					idle++
				}
			}
			return busy == 1 && idle == 1
		})
		var busyVM string
		for _, sl := range status(t, s).Slots {
			if sl.State == SlotBusy {
				busyVM = sl.VM
			}
		}
		signalled := time.Now()
		cancel() // SIGTERM
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(signalled); d > 30*time.Second {
			t.Errorf("drain took %s", d)
		}
		if n := w.vmCount(); n != 1 || !w.hasVM(busyVM) {
			t.Fatalf("%d VMs after shutdown, want the busy one (%s) only", n, busyVM)
		}
		// A new scheduler adopts the busy VM and watches it to its end.
		s2, stop2 := w.start(opts)
		defer stop2()
		waitFor(t, w, time.Minute, "the busy VM adopted", func() bool {
			for _, sl := range status(t, s2).Slots {
				if sl.Adopted && sl.State == SlotBusy {
					return true
				}
			}
			return false
		})
		waitFor(t, w, 2*time.Hour, "the job completed and its VM deleted", func() bool {
			return w.count("completed") == 1 && !w.hasVM(busyVM)
		})
	})
}

func TestLoopLearnsTheRunnerVersionOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		opts := w.options()
		var mu sync.Mutex
		var seen []string
		opts.OnRunnerVersion = func(image, v string) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, image+"@"+v)
		}
		_, stop := w.start(opts)
		defer stop()
		for range 3 {
			w.queue("acme/app")
		}
		waitFor(t, w, time.Hour, "3 jobs completed", func() bool { return w.count("completed") == 3 })
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 1 || seen[0] != "runner-image@2.330.0" {
			t.Errorf("runner versions reported: %v, want one for the runner image", seen)
		}
	})
}

func TestLoopVMLimitArrivesLateOnTheRunChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		// The first boot looks fine, then tart run exits with the limit error
		// (a foreign VM won the race): capacity is re-read and lowered.
		first := true
		w.lateBoot = func(string) error {
			if !first {
				return nil
			}
			first = false
			w.foreign = 1 // called with w.mu held
			return limitError{}
		}
		s, stop := w.start(w.options())
		defer stop()
		w.queue("acme/app")
		w.queue("acme/app")
		waitFor(t, w, time.Hour, "both jobs served", func() bool { return w.count("completed") == 2 })
		st := status(t, s)
		if st.Capacity != 1 {
			t.Errorf("capacity %d after the late limit with a foreign VM, want 1", st.Capacity)
		}
		for _, sl := range st.Slots {
			if sl.State == SlotDegraded {
				t.Errorf("slot degraded: %+v", sl)
			}
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.maxSeen > 2 {
			t.Errorf("%d VMs at once", w.maxSeen)
		}
	})
}

func TestLoopVMLimitLateAndLeaked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.lateBoot = func(string) error { return limitError{} } // every boot dies of the limit, nothing else runs
		s, stop := w.start(w.options())
		defer stop()
		w.queue("acme/app")
		waitFor(t, w, 10*time.Minute, "a slot degraded by the leaked limit", func() bool {
			for _, sl := range status(t, s).Slots {
				if sl.State == SlotDegraded && strings.Contains(sl.Reason, "reboot") {
					return true
				}
			}
			return false
		})
	})
}

func TestLoopHostCannotStartVMsDegrades(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		failing := true
		w.onBoot = func(string) error {
			if failing {
				return fixError{} // VZErrorDomain Code=1: no GUI session
			}
			return nil
		}
		s, stop := w.start(w.options())
		defer stop()
		w.queue("acme/app")
		waitFor(t, w, 5*time.Minute, "a slot degraded with the fix", func() bool {
			for _, sl := range status(t, s).Slots {
				if sl.State == SlotDegraded && strings.Contains(sl.Reason, "enable automatic login") {
					return true
				}
			}
			return false
		})
		if st := status(t, s); len(st.Queued) != 1 || !strings.Contains(st.Queued[0].Reason, "degraded") {
			t.Errorf("queued = %+v, want the job waiting with the degraded reason", st.Queued)
		}
		failing = false // the operator enabled automatic login
		waitFor(t, w, 2*time.Hour, "the job served once the host is fixed", func() bool { return w.count("completed") == 1 })
	})
}
