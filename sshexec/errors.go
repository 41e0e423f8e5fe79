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
// its arguments. Leading variable assignments (`TOKEN=secret ./run.sh`) are
// skipped, quotes included, because their values may be credentials; a command
// made only of assignments is shown as its first name with the value redacted.
func firstWord(command string) string {
	rest := strings.TrimLeft(command, " \t\r\n")
	if rest == "" {
		return "(empty command)"
	}
	firstName := ""
	for rest != "" {
		word, after := shellWord(rest)
		name, _, isAssign := strings.Cut(word, "=")
		if !isAssign || !isShellName(name) {
			break
		}
		if firstName == "" {
			firstName = name
		}
		rest = strings.TrimLeft(after, " \t\r\n")
	}
	if rest == "" {
		return firstName + "=***"
	}
	w, _ := shellWord(rest)
	if len(w) > 64 {
		w = w[:64] + "…"
	}
	return w
}

// shellWord splits the first word off s (which starts with a non-blank),
// keeping quotes as written: a blank ends the word only outside single
// quotes, double quotes and backslash escapes, as in sh.
func shellWord(s string) (word, rest string) {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case c == '\\':
			i++ // the next byte is literal, inside double quotes too
		case quote == '"':
			if c == '"' {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return s[:i], s[i:]
		}
	}
	return s, ""
}

// isShellName reports whether s is a valid sh variable name.
func isShellName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r != '_' && !(r >= 'a' && r <= 'z') && !(r >= 'A' && r <= 'Z') && (i == 0 || !(r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}
