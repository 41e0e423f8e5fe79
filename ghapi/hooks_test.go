package ghapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/tartyci/tarty/ghapi/fakegithub"
)

const hookTestSecret = "hook-test-secret-0123456789"

// hookReceiver stands in for Tarty's webhook listener: it checks each
// delivery's signature and remembers its GUID; while down it answers 502,
// as cloudflared does when the daemon behind it is not running.
type hookReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	down  bool
	guids []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		down := h.down
		h.mu.Unlock()
		if down {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if _, err := github.ValidatePayload(r, []byte(hookTestSecret)); err != nil {
			t.Errorf("delivery %s: %v", github.DeliveryID(r), err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.mu.Lock()
		h.guids = append(h.guids, github.DeliveryID(r))
		h.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) setDown(down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = down
}

func (h *hookReceiver) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.guids...)
}

func waitFakeHooks(t *testing.T, s *fakegithub.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFindHook(t *testing.T) {
	ctx := context.Background()
	s := newFake(t, fakegithub.Config{WebhookURL: "https://hooks.example.com/github/webhook", WebhookHookID: 42})
	s.AddRepo("app")
	c := newTestClient(t, s, nil)

	for _, path := range []string{"/github/webhook", "/github/webhook/", "github/webhook"} {
		h, err := c.FindHook(ctx, 0, path)
		if err != nil || h.ID != 42 || h.Repository != "" || !h.Active || h.URL != "https://hooks.example.com/github/webhook" {
			t.Errorf("by path %q: %+v, %v", path, h, err)
		}
		if w := h.Where(); w != "organization acme" {
			t.Errorf("by path %q: Where() = %q, want organization acme", path, w)
		}
	}
	other := s.AddHook(fakegithub.Hook{URL: "https://ci.example.com/jenkins", Active: true})
	if h, err := c.FindHook(ctx, other, "/github/webhook"); err != nil || h.ID != other {
		t.Errorf("by ID: %+v, %v", h, err)
	}
	if _, err := c.FindHook(ctx, 0, "/elsewhere"); !errors.Is(err, ErrHookNotFound) || !strings.Contains(err.Error(), "server.webhook_path") {
		t.Errorf("no such path: %v", err)
	}
	if _, err := c.FindHook(ctx, 9999, "/github/webhook"); !errors.Is(err, ErrHookNotFound) || !strings.Contains(err.Error(), "9999") {
		t.Errorf("no such ID: %v", err)
	}

	// A second Mac's hook with the same path, inactive: the active one wins.
	// Once both are active, the path cannot tell them apart.
	s.AddHook(fakegithub.Hook{ID: 43, URL: "https://mac2.example.com/github/webhook", Active: false})
	if h, err := c.FindHook(ctx, 0, "/github/webhook"); err != nil || h.ID != 42 {
		t.Errorf("inactive twin: %+v, %v", h, err)
	}
	s.AddHook(fakegithub.Hook{ID: 44, URL: "https://user:pw@mac3.example.com/github/webhook?x=1", Active: true})
	_, err := c.FindHook(ctx, 0, "/github/webhook")
	if !errors.Is(err, ErrHookAmbiguous) || !strings.Contains(err.Error(), "github.hook_id") || strings.Contains(err.Error(), "pw") {
		t.Errorf("two active twins: %v", err)
	}

	// Repository scope: its own hooks first, then the organisation's.
	rc := newTestClient(t, s, func(o *Options) { o.Repository = "app" })
	if h, err := rc.FindHook(ctx, 42, ""); err != nil || h.ID != 42 || h.Repository != "" {
		t.Errorf("repo scope, org hook: %+v, %v", h, err)
	}
	s.SetWebhookRepository("acme/app")
	if h, err := rc.FindHook(ctx, 0, "/github/webhook"); err != nil || h.ID != 42 || h.Repository != "acme/app" || h.Where() != "repository acme/app" {
		t.Errorf("repo scope, repo hook: %+v (%s), %v", h, h.Where(), err)
	}

	// Without the permission: 404 for a classic token, 403 otherwise.
	for _, st := range []int{http.StatusNotFound, http.StatusForbidden} {
		s.DenyHooks(st)
		_, err := c.FindHook(ctx, 0, "/github/webhook")
		var ae *APIError
		if !errors.Is(err, ErrHookAccess) || !errors.As(err, &ae) || ae.StatusCode != st || !strings.Contains(ae.Fix, "admin:org_hook") {
			t.Errorf("denied %d: %v", st, err)
		}
		if _, err := rc.FindHook(ctx, 0, "/github/webhook"); !errors.Is(err, ErrHookAccess) || !strings.Contains(err.Error(), "admin:repo_hook") {
			t.Errorf("repo scope denied %d: %v", st, err)
		}
	}
}

func TestHookDeliveriesAndRedeliver(t *testing.T) {
	ctx := context.Background()
	rcv := newHookReceiver(t)
	s := newFake(t, fakegithub.Config{WebhookURL: rcv.srv.URL + "/github/webhook", WebhookSecret: hookTestSecret, WebhookHookID: 42})
	now := time.Now()
	var (
		mu     sync.Mutex
		sleeps []time.Duration
	)
	c := newTestClient(t, s, func(o *Options) {
		o.Clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		o.Sleep = func(_ context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			sleeps = append(sleeps, d)
			now = now.Add(d)
			return nil
		}
	})
	h, err := c.FindHook(ctx, 0, "/github/webhook")
	if err != nil {
		t.Fatal(err)
	}

	// 120 delivered, then 130 fail while the receiver is down.
	for range 120 {
		s.QueueJob("app", "tarty")
	}
	waitFakeHooks(t, s)
	rcv.setDown(true)
	for range 130 {
		s.QueueJob("app", "tarty")
	}
	waitFakeHooks(t, s)
	rcv.setDown(false)

	all, complete, err := c.HookDeliveries(ctx, h, 0, time.Time{}, 0)
	if err != nil || !complete || len(all) != 250 {
		t.Fatalf("all: %d, complete %v, %v", len(all), complete, err)
	}
	if n := s.Calls("GET", "/orgs/acme/hooks/42/deliveries"); n != 3 {
		t.Errorf("%d pages for 250 deliveries", n)
	}
	for i, d := range all {
		if i > 0 && d.ID >= all[i-1].ID {
			t.Fatalf("not newest first at %d", i)
		}
		if d.OK() != (i >= 130) || d.GUID == "" || d.Event != "workflow_job" || d.Action != "queued" || d.DeliveredAt.IsZero() {
			t.Fatalf("delivery %d: %+v", i, d)
		}
	}
	if all[0].Status != "Invalid HTTP Response: 502" || all[0].StatusCode != 502 {
		t.Errorf("failed delivery: %+v", all[0])
	}

	// Down to a delivery already processed, and bounded.
	after := all[100].ID
	some, complete, err := c.HookDeliveries(ctx, h, after, time.Time{}, 0)
	if err != nil || !complete || len(some) != 100 || some[99].ID != all[99].ID {
		t.Errorf("after %d: %d, %v, %v", after, len(some), complete, err)
	}
	some, complete, _ = c.HookDeliveries(ctx, h, 0, time.Time{}, 150)
	if complete || len(some) != 150 {
		t.Errorf("max 150: %d, complete %v", len(some), complete)
	}
	some, complete, _ = c.HookDeliveries(ctx, h, 0, all[0].DeliveredAt.Add(time.Hour), 0)
	if !complete || len(some) != 0 {
		t.Errorf("since after the newest: %d, complete %v", len(some), complete)
	}

	// Redeliver the three oldest failures: accepted (202), they arrive
	// signed with their GUIDs, and the writes are a second apart.
	failed := all[127:130]
	for i := len(failed) - 1; i >= 0; i-- {
		if err := c.RedeliverHookDelivery(ctx, h, failed[i].ID); err != nil {
			t.Fatalf("redeliver %d: %v", failed[i].ID, err)
		}
	}
	waitFakeHooks(t, s)
	got := rcv.received()
	got = got[len(got)-3:]
	for i, g := range got {
		if want := failed[len(failed)-1-i].GUID; g != want {
			t.Errorf("redelivery %d arrived as %s, want %s", i, g, want)
		}
	}
	mu.Lock()
	if len(sleeps) != 2 || sleeps[0] != time.Second || sleeps[1] != time.Second {
		t.Errorf("writes spaced by %v, want 1s each", sleeps)
	}
	mu.Unlock()
	newest, _, _ := c.HookDeliveries(ctx, h, all[0].ID, time.Time{}, 0)
	if len(newest) != 3 || !newest[0].Redelivery || !newest[0].OK() || newest[0].GUID != failed[0].GUID {
		t.Errorf("attempts in the list: %+v", newest)
	}

	// Refusals: an unknown delivery; no permission to write.
	if err := c.RedeliverHookDelivery(ctx, h, 1); !errors.Is(err, ErrHookAccess) {
		t.Errorf("unknown delivery: %v", err) // 404: GitHub cannot tell it from a missing permission
	}
	s.Inject(fakegithub.Fault{Path: "/orgs/acme/hooks/42/deliveries/*/attempts", Kind: fakegithub.ServerError})
	if err := c.RedeliverHookDelivery(ctx, h, failed[0].ID); errors.Is(err, ErrHookAccess) || err == nil {
		t.Errorf("502: %v", err)
	}
	s.DenyHooks(http.StatusForbidden)
	if err := c.RedeliverHookDelivery(ctx, h, failed[0].ID); !errors.Is(err, ErrHookAccess) || !strings.Contains(err.Error(), "Webhooks: read and write") {
		t.Errorf("403: %v", err)
	}
	if _, _, err := c.HookDeliveries(ctx, h, 0, time.Time{}, 0); !errors.Is(err, ErrHookAccess) {
		t.Errorf("list 403: %v", err)
	}
}
