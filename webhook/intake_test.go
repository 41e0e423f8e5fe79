package webhook

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-github/v62/github"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/internal/syncbuf"
)

// headersOnly is a request that declares the largest accepted body and sends
// none of it: what an anonymous client can make the server expect for free.
const headersOnly = "POST /github/webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: workflow_job\r\n" +
	"Content-Type: application/json\r\nContent-Length: 5242880\r\n\r\n"

// preAuthHeapGrowth opens n connections that each send headersOnly to the
// server's handler, waits until every request is inside the handler, and
// returns how much the live heap grew (after a GC) while they are held open.
func preAuthHeapGrowth(t *testing.T, n int) uint64 {
	t.Helper()
	env := newTestServer(t, nil)
	var entered atomic.Int64
	h := env.srv.Handler()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		h.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	before := liveHeap()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, headersOnly); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return entered.Load() == int64(n) })
	time.Sleep(100 * time.Millisecond) // let every handler reach its read
	after := liveHeap()
	if after < before {
		return 0
	}
	return after - before
}

func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestPreAuthMemory: connections that declare a 5 MiB body and send nothing
// cost memory by what arrives, not by what they declare (issue 10: 50 of them
// took the heap from 2 to 157 MiB when the buffer was sized from
// Content-Length). The aim is under 10 MiB for 200.
func TestPreAuthMemory(t *testing.T) {
	const n, limit = 200, 10 << 20
	growth := preAuthHeapGrowth(t, n)
	t.Logf("%d connections with Content-Length: 5242880 and no body: live heap +%.2f MiB (%.1f KiB each)",
		n, float64(growth)/(1<<20), float64(growth)/n/1024)
	if growth >= limit {
		t.Fatalf("%d header-only connections grew the heap by %.1f MiB, want under %d MiB",
			n, float64(growth)/(1<<20), limit>>20)
	}
}

// TestReadSlots: bodies are read a bounded number at a time; a request that
// gets no read slot in time is answered 503 and counted, and the next one is
// served once the slot is free.
func TestReadSlots(t *testing.T) {
	env := startTestServer(t, func(o *Options) {
		o.MaxConcurrentReads = 1
		o.ReadSlotTimeout = 50 * time.Millisecond
	})
	// A client that sends one byte of its body and stalls holds the one slot.
	stall, err := net.Dial("tcp", env.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	if _, err := io.WriteString(stall, headersOnly+"{"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(env.srv.reads) == 1 })

	body := tartyJob(t, "queued", 61)
	a := env.send(t, delivery{event: "workflow_job", id: "slot-1", body: body})
	if a.code != http.StatusServiceUnavailable || a.result != "too many deliveries at once; retry later" {
		t.Fatalf("answer with no read slot = %d %q, want 503", a.code, a.result)
	}
	noEvent(t, env.events)
	if got := env.count("workflow_job", "busy"); got != 1 {
		t.Errorf("busy counted %v, want 1", got)
	}

	stall.Close()
	waitFor(t, func() bool { return len(env.srv.reads) == 0 })
	if a := env.send(t, delivery{event: "workflow_job", id: "slot-1", body: body}); a.code != 202 || a.result != "accepted" {
		t.Fatalf("after the slot freed: %d %q, want 202 accepted (a 503 is not remembered)", a.code, a.result)
	}
	nextEvent(t, env.events)
}

