package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tartyci/tarty"
)

// testSecret is the secret of GitHub's documented test vector; the reference
// gives the fixtures' HMACs under it.
const testSecret = "It's a Secret to Everybody"

// Fixture names (testdata/github, copied verbatim from shared/fixtures/github).
const (
	fxPing       = "ping.with-organization.payload.json"
	fxCompleted  = "workflow_job.completed.success.with-organization.payload.json"
	fxInProgress = "workflow_job.in_progress.with-queued-steps.payload.json"
	fxQueued     = "workflow_job.queued.payload.json"
	fxDeployment = "workflow_job.queued.with-deployment.payload.json"
	fxWaiting    = "workflow_job.waiting.payload.json"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "github", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func signSHA1(secret string, body []byte) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write(body)
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

// edit decodes a payload, lets change alter it, and encodes it again: a
// realistic body with the fields a test needs. The result is signed afresh.
func edit(t testing.TB, body []byte, change func(p map[string]any)) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	change(p)
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func job(p map[string]any) map[string]any { return p["workflow_job"].(map[string]any) }

func setLabels(labels ...string) func(map[string]any) {
	return func(p map[string]any) {
		l := make([]any, len(labels))
		for i, s := range labels {
			l[i] = s
		}
		job(p)["labels"] = l
	}
}

// testOrg is the organisation of the queued and completed fixtures.
const testOrg = "Octocoders"

// tartyJob is the canonical queued fixture turned into a job Tarty wants,
// created a minute ago (the fixture's own 2021 date would make it stale).
func tartyJob(t testing.TB, action string, jobID int64) []byte {
	return edit(t, fixture(t, fxQueued), func(p map[string]any) {
		p["action"] = action
		p["organization"] = map[string]any{"login": testOrg}
		setLabels("self-hosted", "macOS", "tarty")(p)
		job(p)["id"] = jobID
		setCreated(time.Now().Add(-time.Minute))(p)
	})
}

// setCreated sets workflow_job.created_at.
func setCreated(at time.Time) func(map[string]any) {
	return func(p map[string]any) { job(p)["created_at"] = at.UTC().Format(time.RFC3339) }
}

// inRepository sets repository.full_name.
func inRepository(full string) func(map[string]any) {
	return func(p map[string]any) { p["repository"].(map[string]any)["full_name"] = full }
}

// formBody encodes a JSON payload as GitHub's form content type does.
func formBody(payload []byte) []byte {
	return []byte(url.Values{"payload": {string(payload)}}.Encode())
}

// formHeader is the Content-Type of a form-encoded delivery.
var formHeader = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}

// fixtureNow is a clock for servers fed GitHub's fixtures verbatim: after the
// queued fixture was created (2021-09-13T02:21:13Z), within tarty.StaleAfter,
// and before the other fixtures' jobs, so none of them is stale.
func fixtureNow() time.Time { return time.Date(2021, 9, 13, 12, 0, 0, 0, time.UTC) }

type testEnv struct {
	srv    *Server
	events chan tarty.JobEvent
	reg    *prometheus.Registry
	url    string // http://addr/github/webhook
	base   string // http://addr
}

// newTestServer builds a Server for org Octocoders matching label "tarty", with
// change applied to its options, without starting it.
func newTestServer(t testing.TB, change func(*Options)) *testEnv {
	t.Helper()
	env := &testEnv{events: make(chan tarty.JobEvent, 16), reg: prometheus.NewRegistry()}
	opts := Options{
		Listen:       "127.0.0.1:0",
		Secret:       []byte(testSecret),
		Organization: testOrg,
		Matcher:      tarty.NewLabelMatcher([]string{"tarty"}),
		Events:       env.events,
		Registerer:   env.reg,
	}
	if change != nil {
		change(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	env.srv = srv
	return env
}

// startTestServer runs a server on loopback until the test ends, and checks
// that Run then returns nil.
func startTestServer(t testing.TB, change func(*Options)) *testEnv {
	t.Helper()
	env := newTestServer(t, change)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.srv.Run(ctx) }()
	select {
	case <-env.srv.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	env.base = "http://" + env.srv.Addr().String()
	env.url = env.base + DefaultPath
	return env
}

// delivery is one request to send.
type delivery struct {
	method  string // POST when empty
	path    string // DefaultPath when empty
	event   string // X-GitHub-Event; "-" sends none
	id      string // X-GitHub-Delivery
	body    []byte
	sig256  string // X-Hub-Signature-256; "" = signed with testSecret, "-" = none
	sigSHA1 string // X-Hub-Signature
	header  http.Header
}

type answer struct {
	code   int
	result string // "result" or "message" of the JSON answer
	header http.Header
}

func (env *testEnv) send(t testing.TB, d delivery) answer {
	t.Helper()
	req := d.request(t, env.base)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	return readAnswer(t, resp.StatusCode, resp.Header, resp.Body)
}

func (d delivery) request(t testing.TB, base string) *http.Request {
	t.Helper()
	method, path := d.method, d.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = DefaultPath
	}
	req, err := http.NewRequest(method, base+path, bytes.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/test")
	if d.event != "-" {
		req.Header.Set("X-GitHub-Event", d.event)
	}
	if d.id != "" {
		req.Header.Set("X-GitHub-Delivery", d.id)
	}
	switch d.sig256 {
	case "":
		req.Header.Set("X-Hub-Signature-256", sign(testSecret, d.body))
	case "-":
	default:
		req.Header.Set("X-Hub-Signature-256", d.sig256)
	}
	if d.sigSHA1 != "" {
		req.Header.Set("X-Hub-Signature", d.sigSHA1)
	}
	for k, v := range d.header {
		req.Header[k] = v
	}
	return req
}

func readAnswer(t testing.TB, code int, h http.Header, body io.Reader) answer {
	t.Helper()
	raw, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	a := answer{code: code, header: h}
	if len(raw) == 0 {
		return a
	}
	var v struct {
		Result  string `json:"result"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("answer %d is not JSON: %q", code, raw)
	}
	a.result = v.Result + v.Message
	return a
}

// nextEvent waits for a forwarded event.
func nextEvent(t testing.TB, events <-chan tarty.JobEvent) tarty.JobEvent {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event forwarded")
		return tarty.JobEvent{}
	}
}

// noEvent checks nothing was forwarded. The handler sends before it answers,
// so once the answer is in, an event would already be in the channel.
func noEvent(t testing.TB, events <-chan tarty.JobEvent) {
	t.Helper()
	select {
	case ev := <-events:
		t.Fatalf("unexpected event forwarded: %+v", ev)
	default:
	}
}

func (env *testEnv) count(event, result string) float64 {
	return testutil.ToFloat64(env.srv.metrics.deliveries.WithLabelValues(event, result))
}
