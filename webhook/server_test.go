package webhook

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/internal/syncbuf"
)

func TestNewValidates(t *testing.T) {
	events := make(chan tarty.JobEvent)
	valid := func() Options {
		return Options{Secret: []byte("s"), Organization: "acme", Events: events}
	}
	tests := []struct {
		name   string
		change func(*Options)
		want   string // substring of the error; "" = no error
	}{
		{"minimal", func(*Options) {}, ""},
		{"empty secret", func(o *Options) { o.Secret = nil }, "secret is required"},
		{"no organisation", func(o *Options) { o.Organization = " " }, "organization"},
		{"organisation with a slash", func(o *Options) { o.Organization = "acme/app" }, "organization"},
		{"no events channel", func(o *Options) { o.Events = nil }, "events channel"},
		{"repository as app", func(o *Options) { o.Repository = "app" }, ""},
		{"repository as org/app", func(o *Options) { o.Repository = "ACME/app" }, ""},
		{"repository of another organisation", func(o *Options) { o.Repository = "other/app" }, "not in organization"},
		{"repository with two slashes", func(o *Options) { o.Repository = "acme/app/x" }, "repository"},
		{"relative path", func(o *Options) { o.Path = "hook" }, "webhook path"},
		{"path with a route parameter", func(o *Options) { o.Path = "/hook/:id" }, "webhook path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.change(&o)
			_, err := New(o)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}

	t.Run("every problem at once, no secret in the error", func(t *testing.T) {
		_, err := New(Options{Organization: "", Repository: "x/y/z"})
		for _, want := range []string{"secret", "organization", "events"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not mention %q", err, want)
			}
		}
	})
	t.Run("metrics registered twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		o := valid()
		o.Registerer = reg
		if _, err := New(o); err != nil {
			t.Fatal(err)
		}
		if _, err := New(o); err == nil {
			t.Fatal("second New on the same registry succeeded")
		}
	})
}

func TestRunLifecycle(t *testing.T) {
	env := newTestServer(t, nil)
	if env.srv.Addr() != nil {
		t.Error("Addr before Run is not nil")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.srv.Run(ctx) }()
	<-env.srv.Ready()
	addr := env.srv.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() || addr.Port == 0 {
		t.Errorf("Addr = %v, want a loopback port", addr)
	}
	if err := env.srv.Run(ctx); err == nil {
		t.Error("second Run succeeded")
	}

	// Another server on the same address cannot listen.
	other := newTestServer(t, func(o *Options) { o.Listen = addr.String() })
	if err := other.srv.Run(ctx); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Run on a busy address = %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := net.Dial("tcp", addr.String()); err == nil {
		t.Error("still listening after Run returned")
	}
}

// TestShutdownWaitsForDelivery: a delivery in flight when Run's context is
// cancelled is still answered and forwarded.
func TestShutdownWaitsForDelivery(t *testing.T) {
	events := make(chan tarty.JobEvent) // unbuffered: the handler waits for us
	env := newTestServer(t, func(o *Options) { o.Events = events; o.EnqueueTimeout = 10 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.srv.Run(ctx) }()
	<-env.srv.Ready()

	type result struct {
		code int
		err  error
	}
	answered := make(chan result, 1)
	req := delivery{event: "workflow_job", id: "s-1", body: tartyJob(t, "queued", 3)}.
		request(t, "http://"+env.srv.Addr().String())
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- result{err: err}
			return
		}
		resp.Body.Close()
		answered <- result{code: resp.StatusCode}
	}()
	// The handler reserves the delivery ID right before it waits on the channel.
	waitFor(t, func() bool { return env.srv.seen.isInflight("s-1") })
	cancel()
	if ev := nextEvent(t, events); ev.JobID != 3 {
		t.Errorf("forwarded job %d, want 3", ev.JobID)
	}
	if r := <-answered; r.err != nil || r.code != 202 {
		t.Errorf("in-flight delivery: %d, %v; want 202", r.code, r.err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached before the deadline")
		}
		time.Sleep(time.Millisecond)
	}
}

func (d *deliveries) isInflight(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.inflight[id]
	return ok
}

