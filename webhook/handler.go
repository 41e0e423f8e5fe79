package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tartyci/tarty"
)

// Canonical header keys (net/http canonicalises X-GitHub-* to X-Github-*).
const (
	hdrEvent     = "X-Github-Event"
	hdrDelivery  = "X-Github-Delivery"
	hdrSig256    = "X-Hub-Signature-256"
	hdrSigLegacy = "X-Hub-Signature"
)

var errTooLarge = fmt.Errorf("body exceeds %d bytes", MaxBodyBytes)

// outcome is how one delivery ended: what was answered, what was counted, and
// why (reason is logged, never sent back).
type outcome struct {
	code   int
	result string
	msg    string // public message for error answers
	reason error
	job    *tarty.JobEvent
}

// Pre-encoded success bodies: answers stay small and cost no encoding.
var resultBodies = map[string][]byte{}

func init() {
	for _, r := range []string{resultAccepted, resultIgnoredLabels, resultIgnoredScope,
		resultIgnoredAction, resultIgnoredEvent, resultDuplicate, resultPong} {
		resultBodies[r] = []byte(`{"result":"` + r + `"}`)
	}
}

func (s *Server) handleDelivery(c echo.Context) error {
	start := time.Now()
	r := c.Request()
	event := r.Header.Get(hdrEvent)
	id := r.Header.Get(hdrDelivery)

	buf := s.getBuf()
	defer s.putBuf(buf)
	o := s.deliver(r, event, id, buf)

	s.metrics.deliveries.WithLabelValues(eventLabel(event), o.result).Inc()
	s.logOutcome(c, event, id, o, time.Since(start))
	if body, ok := resultBodies[o.result]; ok {
		return c.JSONBlob(o.code, body)
	}
	return echo.NewHTTPError(o.code, o.msg)
}

// deliver runs the checks in the contract's order: size, signature over the raw
// bytes, event header, then parsing. Nothing is parsed before the signature holds.
func (s *Server) deliver(r *http.Request, event, id string, buf *bytes.Buffer) outcome {
	if err := readBody(r, buf); err != nil {
		if errors.Is(err, errTooLarge) {
			return outcome{code: http.StatusRequestEntityTooLarge, result: resultTooLarge,
				msg: "body exceeds 5 MiB", reason: err}
		}
		return outcome{code: http.StatusBadRequest, result: resultBadRequest, msg: "unreadable body", reason: err}
	}
	body := buf.Bytes()
	if err := s.checkSignature(r.Header, body); err != nil {
		return outcome{code: http.StatusUnauthorized, result: resultBadSignature, msg: "invalid signature", reason: err}
	}
	if event == "" {
		return badRequest("missing X-GitHub-Event header", nil)
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		// A hook set to the form content type: say how to fix it rather than
		// "malformed JSON".
		return badRequest("webhook content type must be application/json", nil)
	}
	if len(id) > maxDeliveryIDLen {
		return badRequest("X-GitHub-Delivery too long", fmt.Errorf("delivery id of %d bytes", len(id)))
	}
	switch event {
	case eventWorkflowJob:
		return s.deliverJob(r.Context(), body, id)
	case eventPing:
		if !json.Valid(body) {
			return badRequest("malformed JSON", errors.New("ping body is not JSON"))
		}
		return outcome{code: http.StatusOK, result: resultPong}
	default:
		// GitHub adds event types over time; a signed one we do not use is fine.
		if !json.Valid(body) {
			return badRequest("malformed JSON", errors.New("body is not JSON"))
		}
		return outcome{code: http.StatusAccepted, result: resultIgnoredEvent}
	}
}

func (s *Server) deliverJob(ctx context.Context, body []byte, id string) outcome {
	ev, err := decodeJob(body, id)
	if err != nil {
		msg := "malformed JSON"
		if errors.Is(err, errNoJobID) {
			msg = "missing workflow_job.id"
		}
		return badRequest(msg, err)
	}
	// Deliveries without an ID are processed, not deduplicated.
	if id != "" {
		if !s.seen.reserve(id) {
			return outcome{code: http.StatusAccepted, result: resultDuplicate, job: &ev}
		}
	}
	o := s.route(ctx, ev)
	if id != "" {
		if o.code == http.StatusServiceUnavailable {
			s.seen.release(id) // not accepted: a redelivery must still work
		} else {
			s.seen.commit(id)
		}
	}
	return o
}

