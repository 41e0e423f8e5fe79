package scheduler

import (
	"context"
	"errors"
	"io"
	"time"
)

// The interfaces below are what the scheduler needs from the outside world. They
// use only standard types and the scheduler's own, so tartvm and sshexec satisfy
// them without importing this package, and tests substitute function-field fakes.

// VMs drives tart. tartvm.Client implements it.
type VMs interface {
	// Clone copies source to a new local VM name; it fails if name exists.
	Clone(ctx context.Context, source, name string) error
	// Set gives the VM a random MAC address and, when non-zero, a CPU count and memory size.
	Set(ctx context.Context, name string, cpu, memoryMB int) error
	// Run boots the VM detached from Tarty's process group. The channel delivers
	// the result of `tart run` once (nil after a clean exit) when the VM stops.
	Run(ctx context.Context, name string) (<-chan error, error)
	// IP waits up to wait for the VM's IPv4 address.
	IP(ctx context.Context, name string, wait time.Duration) (string, error)
	// Stop stops a running VM; a VM that is not running is not an error.
	Stop(ctx context.Context, name string, timeout time.Duration) error
	// Delete removes a VM; a missing VM is not an error.
	Delete(ctx context.Context, name string) error
	// Rename renames a local VM.
	Rename(ctx context.Context, name, newName string) error
	// States maps every local VM name to its state: running, suspended or stopped.
	States(ctx context.Context) (map[string]string, error)
	// OS returns a local VM's guest OS, "darwin" or "linux": only macOS VMs count
	// against Apple's two-VM limit.
	OS(ctx context.Context, name string) (string, error)
}

// Guest runs commands in a booted VM over SSH. sshexec implements it. image names
// the tart image the guest was cloned from: clones of one image share its SSH
// host key, so host keys are trusted on first use per image.
type Guest interface {
	// WaitReady retries until the guest accepts a login or its connect timeout passes.
	WaitReady(ctx context.Context, image, host string) error
	// Run runs command, feeding stdin (may be nil) and streaming its output.
	// A non-zero exit status is an error with an ExitStatus() int method.
	Run(ctx context.Context, image, host, command string, stdin io.Reader, stdout, stderr io.Writer) error
	// Start starts command detached so it outlives the SSH connection; stdin
	// (may be nil) is delivered to it before Start returns.
	Start(ctx context.Context, image, host, command string, stdin io.Reader) error
	// ForgetHostKey drops the trusted host key of image, after a rebuild.
	ForgetHostKey(image string) error
}

// Runner is a self-hosted runner registration seen through the GitHub API.
type Runner struct {
	ID     int64
	Name   string
	Online bool // status "online"
	Busy   bool // running a job right now
}

// Runners manages runner registrations. The github package implements it.
type Runners interface {
	// JITConfig registers a just-in-time runner called name with Tarty's labels
	// and returns its ID and the encoded config (a credential: never log it).
	JITConfig(ctx context.Context, name string) (runnerID int64, encoded string, err error)
	// ListRunners returns every runner whose name starts with prefix.
	ListRunners(ctx context.Context, prefix string) ([]Runner, error)
	// RemoveRunner deletes a registration; one already gone is not an error.
	// A runner still running a job gives an error with a Busy() bool method.
	RemoveRunner(ctx context.Context, id int64) error
}

// Jobs finds queued jobs for the reconciliation poller. The github package implements it.
type Jobs interface {
	// QueuedJobs returns the jobs in scope whose status is queued, as
	// ActionQueued events from SourcePoller.
	QueuedJobs(ctx context.Context) ([]JobEvent, error)
}

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