// TestStaleReplay: a signed queued body replayed under a new delivery ID once
// its job is more than 24 h old (GitHub has failed it by then) is answered
// 202, counted as ignored_stale and not forwarded. Only queued is stale:
// in_progress and completed can only remove demand.
func TestStaleReplay(t *testing.T) {
	created := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := &fakeClock{t: created.Add(time.Minute)}
	env := startTestServer(t, func(o *Options) { o.Now = clk.now })
	body := edit(t, tartyJob(t, "queued", 71), setCreated(created))

	if a := env.send(t, delivery{event: "workflow_job", id: "st-1", body: body}); a.result != "accepted" {
		t.Fatalf("fresh job: %d %q", a.code, a.result)
	}
	nextEvent(t, env.events)

	clk.advance(tarty.StaleAfter - 2*time.Minute) // 23h59m after creation: still queued at GitHub
	if a := env.send(t, delivery{event: "workflow_job", id: "st-2", body: body}); a.result != "accepted" {
		t.Fatalf("job 23h59m old: %d %q, want accepted", a.code, a.result)
	}
	nextEvent(t, env.events)

	clk.advance(2 * time.Minute) // 24h01m
	a := env.send(t, delivery{event: "workflow_job", id: "st-3", body: body})
	if a.code != 202 || a.result != "ignored_stale" {
		t.Fatalf("replay after 24 h: %d %q, want 202 ignored_stale", a.code, a.result)
	}
	noEvent(t, env.events)
	if got := env.count("workflow_job", "ignored_stale"); got != 1 {
		t.Errorf("ignored_stale counted %v, want 1", got)
	}

	for i, action := range []string{"in_progress", "completed"} {
		old := edit(t, tartyJob(t, action, 72), setCreated(created))
		if a := env.send(t, delivery{event: "workflow_job", id: fmt.Sprint("st-old-", i), body: old}); a.result != "accepted" {
			t.Errorf("%s of an old job: %q, want accepted", action, a.result)
		}
		nextEvent(t, env.events)
	}
}

// TestRunnerGroupServes: queued and waiting jobs of a repository the runner
// group cannot serve are answered 202, counted and not forwarded; their
// in_progress and completed events still are.
func TestRunnerGroupServes(t *testing.T) {
	var asked sync.Map
	env := startTestServer(t, func(o *Options) {
		o.Serves = func(repo string) bool {
			asked.Store(repo, true)
			return !strings.EqualFold(repo, testOrg+"/public-app")
		}
	})
	tests := []struct {
		action, repo, want string
	}{
		{"queued", testOrg + "/public-app", "ignored_runner_group"},
		{"waiting", testOrg + "/public-app", "ignored_runner_group"},
		{"in_progress", testOrg + "/public-app", "accepted"},
		{"completed", testOrg + "/public-app", "accepted"},
		{"queued", testOrg + "/private-app", "accepted"},
	}
	for i, tt := range tests {
		body := edit(t, tartyJob(t, tt.action, int64(80+i)), inRepository(tt.repo))
		a := env.send(t, delivery{event: "workflow_job", id: fmt.Sprint("rg-", i), body: body})
		if a.code != 202 || a.result != tt.want {
			t.Errorf("%s in %s: %d %q, want 202 %q", tt.action, tt.repo, a.code, a.result, tt.want)
		}
		if tt.want == "accepted" {
			nextEvent(t, env.events)
		}
		noEvent(t, env.events)
	}
	if got := env.count("workflow_job", "ignored_runner_group"); got != 2 {
		t.Errorf("ignored_runner_group counted %v, want 2", got)
	}
	if _, ok := asked.Load(testOrg + "/private-app"); !ok {
		t.Error("Serves was not asked with the repository's owner/name")
	}
}

