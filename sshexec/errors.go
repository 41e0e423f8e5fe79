package sshexec

import (
	"errors"
	"fmt"
	"strings"
)

// ErrAuth is wrapped by every error caused by the guest refusing our
// credentials (wrong key, wrong password), for both clients.
var ErrAuth = errors.New("ssh authentication failed")

// ExitError reports a command that ran in the guest and exited non-zero or was
// killed by a signal. Its message names only the command's first word: command
// lines are not secret, but nothing from stdin ever reaches an error.
type ExitError struct {
	Command string // first word of the command
	Status  int    // exit status; 128+n when killed by signal n (as a shell reports it)
	Signal  string // signal name without "SIG" when the guest reported one
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("%s: killed by signal %s", e.Command, e.Signal)
	}
	return fmt.Sprintf("%s: exit status %d", e.Command, e.Status)
}

// ExitStatus is the guest command's exit status (the scheduler's Guest port
// looks for this method).
func (e *ExitError) ExitStatus() int { return e.Status }

// HostKeyError reports that a guest presented a host key other than the one
// trusted for its image. Clones of one image share the image's host key, so
// this means the image was rebuilt (call ForgetHostKey) or something is
// impersonating the guest.
type HostKeyError struct {
	Image     string
	Host      string
	Trusted   string // SHA256 fingerprint(s) of the trusted key(s), comma-separated
	Presented string // SHA256 fingerprint of the key the guest presented, or "unknown"
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("ssh host key of image %q changed (guest %s): trusted %s, presented %s; if the image was rebuilt, forget its host key",
		e.Image, e.Host, e.Trusted, e.Presented)
}

// HostKeyChanged lets callers detect this error through an interface, without
// importing sshexec.
func (e *HostKeyError) HostKeyChanged() bool { return true }

// firstWord is what errors and logs say about a command: its program, never
// its arguments.
func firstWord(command string) string {
	f := strings.Fields(command)
	if len(f) == 0 {
		return "(empty command)"
	}
	w := f[0]
	if len(w) > 64 {
		w = w[:64] + "…"
	}
	return w
}