// route decides what an authentic workflow_job does and hands it on.
func (s *Server) route(ctx context.Context, ev tarty.JobEvent) outcome {
	ignored := func(result string) outcome {
		return outcome{code: http.StatusAccepted, result: result, job: &ev}
	}
	if !ev.Action.Valid() {
		// GitHub documents exactly four actions; a new one is not an error of the
		// sender, so it is acknowledged, counted and left alone.
		return ignored(resultIgnoredAction)
	}
	if !s.scope.contains(ev) {
		return ignored(resultIgnoredScope)
	}
	if !s.wants(ev) {
		return ignored(resultIgnoredLabels)
	}
	if !s.enqueue(ctx, ev) {
		return outcome{code: http.StatusServiceUnavailable, result: resultOverloaded,
			msg:    "scheduler queue is full; the reconciliation poll will pick the job up",
			reason: fmt.Errorf("events queue full for %s", s.opts.EnqueueTimeout), job: &ev}
	}
	return outcome{code: http.StatusAccepted, result: resultAccepted, job: &ev}
}

// wants reports whether the scheduler should hear of ev. Demand only concerns
// jobs whose labels match. Two exceptions, both for in_progress and completed
// events, which can only remove demand (an unknown job ID is a no-op): those
// with no labels at all (observed for completed jobs), and those of one of our
// runners, which may have been handed a job with other labels.
func (s *Server) wants(ev tarty.JobEvent) bool {
	if s.opts.Matcher.Match(ev.Labels) {
		return true
	}
	if ev.Action != tarty.ActionInProgress && ev.Action != tarty.ActionCompleted {
		return false
	}
	return len(ev.Labels) == 0 ||
		s.opts.RunnerPrefix != "" && strings.HasPrefix(ev.RunnerName, s.opts.RunnerPrefix+"-")
}

// enqueue hands ev to the scheduler, waiting at most EnqueueTimeout for room.
func (s *Server) enqueue(ctx context.Context, ev tarty.JobEvent) bool {
	select {
	case s.events <- ev:
		return true
	default:
	}
	t := time.NewTimer(s.opts.EnqueueTimeout)
	defer t.Stop()
	select {
	case s.events <- ev:
		return true
	case <-t.C:
		return false
	case <-ctx.Done(): // the client went away
		return false
	}
}

func (s *Server) checkSignature(h http.Header, body []byte) error {
	sig := h.Get(hdrSig256)
	if sig == "" {
		if h.Get(hdrSigLegacy) != "" {
			return errSHA1Only
		}
		return errNoSignature
	}
	return s.sig.verify(sig, body)
}

func badRequest(msg string, reason error) outcome {
	if reason == nil {
		reason = errors.New(msg)
	}
	return outcome{code: http.StatusBadRequest, result: resultBadRequest, msg: msg, reason: reason}
}

// readBody reads at most MaxBodyBytes into buf; a declared or actual larger body
// is errTooLarge.
func readBody(r *http.Request, buf *bytes.Buffer) error {
	if r.ContentLength > MaxBodyBytes {
		return errTooLarge
	}
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	lr := io.LimitedReader{R: r.Body, N: MaxBodyBytes + 1}
	if _, err := buf.ReadFrom(&lr); err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if buf.Len() > MaxBodyBytes {
		return errTooLarge
	}
	return nil
}

// Bodies are pooled; buffers grown beyond 1 MiB (rare, and bounded by
// MaxBodyBytes) are left to the garbage collector rather than kept.
const maxPooledBuf = 1 << 20

func (s *Server) getBuf() *bytes.Buffer {
	if b, ok := s.bufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (s *Server) putBuf(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuf {
		return
	}
	b.Reset()
	s.bufs.Put(b)
}
