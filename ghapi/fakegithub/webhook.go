package fakegithub

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Delivery is one webhook delivery the server made (or dropped), as GitHub's
// hook deliveries list shows it.
type Delivery struct {
	ID         int64  // the delivery's ID in the deliveries list
	GUID       string // X-GitHub-Delivery (the same for a redelivery)
	Event      string // X-GitHub-Event: "workflow_job"
	Action     string // queued, waiting, in_progress, completed
	JobID      int64
	Repository string
	// StatusCode is what the receiver answered; 0 when it could not be
	// reached or the delivery was dropped.
	StatusCode  int
	Err         string // why it failed, when it did
	Dropped     bool   // dropped on purpose (DropWebhooks): GitHub never got through
	Redelivery  bool
	DeliveredAt time.Time // the server's clock
	Body        []byte    // the raw body that was signed
}

// OK reports whether the receiver answered 2xx.
func (d Delivery) OK() bool { return d.StatusCode >= 200 && d.StatusCode <= 299 }

// hooks sends deliveries one at a time, in the order the events happened.
type hooks struct {
	url     string
	secret  []byte
	form    bool
	hookID  int64
	client  *http.Client
	now     func() time.Time
	ctx     context.Context
	cancel  context.CancelFunc
	stopped chan struct{}

	mu      sync.Mutex
	queue   []*Delivery
	wake    chan struct{}
	pending int
	idle    chan struct{} // closed while nothing is queued or being sent
	records []Delivery
	nextID  int64
	drop    func(Delivery) bool
}

func newHooks(cfg Config, now func() time.Time) *hooks {
	ctx, cancel := context.WithCancel(context.Background())
	h := &hooks{
		url: cfg.WebhookURL, secret: []byte(cfg.WebhookSecret), form: cfg.WebhookForm, hookID: cfg.WebhookHookID,
		client: &http.Client{Timeout: 10 * time.Second}, now: now, ctx: ctx, cancel: cancel,
		stopped: make(chan struct{}), wake: make(chan struct{}, 1), idle: make(chan struct{}), nextID: 90000000,
	}
	if h.hookID == 0 {
		h.hookID = 424242
	}
	close(h.idle)
	go h.run()
	return h
}

// stop ends the sender; what was still queued is abandoned (and WaitWebhooks
// no longer waits for it).
func (h *hooks) stop() {
	h.cancel()
	<-h.stopped
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queue = nil
	if h.pending > 0 {
		h.pending = 0
		close(h.idle)
	}
}

// push queues a delivery of body.
func (h *hooks) push(event, action string, jobID int64, repo string, body []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextID++
	d := Delivery{ID: h.nextID, GUID: newGUID(), Event: event, Action: action, JobID: jobID, Repository: repo, Body: body}
	h.enqueueLocked(&d)
}

func (h *hooks) enqueueLocked(d *Delivery) {
	if h.pending == 0 {
		h.idle = make(chan struct{})
	}
	h.pending++
	h.queue = append(h.queue, d)
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *hooks) run() {
	defer close(h.stopped)
	for {
		h.mu.Lock()
		var d *Delivery
		if len(h.queue) > 0 {
			d, h.queue = h.queue[0], h.queue[1:]
		}
		h.mu.Unlock()
		if d == nil {
			select {
			case <-h.wake:
				continue
			case <-h.ctx.Done():
				return
			}
		}
		h.deliver(d)
		h.mu.Lock()
		h.records = append(h.records, *d)
		h.pending--
		if h.pending == 0 {
			close(h.idle)
		}
		h.mu.Unlock()
	}
}