// TestFormEncoded: a form-encoded delivery is checked against the signature of
// the raw form body, exactly as GitHub signs it, and then handled like JSON.
func TestFormEncoded(t *testing.T) {
	env := startTestServer(t, nil)
	payload := tartyJob(t, "queued", 91)
	form := formBody(payload)

	// go-github's own validator agrees that this request is correctly signed.
	req := delivery{event: "workflow_job", id: "f-1", body: form, header: formHeader}.request(t, env.base)
	if got, err := github.ValidatePayload(req, []byte(testSecret)); err != nil || string(got) != string(payload) {
		t.Fatalf("go-github ValidatePayload: %v", err)
	}

	tests := []struct {
		name    string
		d       delivery
		code    int
		result  string
		forward bool
	}{
		{"job", delivery{event: "workflow_job", id: "f-1", body: form, header: formHeader}, 202, "accepted", true},
		{"charset parameter", delivery{event: "workflow_job", id: "f-2", body: formBody(tartyJob(t, "queued", 92)),
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}}}, 202, "accepted", true},
		{"ping", delivery{event: "ping", id: "f-3", body: formBody(fixture(t, fxPing)), header: formHeader}, 200, "pong", false},
		{"signature of the JSON, not of the form body",
			delivery{event: "workflow_job", id: "f-4", body: form, sig256: sign(testSecret, payload), header: formHeader},
			401, "invalid signature", false},
		{"unsigned", delivery{event: "workflow_job", id: "f-5", body: form, sig256: "-", header: formHeader},
			401, "invalid signature", false},
		{"payload is not JSON", delivery{event: "workflow_job", id: "f-6", body: []byte("payload=%7Bnot"), header: formHeader},
			400, "malformed JSON", false},
		{"bad escape", delivery{event: "workflow_job", id: "f-7", body: []byte("payload=%zz"), header: formHeader},
			400, "form-encoded delivery without a payload field", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := env.send(t, tt.d)
			if a.code != tt.code || a.result != tt.result {
				t.Fatalf("answer = %d %q, want %d %q", a.code, a.result, tt.code, tt.result)
			}
			if tt.forward {
				nextEvent(t, env.events)
			}
			noEvent(t, env.events)
		})
	}
}

// TestShutdownWithIdleConnections: connections that never complete a request
// do not make Run fail (issue 10: one idle connection made every shutdown end
// in an error, its 5 s header timeout being the shutdown timeout), but a
// shutdown that cuts off an authentic delivery still reports it.
func TestShutdownWithIdleConnections(t *testing.T) {
	run := func(t *testing.T, change func(*Options), clients ...string) (*testEnv, func() (error, time.Duration)) {
		env := newTestServer(t, change)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- env.srv.Run(ctx) }()
		<-env.srv.Ready()
		env.base = "http://" + env.srv.Addr().String()
		for _, send := range clients {
			c, err := net.Dial("tcp", env.srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if _, err := io.WriteString(c, send); err != nil {
				t.Fatal(err)
			}
		}
		return env, func() (error, time.Duration) {
			time.Sleep(50 * time.Millisecond) // the connections are accepted
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				return err, time.Since(start)
			case <-time.After(15 * time.Second):
				t.Fatal("Run did not return")
				return nil, 0
			}
		}
	}

	t.Run("default timeouts, a client that sends nothing", func(t *testing.T) {
		_, stop := run(t, nil, "")
		if err, took := stop(); err != nil {
			t.Fatalf("Run = %v after %s, want nil", err, took)
		}
	})
	t.Run("shutdown timeout shorter than the header timeout", func(t *testing.T) {
		_, stop := run(t, func(o *Options) {
			o.ReadHeaderTimeout = 10 * time.Second
			o.ReadTimeout = 10 * time.Second
			o.ShutdownTimeout = 100 * time.Millisecond
		},
			"",                  // nothing at all
			"POST /github/webh", // half a request line
			headersOnly,         // headers, no body
			headersOnly+`{"act`, // part of an unauthenticated body
		)
		err, took := stop()
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if took > 5*time.Second {
			t.Errorf("Run took %s to return, want about the 100ms shutdown timeout", took)
		}
	})
	t.Run("an authentic delivery still in flight is an error", func(t *testing.T) {
		events := make(chan tarty.JobEvent) // nobody reads: the delivery waits for room
		env, stop := run(t, func(o *Options) {
			o.Events = events
			o.EnqueueTimeout = 10 * time.Second
			o.ShutdownTimeout = 100 * time.Millisecond
		})
		go func() {
			req := delivery{event: "workflow_job", id: "sd-1", body: tartyJob(t, "queued", 5)}.request(t, env.base)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		waitFor(t, func() bool { return env.srv.seen.isInflight("sd-1") })
		if err, _ := stop(); err == nil || !strings.Contains(err.Error(), "1 deliveries still being handled") {
			t.Fatalf("Run = %v, want an error about the delivery being handled", err)
		}
	})
}

