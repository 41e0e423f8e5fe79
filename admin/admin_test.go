package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tartyci/tarty/scheduler"
)

type fakeDaemon struct {
	status    scheduler.Status
	statusErr error
	reconcile func() error
}

func (f *fakeDaemon) Status(context.Context) (scheduler.Status, error) { return f.status, f.statusErr }
func (f *fakeDaemon) Reconcile(context.Context) error                  { return f.reconcile() }

type fakeControls struct{ rebuild, rollback error }

func (f fakeControls) Rebuild(context.Context) error  { return f.rebuild }
func (f fakeControls) Rollback(context.Context) error { return f.rollback }

func start(t *testing.T, d Daemon, c Controls) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tarty_jobs_queued", Help: "x"})
	reg.MustRegister(g)
	s, err := New(Options{Listen: "127.0.0.1:0", Daemon: d, Controls: c, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return "http://" + s.Addr().String()
}

func call(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	d := &fakeDaemon{status: scheduler.Status{Ready: true, Capacity: 2, Slots: []scheduler.SlotStatus{{State: scheduler.SlotIdle, VM: "tarty-x-1"}}},
		reconcile: func() error { return nil }}
	base := start(t, d, fakeControls{rollback: scheduler.Refusal("no previous runner image")})
	tests := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, `"ok"`},
		{"GET", "/readyz", 200, `"ready"`},
		{"GET", "/metrics", 200, "tarty_jobs_queued 0"},
		{"GET", "/status", 200, `"vm": "tarty-x-1"`},
		{"POST", "/reconcile", 202, `"accepted"`},
		{"POST", "/rebuild", 202, `"accepted"`},
		{"POST", "/rollback", 409, "no previous runner image"},
		{"GET", "/reconcile", 405, ""},
		{"POST", "/status", 405, ""},
		{"GET", "/github/webhook", 404, ""},
	}
	for _, tt := range tests {
		code, body := call(t, tt.method, base+tt.path)
		if code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.body)
		}
	}
	var st scheduler.Status
	_, body := call(t, "GET", base+"/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Capacity != 2 {
		t.Errorf("status JSON %q: %v", body, err)
	}
}

func TestNotReadyAndNoScheduler(t *testing.T) {
	d := &fakeDaemon{status: scheduler.Status{NotReady: "start-up recovery has not finished"},
		reconcile: func() error { return scheduler.Refusal("the scheduler is shutting down") }}
	base := start(t, d, nil)
	if code, body := call(t, "GET", base+"/readyz"); code != 503 || !strings.Contains(body, "recovery") {
		t.Errorf("readyz = %d %q", code, body)
	}
	if code, body := call(t, "POST", base+"/reconcile"); code != 409 || !strings.Contains(body, "shutting down") {
		t.Errorf("reconcile while draining = %d %q", code, body)
	}
	if code, body := call(t, "POST", base+"/rebuild"); code != 409 || !strings.Contains(body, "not available") {
		t.Errorf("rebuild without controls = %d %q", code, body)
	}
	d.statusErr = errors.New("scheduler is not running")
	if code, _ := call(t, "GET", base+"/status"); code != 503 {
		t.Errorf("status without a scheduler = %d", code)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8081", ":8081", "[::]:8081", "192.168.1.2:8081", "example.com:80"} {
		if err := CheckLoopback(addr); err == nil {
			t.Errorf("%s accepted", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:8081", "[::1]:8081", "localhost:8081", "127.0.0.2:1"} {
		if err := CheckLoopback(addr); err != nil {
			t.Errorf("%s refused: %v", addr, err)
		}
	}
	if _, err := New(Options{Listen: "0.0.0.0:1", Daemon: &fakeDaemon{}, Gatherer: prometheus.NewRegistry()}); err == nil {
		t.Error("New accepted a wildcard address")
	}
}

func TestShutdownWithIdleConnection(t *testing.T) {
	s, err := New(Options{Listen: "127.0.0.1:0", Daemon: &fakeDaemon{}, Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	conn, err := (&netDialer{}).dial(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v with an idle connection open", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

type netDialer struct{}

func (netDialer) dial(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }
