package tarty

import (
	"errors"
	"time"
)

// The adapters report what the scheduler branches on through methods on their
// errors, so it never imports them. The helpers below look through wrapping.

// IsVMLimit reports whether err is tart's "The number of VMs exceeds the system
// limit" (an error with VMLimit() true): never retried blindly.
func IsVMLimit(err error) bool {
	var e interface{ VMLimit() bool }
	return errors.As(err, &e) && e.VMLimit()
}

// IsBusy reports whether err says a runner is still running a job (Busy() true).
func IsBusy(err error) bool {
	var e interface{ Busy() bool }
	return errors.As(err, &e) && e.Busy()
}

// RetryAfter returns how long GitHub asked us to wait, when err carries it
// (rate limits, 429, Retry-After).
func RetryAfter(err error) (time.Duration, bool) {
	var e interface{ RetryAfter() time.Duration }
	if errors.As(err, &e) {
		return e.RetryAfter(), true
	}
	return 0, false
}

// IsHostKeyChanged reports whether err says a guest presented a host key other
// than the one trusted for its image (HostKeyChanged() true): a security
// event to surface, never retried.
func IsHostKeyChanged(err error) bool {
	var e interface{ HostKeyChanged() bool }
	return errors.As(err, &e) && e.HostKeyChanged()
}

// HostFix returns the one-line fix an operator must apply to the host when err
// says the host itself cannot run VMs right now (an error with a HostFix()
// string method): for example Virtualization.framework's "The virtual machine
// failed to start" without a GUI session or with a locked login keychain. Such
// a failure degrades the slot instead of being retried quickly.
func HostFix(err error) (string, bool) {
	var e interface{ HostFix() string }
	if errors.As(err, &e) {
		if fix := e.HostFix(); fix != "" {
			return fix, true
		}
	}
	return "", false
}
