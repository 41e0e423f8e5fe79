package tartvm

import (
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"
)

// installHint is added to the error when the tart binary cannot be found.
const installHint = "install it with: brew install cirruslabs/cli/tart"

// ErrExists is returned (wrapped) by Clone when a local VM with the target name
// already exists: tart itself would silently overwrite it.
var ErrExists = errors.New("a local VM with this name already exists")

// Error is a failed tart invocation.
type Error struct {
	Verb     string // tart subcommand, e.g. "clone" or "--version"
	Name     string // VM the call was about, "" for list and --version
	ExitCode int    // tart's exit code; -1 when it did not exit normally (killed, not started)
	Stderr   string // the line of tart's output that explains the failure
	Err      error  // *exec.ExitError, or the error starting the process

	ctxErr error  // set when the call was cut off by its context
	output string // bounded error output, searched by the classifiers
	path   string // binary, for the install hint
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("tart ")
	b.WriteString(e.Verb)
	if e.Name != "" {
		b.WriteString(" ")
		b.WriteString(e.Name)
	}
	b.WriteString(": ")
	switch {
	case e.NotInstalled():
		fmt.Fprintf(&b, "tart binary %q not found (%s): %v", e.path, installHint, e.Err)
		return b.String()
	case e.ExitCode == 0 && e.GuestCrashed():
		b.WriteString("exit 0 after a guest crash")
	case e.ctxErr != nil:
		b.WriteString(e.ctxErr.Error())
	case e.ExitCode >= 0:
		b.WriteString("exit ")
		b.WriteString(strconv.Itoa(e.ExitCode))
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("failed")
	}
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// Unwrap exposes the process error (so errors.As finds *exec.ExitError) and,
// when the context cut the call off, the context's error.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.ctxErr != nil {
		errs = append(errs, e.ctxErr)
	}
	return errs
}

func (e *Error) has(s string) bool {
	return strings.Contains(e.output, s) || strings.Contains(e.Stderr, s)
}

// NotFound reports that the VM does not exist: exit 2 with "does not exist"
// from most verbs, exit 1 with `Error: the specified VM "x" does not exist` from
// run (tart checks it in validate()), and rename's "non-existent local VM" (64).
func (e *Error) NotFound() bool {
	switch e.ExitCode {
	case 2:
		return e.has("does not exist")
	case 1:
		return e.has("the specified VM") && e.has("does not exist")
	case 64:
		return e.has("non-existent local VM")
	}
	return false
}

// NotRunning reports tart's `VM "x" is not running` (exit 2).
func (e *Error) NotRunning() bool { return e.ExitCode == 2 && e.has("is not running") }

// AlreadyRunning reports tart's `VM "x" is already running!` (exit 2).
func (e *Error) AlreadyRunning() bool { return e.ExitCode == 2 && e.has("is already running") }

// VMLimit reports Apple's limit of two running macOS VMs, as tart words it (and
// as Virtualization.framework words it, should a tart version not wrap it).
func (e *Error) VMLimit() bool {
	return e.has("The number of VMs exceeds the system limit") ||
		e.has("maximum supported number of active virtual machines")
}

// NoIP reports that `tart ip` found no address (yet).
func (e *Error) NoIP() bool { return e.has("no IP address found") }

// VMRunning reports tart's refusal to delete a running VM (`VM "x" is running`,
// exit 1). Just after a `tart stop` that had to SIGKILL, the dying `tart run`
// may still hold the VM's lock for a moment: worth retrying.
func (e *Error) VMRunning() bool { return e.ExitCode == 1 && e.has(`" is running`) }

// MissingFiles reports a VM directory without all of config.json, disk.img and
// nvram.bin (`VM is missing some of its files`, exit 1): `list` does not show
// it, but the name is taken; delete it.
func (e *Error) MissingFiles() bool { return e.has("VM is missing some of its files") }

// IPRetryable reports an `ip` failure worth retrying while the VM's `tart run`
// is alive: no lease yet, or the DHCP lease file caught mid-rewrite by bootpd
// (`Error: Truncated(...)`, `Error: UnexpectedFormat(...)`). tart reads the
// lease file, not the VM, so any failure but a missing or broken VM may pass.
func (e *Error) IPRetryable() bool {
	if e.Verb != "ip" || e.ctxErr != nil || e.NotInstalled() || e.MissingFiles() {
		return false
	}
	return e.ExitCode == 1
}

