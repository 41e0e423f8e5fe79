package fakegithub

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v62/github"
)

const hookSecret = "It's a Secret to Everybody"

// receiver is a webhook endpoint that checks every delivery the way Tarty
// does (go-github's ValidatePayload, then ParseWebHook) and keeps them.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	answer int // status to answer (default 202)
}

type received struct {
	guid, event, contentType string
	ev                       *github.WorkflowJobEvent
	raw                      map[string]any
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{answer: http.StatusAccepted}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		payload, err := github.ValidatePayload(r, []byte(hookSecret))
		if err != nil {
			t.Errorf("delivery: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		parsed, err := github.ParseWebHook(github.WebHookType(r), payload)
		if err != nil {
			t.Errorf("parse: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ev, ok := parsed.(*github.WorkflowJobEvent)
		if !ok {
			t.Errorf("event %T", parsed)
		}
		var raw map[string]any
		_ = json.Unmarshal(payload, &raw)
		rc.mu.Lock()
		rc.got = append(rc.got, received{guid: github.DeliveryID(r), event: github.WebHookType(r), contentType: r.Header.Get("Content-Type"), ev: ev, raw: raw})
		answer := rc.answer
		rc.mu.Unlock()
		w.WriteHeader(answer)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func waitHooks(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitWebhooks(ctx); err != nil {
		t.Fatalf("webhooks: %v", err)
	}
}

func TestWebhookDeliveriesFollowTheJob(t *testing.T) {
	rc := newReceiver(t)
	s := New(Config{WebhookURL: rc.srv.URL, WebhookSecret: hookSecret})
	defer s.Close()
	s.AddPublicRepo("site")
	j := s.QueueJob("site", "self-hosted", "macOS", "tarty")
	gated := s.AddRun("app", "", time.Time{}, JobSpec{Name: "deploy", Labels: []string{"tarty"}, Status: "waiting"})
	s.AddRun("app", "completed", time.Time{}, JobSpec{Status: "completed"}) // history: no delivery
	rn := s.AddRunner("", "tarty-mac-1", "self-hosted", "macOS", "tarty")
	if err := s.SetJobStatus(j.ID, "in_progress", "tarty-mac-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetJobStatus(j.ID, "completed", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetJobStatus(gated.JobIDs[0], "queued", ""); err != nil { // approved
		t.Fatal(err)
	}
	waitHooks(t, s)

	got := rc.all()
	type want struct {
		action, status string
		job            int64
	}
	wants := []want{
		{"queued", "queued", j.ID}, {"queued", "waiting", gated.JobIDs[0]}, {"waiting", "waiting", gated.JobIDs[0]},
		{"in_progress", "in_progress", j.ID}, {"completed", "completed", j.ID}, {"queued", "queued", gated.JobIDs[0]},
	}
	if len(got) != len(wants) {
		t.Fatalf("%d deliveries, want %d", len(got), len(wants))
	}
	guids := map[string]bool{}
	for i, w := range wants {
		g := got[i]
		wj := g.ev.GetWorkflowJob()
		if g.event != "workflow_job" || g.ev.GetAction() != w.action || wj.GetStatus() != w.status || wj.GetID() != w.job {
			t.Errorf("delivery %d: %s %s/%s job %d, want %+v", i, g.event, g.ev.GetAction(), wj.GetStatus(), wj.GetID(), w)
		}
		if guids[g.guid] || len(g.guid) != 36 {
			t.Errorf("delivery %d: GUID %q", i, g.guid)
		}
		guids[g.guid] = true
		if g.ev.GetOrg().GetLogin() != "acme" || g.ev.GetRepo().GetOwner().GetLogin() != "acme" || g.contentType != "application/json" {
			t.Errorf("delivery %d: org %q owner %q", i, g.ev.GetOrg().GetLogin(), g.ev.GetRepo().GetOwner().GetLogin())
		}
		if wj.GetRunID() == 0 || wj.GetRunAttempt() != 1 || wj.GetCreatedAt().IsZero() || wj.GetStartedAt().IsZero() {
			t.Errorf("delivery %d: job fields %+v", i, wj)
		}
		// Nobody's runner until it is taken (JSON null, as on GitHub).
		if w.action == "queued" || w.action == "waiting" {
			if g.raw["workflow_job"].(map[string]any)["runner_id"] != nil || wj.RunnerName != nil {
				t.Errorf("delivery %d: runner fields on a %s job", i, w.action)
			}
		}
	}
	site := got[0].ev.GetRepo()
	if site.GetFullName() != "acme/site" || site.GetPrivate() {
		t.Errorf("repository %s private %v", site.GetFullName(), site.GetPrivate())
	}
	if got[2].ev.GetRepo().GetPrivate() != true {
		t.Error("app is private")
	}
	ip := got[3].ev.GetWorkflowJob()
	if ip.GetRunnerName() != "tarty-mac-1" || ip.GetRunnerID() != rn.ID || ip.GetRunnerGroupID() != 1 || ip.GetRunnerGroupName() != "Default" {
		t.Errorf("in_progress runner fields: %+v", ip)
	}
	if c := got[4].ev.GetWorkflowJob(); c.GetConclusion() != "success" || c.GetCompletedAt().IsZero() {
		t.Errorf("completed: %+v", c)
	}
	for i, d := range s.Deliveries() {
		if !d.OK() || d.StatusCode != http.StatusAccepted || d.GUID != got[i].guid || d.Action != wants[i].action || d.JobID != wants[i].job {
			t.Errorf("record %d: %+v", i, d)
		}
	}
}

func TestWebhookDropRedeliverAndForm(t *testing.T) {
	rc := newReceiver(t)
	s := New(Config{WebhookURL: rc.srv.URL, WebhookSecret: hookSecret, WebhookForm: true})
	defer s.Close()
	s.DropWebhooks(func(d Delivery) bool { return d.Action == "queued" })
	j := s.QueueJob("app", "tarty")
	waitHooks(t, s)
	if n := len(rc.all()); n != 0 {
		t.Fatalf("a dropped delivery arrived (%d)", n)
	}
	ds := s.Deliveries()
	if len(ds) != 1 || !ds[0].Dropped || ds[0].OK() || ds[0].JobID != j.ID {
		t.Fatalf("deliveries %+v", ds)
	}
	s.DropWebhooks(nil)
	if err := s.Redeliver(ds[0].ID); err != nil {
		t.Fatal(err)
	}
	waitHooks(t, s)
	got := rc.all()
	if len(got) != 1 || got[0].guid != ds[0].GUID || got[0].ev.GetWorkflowJob().GetID() != j.ID ||
		got[0].contentType != "application/x-www-form-urlencoded" {
		t.Fatalf("redelivery %+v", got)
	}
	ds = s.Deliveries()
	if len(ds) != 2 || !ds[1].Redelivery || !ds[1].OK() {
		t.Errorf("records %+v", ds)
	}

	// A receiver that fails is recorded with its status.
	rc.mu.Lock()
	rc.answer = http.StatusServiceUnavailable
	rc.mu.Unlock()
	s.QueueJob("app", "tarty")
	waitHooks(t, s)
	if d := s.Deliveries()[2]; d.StatusCode != 503 || d.OK() || d.Err == "" {
		t.Errorf("failed delivery %+v", d)
	}
}

func TestWebhookUnreachableIsRecorded(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	u := dead.URL
	dead.Close()
	s := New(Config{WebhookURL: u, WebhookSecret: hookSecret})
	defer s.Close()
	s.QueueJob("app", "tarty")
	waitHooks(t, s)
	if d := s.Deliveries(); len(d) != 1 || d[0].StatusCode != 0 || d[0].Err == "" {
		t.Errorf("deliveries %+v", d)
	}
}

func TestPerTokenETags(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	s.AddRepo("app")
	u := s.URL() + "repos/acme/app/actions/runs"
	resp, _ := do(t, "GET", u, DefaultToken)
	etag := resp.Header.Get("ETag")
	if resp, _ := do(t, "GET", u, DefaultToken, "If-None-Match", etag); resp.StatusCode != 304 {
		t.Fatalf("same token: %d", resp.StatusCode)
	}
	// The same URL under another token has another ETag.
	key, _ := newKey(t)
	s2 := New(Config{App: &App{ID: 7, InstallationID: 8, PublicKey: &key.PublicKey}, Token: DefaultToken})
	defer s2.Close()
	s2.AddRepo("app")
	tok := issueToken(t, s2, key)
	u2 := s2.URL() + "repos/acme/app/actions/runs"
	r1, _ := do(t, "GET", u2, DefaultToken)
	r2, _ := do(t, "GET", u2, tok)
	if r1.Header.Get("ETag") == r2.Header.Get("ETag") {
		t.Error("two tokens share an ETag")
	}
	if resp, _ := do(t, "GET", u2, tok, "If-None-Match", r1.Header.Get("ETag")); resp.StatusCode != 200 {
		t.Errorf("another token's ETag matched: %d", resp.StatusCode)
	}
	// RotateInstallationTokens changes the installation token's ETags, not the PAT's.
	s2.RotateInstallationTokens()
	if resp, _ := do(t, "GET", u2, tok, "If-None-Match", r2.Header.Get("ETag")); resp.StatusCode != 200 {
		t.Errorf("after rotation: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", u2, DefaultToken, "If-None-Match", r1.Header.Get("ETag")); resp.StatusCode != 304 {
		t.Errorf("PAT after rotation: %d", resp.StatusCode)
	}
}

func TestRunnerGroupEndpointsAndVisibility(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	s.AddRepo("app")
	s.AddPublicRepo("site")
	id := s.AddRunnerGroupWith(RunnerGroup{Name: "macs", Visibility: "selected", AllowsPublicRepositories: true, Repositories: []string{"app", "site"}})
	_, body := do(t, "GET", s.URL()+"orgs/acme/actions/runner-groups", DefaultToken)
	var groups struct {
		RunnerGroups []*github.RunnerGroup `json:"runner_groups"`
	}
	if err := json.Unmarshal([]byte(body), &groups); err != nil || len(groups.RunnerGroups) != 2 {
		t.Fatalf("%s", body)
	}
	def, macs := groups.RunnerGroups[0], groups.RunnerGroups[1]
	if def.GetVisibility() != "all" || def.GetAllowsPublicRepositories() || !def.GetDefault() {
		t.Errorf("Default = %+v", def)
	}
	if macs.GetVisibility() != "selected" || !macs.GetAllowsPublicRepositories() || !strings.HasSuffix(macs.GetSelectedRepositoriesURL(), "/runner-groups/"+itoa(id)+"/repositories") {
		t.Errorf("macs = %+v", macs)
	}
	_, body = do(t, "GET", s.URL()+"orgs/acme/actions/runner-groups/"+itoa(id)+"/repositories", DefaultToken)
	var repos github.ListRepositories
	if err := json.Unmarshal([]byte(body), &repos); err != nil || repos.GetTotalCount() != 2 || repos.Repositories[1].GetPrivate() {
		t.Fatalf("%s", body)
	}
	_, body = do(t, "GET", s.URL()+"orgs/acme/repos", DefaultToken)
	if !strings.Contains(body, `"visibility":"public"`) || !strings.Contains(body, `"private":false`) {
		t.Errorf("repos %s", body)
	}
	if resp, _ := do(t, "GET", s.URL()+"orgs/acme/actions/runner-groups/999/repositories", DefaultToken); resp.StatusCode != 404 {
		t.Errorf("unknown group: %d", resp.StatusCode)
	}
}

func TestEnterpriseVersionHeader(t *testing.T) {
	s := New(Config{EnterpriseVersion: "3.9.1"})
	defer s.Close()
	resp, _ := do(t, "GET", s.EnterpriseURL()+"orgs/acme", DefaultToken)
	if resp.Header.Get("X-GitHub-Enterprise-Version") != "3.9.1" {
		t.Errorf("headers %v", resp.Header)
	}
	resp, _ = do(t, "POST", s.EnterpriseURL()+"orgs/acme/actions/runners/generate-jitconfig", DefaultToken)
	if resp.StatusCode != 404 {
		t.Errorf("JIT on GHES 3.9: %d", resp.StatusCode)
	}
}

func TestRerunEndpoint(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	s := New(Config{})
	defer s.Close()
	old := s.AddRun("app", "", now.Add(-31*24*time.Hour), JobSpec{Status: "completed"})
	recent := s.AddRun("app", "", now.Add(-48*time.Hour), JobSpec{Name: "build", Labels: []string{"tarty"}, Status: "completed"})
	running := s.AddRun("app", "", now, JobSpec{Status: "in_progress"})
	for _, tt := range []struct {
		id   int64
		want int
	}{{old.ID, 403}, {running.ID, 403}, {recent.ID, 201}, {4242, 404}} {
		if resp, body := do(t, "POST", s.URL()+"repos/acme/app/actions/runs/"+itoa(tt.id)+"/rerun", DefaultToken); resp.StatusCode != tt.want {
			t.Errorf("rerun %d: %d %s", tt.id, resp.StatusCode, body)
		}
	}
	r, _ := s.Run(recent.ID)
	if r.RunAttempt != 2 || !r.CreatedAt.Equal(recent.CreatedAt) || len(r.JobIDs) != 2 || r.Status != "queued" {
		t.Fatalf("run %+v", r)
	}
	_, body := do(t, "GET", s.URL()+"repos/acme/app/actions/runs/"+itoa(recent.ID)+"/jobs?filter=latest", DefaultToken)
	var jobs github.Jobs
	_ = json.Unmarshal([]byte(body), &jobs)
	if len(jobs.Jobs) != 1 || jobs.Jobs[0].GetID() != r.JobIDs[1] || jobs.Jobs[0].GetRunAttempt() != 2 || jobs.Jobs[0].GetName() != "build" {
		t.Errorf("latest jobs %s", body)
	}
	_, body = do(t, "GET", s.URL()+"repos/acme/app/actions/runs?status=queued", DefaultToken)
	var runs github.WorkflowRuns
	_ = json.Unmarshal([]byte(body), &runs)
	if len(runs.WorkflowRuns) != 1 || !runs.WorkflowRuns[0].GetRunStartedAt().After(recent.CreatedAt) || runs.WorkflowRuns[0].GetRunAttempt() != 2 {
		t.Errorf("runs %s", body)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func newKey(t *testing.T) (*rsa.PrivateKey, error) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k, nil
}

// issueToken exchanges a JWT for an installation token (App 7, installation 8).
func issueToken(t *testing.T, s *Server, key *rsa.PrivateKey) string {
	t.Helper()
	now := time.Now().Unix()
	jwt := signJWT(t, key, "RS256", map[string]any{"iss": "7", "iat": now - 30, "exp": now + 90})
	resp, body := do(t, "POST", s.URL()+"app/installations/8/access_tokens", jwt)
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &tok); resp.StatusCode != 201 || err != nil {
		t.Fatalf("token exchange: %d %s", resp.StatusCode, body)
	}
	return tok.Token
}
