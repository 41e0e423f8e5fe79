package webhook

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestContract walks the table of DESIGN.md section 4, one row (or more) per
// case, over real HTTP with real signatures, and checks the answer, what was
// forwarded and what was counted.
func TestContract(t *testing.T) {
	env := startTestServer(t, func(o *Options) {
		o.Serves = func(repo string) bool { return repo != testOrg+"/public-app" }
	})
	queued := tartyJob(t, "queued", 1001)
	sixMiB := bytes.Repeat([]byte(" "), 6<<20)

	tests := []struct {
		name       string
		d          delivery
		wantCode   int
		wantResult string // "result" of a 2xx answer, "message" of an error
		forwarded  bool
		event      string // metric labels of the outcome
		result     string
	}{
		{"workflow_job with valid signature is handed over",
			delivery{event: "workflow_job", id: "c-1", body: queued},
			202, "accepted", true, "workflow_job", "accepted"},
		{"labels that do not match are ignored",
			delivery{event: "workflow_job", id: "c-2", body: edit(t, queued, setLabels("self-hosted", "linux"))},
			202, "ignored_labels", false, "workflow_job", "ignored_labels"},
		{"another organisation is ignored",
			delivery{event: "workflow_job", id: "c-3", body: edit(t, queued, func(p map[string]any) {
				p["organization"] = map[string]any{"login": "someone-else"}
			})},
			202, "ignored_scope", false, "workflow_job", "ignored_scope"},
		{"same X-GitHub-Delivery again has no second effect",
			delivery{event: "workflow_job", id: "c-1", body: queued},
			202, "duplicate", false, "workflow_job", "duplicate"},
		{"ping",
			delivery{event: "ping", id: "c-4", body: fixture(t, fxPing)},
			200, "pong", false, "ping", "pong"},
		{"other valid event is ignored",
			delivery{event: "push", id: "c-5", body: []byte(`{"ref":"refs/heads/main"}`)},
			202, "ignored_event", false, "other", "ignored_event"},
		{"missing signature",
			delivery{event: "workflow_job", id: "c-6", body: queued, sig256: "-"},
			401, "invalid signature", false, "workflow_job", "bad_signature"},
		{"wrong secret",
			delivery{event: "workflow_job", id: "c-7", body: queued, sig256: sign("not the secret", queued)},
			401, "invalid signature", false, "workflow_job", "bad_signature"},
		{"signature of other bytes (re-serialised JSON)",
			delivery{event: "workflow_job", id: "c-8", body: queued, sig256: sign(testSecret, append(queued, '\n'))},
			401, "invalid signature", false, "workflow_job", "bad_signature"},
		{"legacy SHA-1 signature alone",
			delivery{event: "workflow_job", id: "c-9", body: queued, sig256: "-", sigSHA1: signSHA1(testSecret, queued)},
			401, "invalid signature", false, "workflow_job", "bad_signature"},
		{"signature not sha256=hex",
			delivery{event: "workflow_job", id: "c-10", body: queued, sig256: "sha512=00"},
			401, "invalid signature", false, "workflow_job", "bad_signature"},
		{"unsigned garbage is 401, not 400: nothing parsed before the signature",
			delivery{event: "workflow_job", id: "c-11", body: []byte("{not json"), sig256: "-"},
			401, "invalid signature", false, "workflow_job", "bad_signature"},
		{"malformed JSON",
			delivery{event: "workflow_job", id: "c-12", body: []byte(`{"action":"queued",`)},
			400, "malformed JSON", false, "workflow_job", "bad_request"},
		{"malformed JSON in a ping",
			delivery{event: "ping", id: "c-13", body: []byte(`zen`)},
			400, "malformed JSON", false, "ping", "bad_request"},
		{"form-encoded delivery (the default of hooks made through the API) is handed over",
			delivery{event: "workflow_job", id: "c-16", body: formBody(tartyJob(t, "queued", 1016)), header: formHeader},
			202, "accepted", true, "workflow_job", "accepted"},
		{"form-encoded delivery without a payload field",
			delivery{event: "workflow_job", id: "c-17", body: []byte("other=%7B%7D"), header: formHeader},
			400, "form-encoded delivery without a payload field", false, "workflow_job", "bad_request"},
		{"a replayed body of a job queued more than 24 h ago is ignored",
			delivery{event: "workflow_job", id: "c-18", body: edit(t, queued, setCreated(time.Now().Add(-25*time.Hour)))},
			202, "ignored_stale", false, "workflow_job", "ignored_stale"},
		{"a repository the runner group cannot serve is ignored",
			delivery{event: "workflow_job", id: "c-19", body: edit(t, queued, inRepository(testOrg+"/public-app"))},
			202, "ignored_runner_group", false, "workflow_job", "ignored_runner_group"},
		{"X-GitHub-Delivery longer than any GitHub sends",
			delivery{event: "workflow_job", id: strings.Repeat("d", 257), body: queued},
			400, "X-GitHub-Delivery too long", false, "workflow_job", "bad_request"},
		{"missing X-GitHub-Event",
			delivery{event: "-", id: "c-14", body: queued},
			400, "missing X-GitHub-Event header", false, "unknown", "bad_request"},
		{"body over 5 MiB",
			delivery{event: "workflow_job", id: "c-15", body: sixMiB},
			413, "body exceeds 5 MiB", false, "workflow_job", "too_large"},
		{"another path",
			delivery{path: "/", event: "workflow_job", body: queued},
			404, "Not Found", false, "workflow_job", "not_found"},
		{"admin endpoints are not on this listener",
			delivery{method: http.MethodGet, path: "/metrics", event: "-"},
			404, "Not Found", false, "unknown", "not_found"},
		{"another method on the webhook path",
			delivery{method: http.MethodGet, event: "-"},
			405, "Method Not Allowed", false, "unknown", "bad_method"},
		{"OPTIONS is another method too",
			delivery{method: http.MethodOptions, event: "ping"},
			405, "Method Not Allowed", false, "ping", "bad_method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := env.count(tt.event, tt.result)
			a := env.send(t, tt.d)
			if a.code != tt.wantCode || a.result != tt.wantResult {
				t.Errorf("answer = %d %q, want %d %q", a.code, a.result, tt.wantCode, tt.wantResult)
			}
			if tt.forwarded {
				nextEvent(t, env.events)
			}
			noEvent(t, env.events)
			if got := env.count(tt.event, tt.result) - before; got != 1 {
				t.Errorf("tarty_webhook_deliveries_total{event=%q,result=%q} grew by %v, want 1", tt.event, tt.result, got)
			}
			if tt.wantCode == 405 {
				if allow := a.header.Get("Allow"); allow != "POST" {
					t.Errorf("Allow = %q, want POST", allow)
				}
			}
		})
	}
}