// GuestCrashed reports a `tart run` that ended because the guest stopped with
// an error (or lost its network attachment). tart exits 0 then; Run reads the
// run's log to tell it from a clean power-off.
func (e *Error) GuestCrashed() bool {
	return e.has("guest has stopped the virtual machine due to error") ||
		(e.has("network attachment") && e.has("has been disconnected with error"))
}

// hostFixVZ is the operator's fix for Virtualization.framework refusing to
// start any VM (tart issues #921, #1025, #1075, #1132).
const hostFixVZ = "enable automatic login for the user that runs Tarty (System Settings > Users & Groups > Automatically log in), " +
	"never run tart or Tarty as root, and for macOS 15.2+ guests keep that user's login keychain unlocked (security unlock-keychain login.keychain)"

// HostFix returns a one-line fix when the failure is the host's, not the
// VM's: Virtualization.framework's `VZErrorDomain Code=1 "The virtual machine
// failed to start."`, which tart run as root, a missing GUI session or a
// locked login keychain cause. It returns "" otherwise. tarty.HostFix finds
// it through wrapping.
func (e *Error) HostFix() string {
	switch {
	case e.has("VZErrorDomain Code=1") && e.has("failed to start"),
		e.has("Interaction is not allowed with the Security Server"),
		e.has("SecKeyCreateRandomKey"), e.has("Failed to generate keypair"):
		return hostFixVZ
	}
	return ""
}

// NotInstalled reports that the tart binary could not be found or executed.
func (e *Error) NotInstalled() bool {
	return e.ExitCode < 0 && e.Err != nil &&
		(errors.Is(e.Err, exec.ErrNotFound) || errors.Is(e.Err, fs.ErrNotExist))
}

func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// NotFound reports whether err is a tart error saying the VM does not exist.
func NotFound(err error) bool { e, ok := asError(err); return ok && e.NotFound() }

// NotRunning reports whether err is a tart error saying the VM is not running.
func NotRunning(err error) bool { e, ok := asError(err); return ok && e.NotRunning() }

// AlreadyRunning reports whether err is a tart error saying the VM already runs.
func AlreadyRunning(err error) bool { e, ok := asError(err); return ok && e.AlreadyRunning() }

// VMLimit reports whether err is the two-macOS-VM limit.
func VMLimit(err error) bool { e, ok := asError(err); return ok && e.VMLimit() }

// NoIP reports whether err is `tart ip` finding no address.
func NoIP(err error) bool { e, ok := asError(err); return ok && e.NoIP() }

// NotInstalled reports whether err says the tart binary is missing.
func NotInstalled(err error) bool { e, ok := asError(err); return ok && e.NotInstalled() }

// VMRunning reports whether err is `tart delete` refusing a running VM.
func VMRunning(err error) bool { e, ok := asError(err); return ok && e.VMRunning() }

// MissingFiles reports whether err is a VM directory missing some of its files.
func MissingFiles(err error) bool { e, ok := asError(err); return ok && e.MissingFiles() }

// IPRetryable reports whether err is an `ip` failure worth retrying while
// the VM's `tart run` is alive.
func IPRetryable(err error) bool { e, ok := asError(err); return ok && e.IPRetryable() }

// GuestCrashed reports whether err is a `tart run` that ended with a guest crash.
func GuestCrashed(err error) bool { e, ok := asError(err); return ok && e.GuestCrashed() }

// gcFailure starts the line tart prints before every verb but clone and pull
// when it could not clean $TART_HOME/tmp: never the reason a verb failed.
const gcFailure = "Failed to perform garbage collection"

// errorLine is the line of a verb's error output that explains its failure:
// the first non-empty one that is not a garbage-collection warning.
func errorLine(b []byte) string {
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, gcFailure) {
			return l
		}
	}
	return firstLine(b)
}

// firstLine returns the first non-empty line of b, trimmed.
func firstLine(b []byte) string {
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// explainingLine picks the line of `tart run` output that explains its exit:
// the first `Error: ...` line (ArgumentParser errors come first, before the
// usage text), else the last non-empty line, because tart prints informational
// lines (MAC reset, VNC URL) before the error it exits with.
func explainingLine(b []byte) string {
	last := ""
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "Error:") {
			return l
		}
		last = l
	}
	return last
}
