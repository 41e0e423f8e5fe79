package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
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
	// authentic is set once the signature held: only such a delivery is
	// "in flight" for a graceful shutdown, and only a refusal before it is
	// logged through the once-a-minute limiter.
	authentic bool
}

// Pre-encoded success bodies: answers stay small and cost no encoding.
var resultBodies = map[string][]byte{}

func init() {
	for _, r := range []string{resultAccepted, resultIgnoredLabels, resultIgnoredScope, resultIgnoredStale,
		resultIgnoredRunnerGroup, resultIgnoredAction, resultIgnoredEvent, resultDuplicate, resultPong} {
		resultBodies[r] = []byte(`{"result":"` + r + `"}`)
	}
}

func (s *Server) handleDelivery(c echo.Context) error {
	start := time.Now()
	r := c.Request()
	event := r.Header.Get(hdrEvent)
	id := r.Header.Get(hdrDelivery)

	o := s.deliver(r, event, id)
	if o.authentic {
		defer s.handling.Add(-1) // counted in deliver; released once answered
	}

	s.metrics.deliveries.WithLabelValues(eventLabel(event), o.result).Inc()
	s.logOutcome(r, event, id, o, time.Since(start))
	if body, ok := resultBodies[o.result]; ok {
		return c.JSONBlob(o.code, body)
	}
	if !o.authentic {
		// The body may be unread: do not keep the connection for another request.
		c.Response().Header().Set(echo.HeaderConnection, "close")
	}
	// The same {"message": ...} echo's error handler writes, written here so the
	// answer is out before the delivery stops counting as in flight.
	return c.JSON(o.code, map[string]string{"message": o.msg})
}

// deliver runs the checks in the contract's order: size, signature over the raw
// bytes, event header, then parsing. Nothing is parsed before the signature
// holds. Nothing refers to the body once it returns, so its buffer goes back
// to the pool here.
func (s *Server) deliver(r *http.Request, event, id string) outcome {
	buf, err := s.readBody(r)
	if err != nil {
		switch {
		case errors.Is(err, errTooLarge):
			return outcome{code: http.StatusRequestEntityTooLarge, result: resultTooLarge,
				msg: "body exceeds 5 MiB", reason: err}
		case errors.Is(err, errNoReadSlot):
			return outcome{code: http.StatusServiceUnavailable, result: resultBusy,
				msg: "too many deliveries at once; retry later", reason: err}
		}
		return outcome{code: http.StatusBadRequest, result: resultBadRequest, msg: "unreadable body", reason: err}
	}
	var body []byte
	if buf != nil { // nil for an empty body
		defer s.putBuf(buf)
		body = buf.Bytes()
	}
	if err := s.checkSignature(r.Header, body); err != nil {
		return outcome{code: http.StatusUnauthorized, result: resultBadSignature, msg: "invalid signature", reason: err}
	}
	s.handling.Add(1)
	o := s.deliverSigned(r, event, id, body)
	o.authentic = true
	return o
}

// deliverSigned handles a delivery whose signature held.
func (s *Server) deliverSigned(r *http.Request, event, id string, body []byte) outcome {
	if event == "" {
		return badRequest("missing X-GitHub-Event header", nil)
	}
	if len(id) > maxDeliveryIDLen {
		return badRequest("X-GitHub-Delivery too long", fmt.Errorf("delivery id of %d bytes", len(id)))
	}
	if isForm(r.Header.Get(echo.HeaderContentType)) {
		// A hook with the form content type (the default for hooks created
		// through the REST API): the signature covered the raw form body,
		// the JSON is its payload field.
		p, err := formPayload(body)
		if err != nil {
			return badRequest("form-encoded delivery without a payload field", err)
		}
		body = p
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

// isForm reports whether a Content-Type is GitHub's form encoding.
func isForm(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// formPayload returns the payload field of a form-encoded body.
func formPayload(body []byte) ([]byte, error) {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("malformed form body: %w", err)
	}
	p, ok := v["payload"]
	if !ok || len(p) != 1 {
		return nil, errors.New("form body has no single payload field")
	}
	return []byte(p[0]), nil
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
	// A signed body replayed under a new delivery ID, or a very late
	// redelivery: GitHub has failed a job queued this long, so it is no demand.
	if ev.Action == tarty.ActionQueued && ev.Stale(s.opts.Now()) {
		return ignored(resultIgnoredStale)
	}
	// GitHub will never hand this job to our runner group; in_progress and
	// completed events still pass (they can only remove demand).
	if (ev.Action == tarty.ActionQueued || ev.Action == tarty.ActionWaiting) &&
		s.opts.Serves != nil && !s.opts.Serves(ev.Repository) {
		return ignored(resultIgnoredRunnerGroup)
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
	return sendWithin(ctx, s.events, ev, s.opts.EnqueueTimeout)
}

// sendWithin sends v on ch, waiting at most d for room; false when the time
// runs out or ctx is done (the client went away). The timer is only made when
// ch is full.
func sendWithin[T any](ctx context.Context, ch chan<- T, v T, d time.Duration) bool {
	select {
	case ch <- v:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case ch <- v:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
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

var errNoReadSlot = errors.New("no read slot free")

// readBody reads the body, at most MaxBodyBytes (errTooLarge beyond), into a
// pooled buffer the caller puts back (nil for an empty body). Memory follows
// what arrives, never what is declared: the first byte is awaited without a
// buffer or a read slot, then the buffer grows from at most initialBodyBuf as
// the rest comes in, while one of MaxConcurrentReads slots is held
// (errNoReadSlot when none frees within ReadSlotTimeout). So clients that declare 5 MiB and send nothing cost
// no body buffer at all, and all clients together at most MaxConcurrentReads
// bodies.
func (s *Server) readBody(r *http.Request) (*bytes.Buffer, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, errTooLarge
	}
	// The first byte is awaited with no buffer and no slot held (the rest of
	// what arrived stays in net/http's connection buffer).
	var first [1]byte
	n, err := r.Body.Read(first[:])
	for n == 0 && err == nil {
		n, err = r.Body.Read(first[:])
	}
	switch {
	case n == 0 && errors.Is(err, io.EOF):
		return nil, nil // empty body
	case err != nil && !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("read body: %w", err)
	}

	if !sendWithin(r.Context(), s.reads, struct{}{}, s.opts.ReadSlotTimeout) {
		return nil, fmt.Errorf("%w within %s (%d bodies being read)", errNoReadSlot,
			s.opts.ReadSlotTimeout, s.opts.MaxConcurrentReads)
	}
	defer func() { <-s.reads }()

	b := s.getBuf()
	b.Write(first[:n])
	if rest := r.ContentLength - int64(n); rest > 0 {
		b.Grow(int(min(rest, initialBodyBuf)))
	}
	lr := io.LimitedReader{R: r.Body, N: MaxBodyBytes + 1 - int64(n)}
	if _, err := b.ReadFrom(&lr); err != nil {
		s.putBuf(b)
		return nil, fmt.Errorf("read body: %w", err)
	}
	if b.Len() > MaxBodyBytes {
		s.putBuf(b)
		return nil, errTooLarge
	}
	return b, nil
}

// Bodies are pooled; buffers grown beyond 64 KiB (workflow_job payloads are
// 8-14 KB) are left to the garbage collector rather than kept, so what an
// anonymous client made the server allocate does not stay.
const maxPooledBuf = 64 << 10

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
