package webhook

import (
	"fmt"
	"testing"
	"time"

	"github.com/tartyci/tarty"
)

// TestRouting covers which authentic workflow_job deliveries reach the
// scheduler: scope, labels and actions.
func TestRouting(t *testing.T) {
	inOrg := func(org string) func(map[string]any) {
		return func(p map[string]any) { p["organization"] = map[string]any{"login": org} }
	}
	inRepo := func(full string) func(map[string]any) {
		return func(p map[string]any) { p["repository"].(map[string]any)["full_name"] = full }
	}
	userOwned := func(owner string) func(map[string]any) {
		return func(p map[string]any) {
			delete(p, "organization")
			p["repository"].(map[string]any)["owner"].(map[string]any)["login"] = owner
		}
	}
	action := func(a string) func(map[string]any) { return func(p map[string]any) { p["action"] = a } }
	noJobID := func(p map[string]any) { delete(job(p), "id") }
	noJob := func(p map[string]any) { delete(p, "workflow_job") }
	runner := func(name string) func(map[string]any) { return func(p map[string]any) { job(p)["runner_name"] = name } }

	tests := []struct {
		name       string
		repository string // Options.Repository
		changes    []func(map[string]any)
		wantCode   int
		wantResult string
	}{
		{"matching job", "", nil, 202, "accepted"},
		{"organisation compared case-insensitively", "", []func(map[string]any){inOrg("OCTOCODERS")}, 202, "accepted"},
		{"another organisation", "", []func(map[string]any){inOrg("Octocats")}, 202, "ignored_scope"},
		{"user-owned repository of the organisation's login", "", []func(map[string]any){userOwned("octocoders")}, 202, "accepted"},
		{"user-owned repository of someone else", "", []func(map[string]any){userOwned("mallory")}, 202, "ignored_scope"},
		{"repository given as app", "hello-world", nil, 202, "accepted"},
		{"repository given as org/app", "octocoders/Hello-World", []func(map[string]any){inRepo("Octocoders/hello-world")}, 202, "accepted"},
		{"another repository", "other-app", []func(map[string]any){inRepo("Octocoders/Hello-World")}, 202, "ignored_scope"},
		{"same repository name in another organisation", "Hello-World", []func(map[string]any){inRepo("Codertocat/Hello-World")}, 202, "ignored_scope"},
		{"labels compared case-insensitively", "", []func(map[string]any){setLabels("Self-Hosted", "MACOS", "TARTY", "arm64")}, 202, "accepted"},
		{"a label the runner lacks", "", []func(map[string]any){setLabels("self-hosted", "tarty", "linux")}, 202, "ignored_labels"},
		{"only default labels", "", []func(map[string]any){setLabels("self-hosted", "macOS")}, 202, "ignored_labels"},
		{"queued with no labels", "", []func(map[string]any){setLabels()}, 202, "ignored_labels"},
		{"completed with no labels can only remove demand", "", []func(map[string]any){action("completed"), setLabels()}, 202, "accepted"},
		{"in_progress with no labels can only remove demand", "", []func(map[string]any){action("in_progress"), setLabels()}, 202, "accepted"},
		{"completed with other labels", "", []func(map[string]any){action("completed"), setLabels("ubuntu-latest")}, 202, "ignored_labels"},
		{"our runner took a job with other labels", "", []func(map[string]any){action("in_progress"), setLabels("self-hosted"), runner("tarty-mac-0a1b2c3d")}, 202, "accepted"},
		{"our runner completed a job with other labels", "", []func(map[string]any){action("completed"), setLabels("self-hosted"), runner("tarty-mac-0a1b2c3d")}, 202, "accepted"},
		{"another runner with a prefix-like name", "", []func(map[string]any){action("in_progress"), setLabels("self-hosted"), runner("tarty-macmini-1")}, 202, "ignored_labels"},
		{"queued is never forwarded for its runner name", "", []func(map[string]any){setLabels("self-hosted"), runner("tarty-mac-0a1b2c3d")}, 202, "ignored_labels"},
		{"waiting is forwarded (the scheduler parks it)", "", []func(map[string]any){action("waiting")}, 202, "accepted"},
		{"an action GitHub does not send", "", []func(map[string]any){action("requested")}, 202, "ignored_action"},
		{"no action", "", []func(map[string]any){action("")}, 202, "ignored_action"},
		{"no job id", "", []func(map[string]any){noJobID}, 400, "missing workflow_job.id"},
		{"no workflow_job object", "", []func(map[string]any){noJob}, 400, "missing workflow_job.id"},
		{"wrong JSON type for a field", "", []func(map[string]any){func(p map[string]any) { job(p)["id"] = "1" }}, 400, "malformed JSON"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := startTestServer(t, func(o *Options) { o.Repository = tt.repository; o.RunnerPrefix = "tarty-mac" })
			body := edit(t, tartyJob(t, "queued", 42), func(p map[string]any) {
				p["repository"].(map[string]any)["full_name"] = "Octocoders/Hello-World"
				for _, c := range tt.changes {
					c(p)
				}
			})
			a := env.send(t, delivery{event: "workflow_job", id: fmt.Sprint("r-", i), body: body})
			if a.code != tt.wantCode || a.result != tt.wantResult {
				t.Fatalf("answer = %d %q, want %d %q", a.code, a.result, tt.wantCode, tt.wantResult)
			}
			if tt.wantResult == "accepted" {
				if ev := nextEvent(t, env.events); ev.JobID != 42 {
					t.Errorf("forwarded job %d, want 42", ev.JobID)
				}
			}
			noEvent(t, env.events)
			if got := env.count("workflow_job", resultOf(tt.wantCode, tt.wantResult)); got != 1 {
				t.Errorf("counted %v times, want 1", got)
			}
		})
	}
}

