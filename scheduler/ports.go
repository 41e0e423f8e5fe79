package scheduler

import (
	"context"
	"io"
	"time"

	"github.com/tartyci/tarty"
)

// The interfaces below are what the scheduler needs from the outside world. They
// use only standard types and the leaf package tarty, so the adapters (tartvm,
// sshexec, ghapi) satisfy them without importing this package, and tests
// substitute function-field fakes.

// Backend is where runner VMs live: tart on this Mac (tartvm.Backend) or, later,
// a fleet of Macs behind an orchestrator. Everything the decisions need to know
// about the host, its capacity included, comes through here.
type Backend interface {
	// Capacity reports how many VMs Tarty may run at once right now, before
	// runners.max is applied: for local tart, Apple's two macOS VMs minus the
	// foreign macOS VMs running (those without Tarty's prefix).
	Capacity(ctx context.Context) (tarty.Capacity, error)
	// VMs lists the backend's VMs whose names start with prefix.
	VMs(ctx context.Context, prefix string) ([]tarty.VM, error)
	// Create makes VM name from image, ready to boot: for local tart, clone
	// plus a random MAC address (and CPU and memory when configured).
	Create(ctx context.Context, image, name string) error
	// Boot starts VM name, detached from Tarty's process so that a restart
	// does not kill it. The channel delivers once, when the VM stops: nil for
	// a clean power-off or host stop, an error when the guest crashed or the
	// VM could not start (possibly late: the two-VM limit can arrive after
	// Boot returned). An error from Boot itself means it never started.
	Boot(ctx context.Context, name string) (<-chan error, error)
	// Address returns the guest's address for SSH, waiting up to wait. While
	// the VM runs a failure is worth retrying.
	Address(ctx context.Context, name string, wait time.Duration) (string, error)
	// Stop powers VM name off from the host; one that is not running (or
	// missing) is not an error.
	Stop(ctx context.Context, name string) error
	// Delete removes VM name; a missing one is not an error.
	Delete(ctx context.Context, name string) error
}

// Fleet is optionally implemented by a Backend of many Macs (orchard.Backend):
// /status then lists its workers and which one each runner VM is on. It is
// called outside the owner loop, so it may do I/O.
type Fleet interface {
	Workers(ctx context.Context) ([]tarty.Worker, error)
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

// Runners manages runner registrations. ghapi implements it.
type Runners interface {
	// JITConfig registers a just-in-time runner called name with Tarty's labels
	// and returns its ID and the encoded config (a credential: never log it).
	JITConfig(ctx context.Context, name string) (runnerID int64, encoded string, err error)
	// ListRunners returns every runner whose name starts with prefix.
	ListRunners(ctx context.Context, prefix string) ([]tarty.Runner, error)
	// RemoveRunner deletes a registration; one already gone is not an error.
	// A runner still running a job gives an error with a Busy() bool method.
	RemoveRunner(ctx context.Context, id int64) error
}

// Jobs finds queued jobs for the reconciliation poller. ghapi implements it.
type Jobs interface {
	// QueuedJobs returns the jobs in scope whose own status is queued, per
	// repository: which repositories were read in full and which failed. An
	// error means the poll learnt nothing (the scope itself could not be read).
	QueuedJobs(ctx context.Context) (tarty.PollResult, error)
}

// Images manages the tart images the nightly rebuild reads and replaces.
// tartvm.Images implements it for local tart; other backends have none (their
// images live in a registry).
type Images interface {
	// Exists reports whether a local image exists.
	Exists(ctx context.Context, name string) (bool, error)
	// Remote reports whether ref names an OCI image to pull rather than a local one.
	Remote(ref string) bool
	// Pull fetches an OCI image, writing progress lines to progress, and
	// reports whether what the reference points at changed.
	Pull(ctx context.Context, ref string, progress io.Writer) (changed bool, err error)
	// Rename renames a local image; it fails if to exists.
	Rename(ctx context.Context, from, to string) error
	// Delete removes a local image; a missing one is not an error.
	Delete(ctx context.Context, name string) error
	// FreeBytes is the free space where images live; SizeBytes what an image
	// takes on disk once cloned in full.
	FreeBytes(ctx context.Context) (uint64, error)
	SizeBytes(ctx context.Context, image string) (uint64, error)
}

// HostKeys moves trusted SSH host keys between images: they follow an image
// when the rebuild promotes it or rolls it back. sshexec implements it.
type HostKeys interface {
	// CopyHostKey makes to trust exactly what from trusts (nothing, if from
	// has no key).
	CopyHostKey(from, to string) error
	// ForgetHostKey drops what image trusts.
	ForgetHostKey(image string) error
}