func (h *hooks) deliver(d *Delivery) {
	d.DeliveredAt = h.now()
	h.mu.Lock()
	drop := h.drop
	h.mu.Unlock()
	if drop != nil && drop(*d) {
		d.Dropped, d.Err = true, "dropped by the fake (a missed delivery)"
		return
	}
	body := d.Body
	contentType := "application/json"
	if h.form {
		body = []byte("payload=" + url.QueryEscape(string(d.Body)))
		contentType = "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		d.Err = err.Error()
		return
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "GitHub-Hookshot/fake")
	req.Header.Set("X-GitHub-Event", d.Event)
	req.Header.Set("X-GitHub-Delivery", d.GUID)
	req.Header.Set("X-GitHub-Hook-ID", strconv.FormatInt(h.hookID, 10))
	req.Header.Set("X-GitHub-Hook-Installation-Target-Type", "organization")
	req.Header.Set("X-GitHub-Hook-Installation-Target-ID", "1")
	if len(h.secret) > 0 {
		req.Header.Set("X-Hub-Signature-256", "sha256="+hexHMAC(sha256.New, h.secret, body))
		req.Header.Set("X-Hub-Signature", "sha1="+hexHMAC(sha1.New, h.secret, body))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		d.Err = err.Error()
		return
	}
	_ = resp.Body.Close()
	d.StatusCode = resp.StatusCode
	if !d.OK() {
		d.Err = resp.Status
	}
}

func hexHMAC(h func() hash.Hash, key, body []byte) string {
	m := hmac.New(h, key)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func newGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b)
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// Deliveries lists the deliveries attempted so far, oldest first.
func (s *Server) Deliveries() []Delivery {
	if s.hooks == nil {
		return nil
	}
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	out := make([]Delivery, len(s.hooks.records))
	for i, d := range s.hooks.records {
		d.Body = append([]byte(nil), d.Body...)
		out[i] = d
	}
	return out
}

// WaitWebhooks waits until every delivery queued so far was attempted, or
// ctx ends.
func (s *Server) WaitWebhooks(ctx context.Context) error {
	if s.hooks == nil {
		return nil
	}
	s.hooks.mu.Lock()
	idle := s.hooks.idle
	s.hooks.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DropWebhooks makes the server drop every delivery for which drop returns
// true instead of sending it (a missed webhook: the poller must find the
// job); nil sends everything again. Dropped deliveries are recorded as
// failed, so that they can be redelivered.
func (s *Server) DropWebhooks(drop func(Delivery) bool) {
	if s.hooks == nil {
		return
	}
	s.hooks.mu.Lock()
	s.hooks.drop = drop
	s.hooks.mu.Unlock()
}

// Redeliver sends delivery id again, with the same GUID and body, as
// GitHub's redelivery does; the attempt is recorded as a new delivery
// marked Redelivery.
func (s *Server) Redeliver(id int64) error {
	if s.hooks == nil {
		return fmt.Errorf("fakegithub: no webhook configured")
	}
	h := s.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range h.records {
		if d.ID == id {
			h.nextID++
			r := Delivery{ID: h.nextID, GUID: d.GUID, Event: d.Event, Action: d.Action, JobID: d.JobID,
				Repository: d.Repository, Redelivery: true, Body: d.Body}
			h.enqueueLocked(&r)
			return nil
		}
	}
	return fmt.Errorf("fakegithub: no delivery %d", id)
}

// emitJob queues a workflow_job delivery for j; the caller holds s.mu.
func (s *Server) emitJob(action string, j *Job) {
	if s.hooks == nil {
		return
	}
	b, err := json.Marshal(s.jobEventPayload(action, j))
	if err != nil {
		return
	}
	s.hooks.push("workflow_job", action, j.ID, j.Repo, b)
}

// jobEventPayload is a workflow_job delivery body shaped like GitHub's; the
// caller holds s.mu.
func (s *Server) jobEventPayload(action string, j *Job) map[string]any {
	repo := s.st.repos[strings.ToLower(j.Repo)]
	var repoObj map[string]any
	if repo != nil {
		repoObj = s.repoJSON(repo)
	} else {
		owner, name, _ := strings.Cut(j.Repo, "/")
		repoObj = map[string]any{"name": name, "full_name": j.Repo, "private": true, "owner": map[string]any{"login": owner}}
	}
	p := map[string]any{
		"action":       action,
		"workflow_job": s.jobJSON(j),
		"repository":   repoObj,
		"organization": map[string]any{"login": s.org, "id": 1, "node_id": "O_kgDOAAAAAQ", "url": s.apiURL("orgs/" + s.org)},
		"sender":       map[string]any{"login": "octocat", "id": 583231, "type": "User"},
	}
	if s.cfg.App != nil {
		p["installation"] = map[string]any{"id": s.cfg.App.InstallationID, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u"}
	}
	return p
}