func resultOf(code int, answer string) string {
	if code == 400 {
		return resultBadRequest
	}
	return answer
}

// TestRedelivery: the same X-GitHub-Delivery has one effect; deliveries without
// the header are all processed.
func TestRedelivery(t *testing.T) {
	env := startTestServer(t, nil)
	body := tartyJob(t, "queued", 7)

	if a := env.send(t, delivery{event: "workflow_job", id: "d-1", body: body}); a.code != 202 || a.result != "accepted" {
		t.Fatalf("first delivery: %d %q", a.code, a.result)
	}
	if ev := nextEvent(t, env.events); ev.DeliveryID != "d-1" {
		t.Errorf("DeliveryID = %q", ev.DeliveryID)
	}
	for i := 0; i < 2; i++ {
		if a := env.send(t, delivery{event: "workflow_job", id: "d-1", body: body}); a.code != 202 || a.result != "duplicate" {
			t.Fatalf("redelivery: %d %q", a.code, a.result)
		}
		noEvent(t, env.events)
	}
	// An ignored delivery is remembered too: it was answered 2xx.
	other := edit(t, body, setLabels("ubuntu-latest"))
	env.send(t, delivery{event: "workflow_job", id: "d-2", body: other})
	if a := env.send(t, delivery{event: "workflow_job", id: "d-2", body: other}); a.result != "duplicate" {
		t.Errorf("redelivered ignored job: %q, want duplicate", a.result)
	}
	// A rejected delivery is not: after a 401, the same ID correctly signed works.
	env.send(t, delivery{event: "workflow_job", id: "d-3", body: body, sig256: "-"})
	if a := env.send(t, delivery{event: "workflow_job", id: "d-3", body: body}); a.result != "accepted" {
		t.Errorf("after a 401, same id: %q, want accepted", a.result)
	}
	nextEvent(t, env.events)

	for i := 0; i < 2; i++ {
		if a := env.send(t, delivery{event: "workflow_job", body: body}); a.result != "accepted" {
			t.Fatalf("delivery without id #%d: %q", i, a.result)
		}
		nextEvent(t, env.events)
	}
	if got := env.count("workflow_job", "duplicate"); got != 3 {
		t.Errorf("duplicates counted %v, want 3", got)
	}
}

// TestOverloaded: a scheduler that does not read gets 503 after EnqueueTimeout,
// and the same delivery works once it reads again.
func TestOverloaded(t *testing.T) {
	events := make(chan tarty.JobEvent) // unbuffered, nobody reading
	env := startTestServer(t, func(o *Options) {
		o.Events = events
		o.EnqueueTimeout = 50 * time.Millisecond
	})
	body := tartyJob(t, "queued", 9)
	a := env.send(t, delivery{event: "workflow_job", id: "o-1", body: body})
	if a.code != 503 {
		t.Fatalf("answer = %d %q, want 503", a.code, a.result)
	}
	if got := env.count("workflow_job", "overloaded"); got != 1 {
		t.Errorf("overloaded counted %v, want 1", got)
	}

	got := make(chan tarty.JobEvent, 1)
	go func() { got <- <-events }()
	if a := env.send(t, delivery{event: "workflow_job", id: "o-1", body: body}); a.code != 202 || a.result != "accepted" {
		t.Fatalf("redelivery after 503: %d %q, want 202 accepted", a.code, a.result)
	}
	if ev := nextEvent(t, got); ev.JobID != 9 {
		t.Errorf("forwarded job %d, want 9", ev.JobID)
	}
}