// TestMetricsExported: the counter exists with its known series at zero before
// any delivery, and counts what happened.
func TestMetricsExported(t *testing.T) {
	env := startTestServer(t, nil)
	head := "# HELP tarty_webhook_deliveries_total Requests to the webhook listener by GitHub event (workflow_job, ping, other, unknown) and outcome.\n" +
		"# TYPE tarty_webhook_deliveries_total counter\n"
	series := func(lines ...string) string {
		return head + strings.Join(lines, "\n") + "\n"
	}
	zero := []string{
		`tarty_webhook_deliveries_total{event="other",result="ignored_event"} 0`,
		`tarty_webhook_deliveries_total{event="ping",result="bad_request"} 0`,
		`tarty_webhook_deliveries_total{event="ping",result="bad_signature"} 0`,
		`tarty_webhook_deliveries_total{event="ping",result="busy"} 0`,
		`tarty_webhook_deliveries_total{event="ping",result="pong"} 0`,
		`tarty_webhook_deliveries_total{event="ping",result="too_large"} 0`,
		`tarty_webhook_deliveries_total{event="unknown",result="bad_method"} 0`,
		`tarty_webhook_deliveries_total{event="unknown",result="not_found"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="accepted"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="bad_request"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="bad_signature"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="busy"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="duplicate"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="ignored_action"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="ignored_labels"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="ignored_runner_group"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="ignored_scope"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="ignored_stale"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="overloaded"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="too_large"} 0`,
	}
	if err := testutil.GatherAndCompare(env.reg, strings.NewReader(series(zero...)), "tarty_webhook_deliveries_total"); err != nil {
		t.Fatalf("before any delivery: %v", err)
	}

	body := tartyJob(t, "queued", 11)
	env.send(t, delivery{event: "workflow_job", id: "m-1", body: body})
	nextEvent(t, env.events)
	env.send(t, delivery{event: "workflow_job", id: "m-1", body: body})
	env.send(t, delivery{event: "ping", body: fixture(t, fxPing)})
	env.send(t, delivery{event: "ping", body: fixture(t, fxPing), sig256: "-"})
	// A made-up event name lands in "other": labels stay bounded.
	env.send(t, delivery{event: "x-" + strings.Repeat("z", 200), body: []byte(`{}`)})
	env.send(t, delivery{event: "-", path: "/status"})

	want := []string{
		`tarty_webhook_deliveries_total{event="other",result="ignored_event"} 1`,
		`tarty_webhook_deliveries_total{event="ping",result="bad_request"} 0`,
		`tarty_webhook_deliveries_total{event="ping",result="bad_signature"} 1`,
		`tarty_webhook_deliveries_total{event="ping",result="busy"} 0`,
		`tarty_webhook_deliveries_total{event="ping",result="pong"} 1`,
		`tarty_webhook_deliveries_total{event="ping",result="too_large"} 0`,
		`tarty_webhook_deliveries_total{event="unknown",result="bad_method"} 0`,
		`tarty_webhook_deliveries_total{event="unknown",result="not_found"} 1`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="accepted"} 1`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="bad_request"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="bad_signature"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="busy"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="duplicate"} 1`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="ignored_action"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="ignored_labels"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="ignored_runner_group"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="ignored_scope"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="ignored_stale"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="overloaded"} 0`,
		`tarty_webhook_deliveries_total{event="workflow_job",result="too_large"} 0`,
	}
	if err := testutil.GatherAndCompare(env.reg, strings.NewReader(series(want...)), "tarty_webhook_deliveries_total"); err != nil {
		t.Fatal(err)
	}
}

// TestLogs: deliveries are logged at debug, rejections at warn, and neither the
// secret, the signature nor the body reaches the log.
func TestLogs(t *testing.T) {
	var buf syncbuf.Buffer
	env := startTestServer(t, func(o *Options) {
		o.Logger = zerolog.New(&buf).Level(zerolog.DebugLevel)
	})
	body := tartyJob(t, "queued", 77)
	env.send(t, delivery{event: "workflow_job", id: "l-1", body: body})
	nextEvent(t, env.events)
	env.send(t, delivery{event: "workflow_job", id: "l-2", body: body, sig256: sign("wrong", body)})
	env.send(t, delivery{event: "workflow_job", id: "l-3", body: []byte(`{"action":"queued","secret-looking-body"`)})

	out := buf.String()
	for _, want := range []string{
		`"level":"debug"`, `"result":"accepted"`, `"job_id":77`, `"delivery":"l-1"`,
		`"level":"warn"`, `"result":"bad_signature"`, `"delivery":"l-2"`, `"result":"bad_request"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{testSecret, sign(testSecret, body)[7:], sign("wrong", body)[7:], "secret-looking-body", `"steps"`} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}
