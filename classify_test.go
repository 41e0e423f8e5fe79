package tarty

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

type fixErr string

func (fixErr) Error() string     { return "VZErrorDomain Code=1" }
func (f fixErr) HostFix() string { return string(f) }

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
	if fix, ok := HostFix(wrap(fixErr("enable automatic login"))); !ok || fix != "enable automatic login" {
		t.Errorf("HostFix = %q, %v", fix, ok)
	}
	if _, ok := HostFix(wrap(fixErr(""))); ok {
		t.Error("HostFix with an empty fix")
	}
	if _, ok := RetryAfter(errors.New("other")); ok {
		t.Error("RetryAfter on a plain error")
	}
}
