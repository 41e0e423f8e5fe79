package orchard

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// The kinds of controller answers Tarty branches on (reference/orchard.md
// sections 1 and 4). Test with errors.Is; the *APIError carries the details.
var (
	// ErrUnauthorized: 401 with an empty body, the service account or its
	// token is wrong (or missing).
	ErrUnauthorized = errors.New("orchard: the service account or its token was refused")
	// ErrMissingRole: 401 (Orchard does not answer 403) with "all of the
	// following roles must be present: …": the account lacks a role.
	ErrMissingRole = errors.New("orchard: the service account lacks a role")
	// ErrForbidden: 403, which Orchard itself never sends: a proxy in front
	// of the controller refused the request.
	ErrForbidden = errors.New("orchard: forbidden (by a proxy in front of the controller?)")
	// ErrNotFound: 404 with an empty body, no such VM or worker.
	ErrNotFound = errors.New("orchard: not found")
	// ErrConflict: 409, a VM with this name already exists.
	ErrConflict = errors.New("orchard: already exists")
	// ErrUnavailable: 503 with an empty body, the VM's worker is not
	// connected to the controller (or a proxy is reloading); retry later.
	ErrUnavailable = errors.New("orchard: unavailable (the worker is disconnected from the controller)")
)

// APIError is a controller answer other than success.
type APIError struct {
	Method, Path string
	Status       int
	// Message is the controller's {"message":…}, or the start of a body that
	// was not that shape; empty for the empty-bodied answers.
	Message string
	kind    error
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("orchard %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.kind != nil {
		s += " (" + strings.TrimPrefix(e.kind.Error(), "orchard: ") + ")"
	}
	return s
}

// Is matches the sentinel for the answer's kind.
func (e *APIError) Is(target error) bool { return e.kind != nil && target == e.kind }

// Temporary reports whether the same request may succeed later: 5xx, 408
// (a port-forward's wait ran out) and 429.
func (e *APIError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests
}

// classify builds the error for a non-2xx answer.
func classify(method, path string, status int, message string) *APIError {
	e := &APIError{Method: method, Path: path, Status: status, Message: message}
	switch status {
	case http.StatusUnauthorized:
		if strings.Contains(message, "roles must be present") {
			e.kind = ErrMissingRole
		} else {
			e.kind = ErrUnauthorized
		}
	case http.StatusForbidden:
		e.kind = ErrForbidden
	case http.StatusNotFound:
		e.kind = ErrNotFound
	case http.StatusConflict:
		e.kind = ErrConflict
	case http.StatusServiceUnavailable:
		e.kind = ErrUnavailable
	}
	return e
}

// IsNotFound reports whether err is a 404 from the controller.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
