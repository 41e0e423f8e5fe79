package scheduler

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

type limitErr struct{}

func (limitErr) Error() string { return "The number of VMs exceeds the system limit" }
func (limitErr) VMLimit() bool { return true }

type busyErr bool

func (busyErr) Error() string { return "runner busy" }
func (b busyErr) Busy() bool  { return bool(b) }

type hostKeyErr struct{}

func (hostKeyErr) Error() string        { return "host key changed" }
func (hostKeyErr) HostKeyChanged() bool { return true }

type waitErr time.Duration

func (waitErr) Error() string               { return "rate limited" }
func (w waitErr) RetryAfter() time.Duration { return time.Duration(w) }

func TestErrorClassifiers(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("tart run x: %w", err) }
	if !IsVMLimit(wrap(limitErr{})) || IsVMLimit(errors.New("other")) || IsVMLimit(nil) {
		t.Error("IsVMLimit")
	}
	if !IsBusy(wrap(busyErr(true))) || IsBusy(wrap(busyErr(false))) || IsBusy(nil) {
		t.Error("IsBusy")
	}
	if !IsHostKeyChanged(wrap(hostKeyErr{})) || IsHostKeyChanged(errors.New("other")) {
		t.Error("IsHostKeyChanged")
	}
	if d, ok := RetryAfter(wrap(waitErr(3 * time.Second))); !ok || d != 3*time.Second {
		t.Errorf("RetryAfter = %v, %v", d, ok)
	}
	if _, ok := RetryAfter(errors.New("other")); ok {
		t.Error("RetryAfter on a plain error")
	}
}