// TestRefusalLogLimit: refused unauthenticated requests are all counted but
// logged at most once a minute, each line with how many were refused since
// the previous one; authentic deliveries are logged every time.
func TestRefusalLogLimit(t *testing.T) {
	var buf syncbuf.Buffer
	clk := &fakeClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	env := startTestServer(t, func(o *Options) {
		o.Now = clk.now
		o.Logger = zerolog.New(&buf).Level(zerolog.DebugLevel)
	})
	body := tartyJob(t, "queued", 1)
	unsigned := func(n int) {
		for range n {
			if a := env.send(t, delivery{event: "workflow_job", body: body, sig256: "-"}); a.code != 401 {
				t.Fatalf("unsigned: %d", a.code)
			}
		}
	}
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if strings.Contains(l, `"result":"bad_signature"`) || strings.Contains(l, `"result":"too_large"`) {
				out = append(out, l)
			}
		}
		return out
	}

	unsigned(5)
	clk.advance(30 * time.Second)
	unsigned(1)
	env.send(t, delivery{event: "workflow_job", body: make([]byte, MaxBodyBytes+1), sig256: "-"}) // 413, also anonymous
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], `"refused":1`) {
		t.Fatalf("after 7 refusals within a minute, log lines:\n%s", strings.Join(got, "\n"))
	}
	clk.advance(31 * time.Second)
	unsigned(1)
	got := lines()
	if len(got) != 2 || !strings.Contains(got[1], `"refused":7`) || !strings.Contains(got[1], `"level":"warn"`) {
		t.Fatalf("a minute later, log lines:\n%s", strings.Join(got, "\n"))
	}
	if n := env.count("workflow_job", "bad_signature"); n != 7 {
		t.Errorf("bad_signature counted %v, want 7", n)
	}

	// A signed but malformed delivery is no anonymous flood: logged each time.
	for range 2 {
		env.send(t, delivery{event: "workflow_job", body: []byte(`{"action":`)})
	}
	if n := strings.Count(buf.String(), `"result":"bad_request"`); n != 2 {
		t.Errorf("signed bad requests logged %d times, want 2", n)
	}
}

// TestRemoteAddr: forwarding headers are believed only from a loopback peer.
func TestRemoteAddr(t *testing.T) {
	tests := []struct {
		name, peer string
		header     map[string]string
		want       string
	}{
		{"direct client", "198.51.100.2:5555", nil, "198.51.100.2"},
		{"forged headers from outside", "198.51.100.2:5555",
			map[string]string{"CF-Connecting-IP": "203.0.113.9", "X-Forwarded-For": "203.0.113.10"}, "198.51.100.2"},
		{"cloudflared on loopback", "127.0.0.1:40000",
			map[string]string{"CF-Connecting-IP": "203.0.113.9", "X-Forwarded-For": "203.0.113.10"}, "203.0.113.9"},
		{"IPv6 loopback", "[::1]:40000", map[string]string{"CF-Connecting-IP": "2001:db8::7"}, "2001:db8::7"},
		{"proxy on loopback, X-Forwarded-For's first entry", "127.0.0.1:40000",
			map[string]string{"X-Forwarded-For": " 203.0.113.10 , 10.0.0.1"}, "203.0.113.10"},
		{"header that is no address", "127.0.0.1:40000",
			map[string]string{"CF-Connecting-IP": "evil\n{\"level\":\"error\"}", "X-Forwarded-For": "also-bad"}, "127.0.0.1"},
		{"loopback, no header", "127.0.0.1:40000", nil, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, DefaultPath, nil)
			r.RemoteAddr = tt.peer
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if got := remoteAddr(r); got != tt.want {
				t.Errorf("remoteAddr = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("logged over loopback", func(t *testing.T) {
		var buf syncbuf.Buffer
		env := startTestServer(t, func(o *Options) { o.Logger = zerolog.New(&buf) })
		env.send(t, delivery{event: "workflow_job", body: []byte("{}"), sig256: "-",
			header: http.Header{"Cf-Connecting-Ip": {"203.0.113.9"}}})
		if out := buf.String(); !strings.Contains(out, `"remote":"203.0.113.9"`) {
			t.Errorf("log does not name the client cloudflared saw:\n%s", out)
		}
	})
}
