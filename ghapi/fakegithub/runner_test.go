package fakegithub

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func postJSON(t *testing.T, url, auth string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// jit registers a runner through the API and returns its encoded config.
func jit(t *testing.T, s *Server, scope, name string, group int64, labels ...string) string {
	t.Helper()
	path := "orgs/acme"
	if scope != "" {
		path = "repos/" + scope
		group = 1
	}
	st, body := postJSON(t, s.URL()+path+"/actions/runners/generate-jitconfig", DefaultToken,
		map[string]any{"name": name, "runner_group_id": group, "labels": labels})
	if st != http.StatusCreated {
		t.Fatalf("JIT: %d %s", st, body)
	}
	var out struct {
		Encoded string `json:"encoded_jit_config"`
	}
	_ = json.Unmarshal(body, &out)
	return out.Encoded
}

func connect(t *testing.T, s *Server, enc string) (int, ConnectAnswer) {
	t.Helper()
	st, body := postJSON(t, s.URL()+"_fake/runner/connect", "", map[string]any{"jitconfig": enc})
	var a ConnectAnswer
	_ = json.Unmarshal(body, &a)
	return st, a
}

func acquire(t *testing.T, s *Server, session string, wait float64) (int, AssignedJob) {
	t.Helper()
	st, body := postJSON(t, s.URL()+"_fake/runner/acquire", "", map[string]any{"session": session, "wait_seconds": wait})
	var out struct {
		Job AssignedJob `json:"job"`
	}
	_ = json.Unmarshal(body, &out)
	return st, out.Job
}

func TestJITConfigLooksReal(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	enc := jit(t, s, "", "tarty-mac-1", 1, "self-hosted", "tarty")
	files, err := decodeJITFiles(enc)
	if err != nil || len(files) != 3 {
		t.Fatalf("files %v, %v", files, err)
	}
	for _, f := range []string{".runner", ".credentials", ".credentials_rsaparams"} {
		var v map[string]any
		if err := json.Unmarshal(files[f], &v); err != nil {
			t.Errorf("%s is not a JSON object: %v", f, err)
		}
	}
	rc, err := DecodeJITConfig(enc)
	rn, _ := s.RunnerByName("tarty-mac-1")
	if err != nil || rc.AgentID != rn.ID || rc.AgentName != "tarty-mac-1" || rc.ServerURL != s.URL()+"_fake/runner/" ||
		rc.PoolName != "Default" || !rc.Ephemeral || rc.WorkFolder != "_work" {
		t.Errorf(".runner = %+v, %v", rc, err)
	}
	if _, err := DecodeJITConfig("bm90IGpzb24="); err == nil {
		t.Error("garbage decoded")
	}
}

func TestRunnerProtocol(t *testing.T) {
	rc := newReceiver(t)
	s := New(Config{WebhookURL: rc.srv.URL, WebhookSecret: hookSecret})
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Second)
	s.AddPublicRepo("site")
	// The oldest job is in a public repository the Default group cannot serve.
	s.AddRun("site", "", now.Add(-3*time.Minute), JobSpec{Labels: []string{"self-hosted"}})
	s.AddRun("app", "", now.Add(-2*time.Minute), JobSpec{Labels: []string{"linux"}})
	want := s.AddRun("app", "", now.Add(-time.Minute), JobSpec{Name: "build", Labels: []string{"Self-Hosted", "MACOS"}})
	s.AddRun("app", "", now, JobSpec{Labels: []string{"self-hosted"}})

	enc := jit(t, s, "", "tarty-mac-1", 1, "self-hosted", "macOS", "ARM64", "tarty")
	st, conn := connect(t, s, enc)
	if st != 200 || conn.RunnerName != "tarty-mac-1" || conn.Session == "" {
		t.Fatalf("connect: %d %+v", st, conn)
	}
	if rn, _ := s.RunnerByName("tarty-mac-1"); rn.Status != "online" || rn.Busy {
		t.Errorf("after connect: %+v", rn)
	}
	if st, _ := connect(t, s, enc); st != http.StatusConflict {
		t.Errorf("second connect with the same config: %d, want 409", st)
	}

	st, job := acquire(t, s, conn.Session, 1)
	if st != 200 || job.ID != want.JobIDs[0] || job.Name != "build" || job.Repository != "acme/app" {
		t.Fatalf("acquire: %d %+v", st, job)
	}
	rn, _ := s.RunnerByName("tarty-mac-1")
	j, _ := s.Job(job.ID)
	if !rn.Busy || rn.JobID != job.ID || j.Status != "in_progress" || j.RunnerName != "tarty-mac-1" || j.RunnerID != rn.ID || j.RunnerGroupName != "Default" {
		t.Errorf("runner %+v job %+v", rn, j)
	}
	if r, _ := s.Run(want.ID); r.Status != "in_progress" {
		t.Errorf("run %s", r.Status)
	}
	// A busy runner gets nothing more.
	if st, _ := acquire(t, s, conn.Session, 0); st != http.StatusNoContent {
		t.Errorf("second acquire: %d", st)
	}
	st, body := postJSON(t, s.URL()+"_fake/runner/complete", "", map[string]any{"session": conn.Session, "job_id": job.ID, "conclusion": "failure"})
	if st != 200 {
		t.Fatalf("complete: %d %s", st, body)
	}
	if j, _ := s.Job(job.ID); j.Status != "completed" || j.Conclusion != "failure" {
		t.Errorf("job %+v", j)
	}
	if _, ok := s.RunnerByName("tarty-mac-1"); ok {
		t.Error("the ephemeral runner was not removed")
	}
	if st, _ := acquire(t, s, conn.Session, 0); st == 200 {
		t.Error("a removed runner took a job")
	}
	waitHooks(t, s)
	var actions []string
	for _, d := range rc.all() {
		if d.ev.GetWorkflowJob().GetID() == job.ID {
			actions = append(actions, d.ev.GetAction())
		}
	}
	if strings.Join(actions, ",") != "queued,in_progress,completed" {
		t.Errorf("deliveries for the job: %v", actions)
	}

	// A registration deleted before the runner connects is refused.
	enc2 := jit(t, s, "", "tarty-mac-2", 1, "self-hosted")
	rn2, _ := s.RunnerByName("tarty-mac-2")
	s.DeleteRunner(rn2.ID)
	if st, _ := connect(t, s, enc2); st != http.StatusNotFound {
		t.Errorf("deleted registration: %d", st)
	}
	// A tampered credential is refused.
	if st, _ := connect(t, s, jitTampered(t, jit(t, s, "", "tarty-mac-3", 1, "x"))); st != http.StatusUnauthorized {
		t.Errorf("tampered config: %d", st)
	}
}

// jitTampered changes the credential inside an encoded config.
func jitTampered(t *testing.T, enc string) string {
	files, err := decodeJITFiles(enc)
	if err != nil {
		t.Fatal(err)
	}
	files[".credentials_rsaparams"] = []byte(`{"d":"forged"}`)
	out := map[string]string{}
	for k, v := range files {
		out[k] = b64(v)
	}
	b, _ := json.Marshal(out)
	return b64(b)
}

// A listening runner is woken by a new job, and by its registration's removal.
func TestRunnerLongPoll(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	enc := jit(t, s, "", "tarty-lp-1", 1, "self-hosted", "tarty")
	_, conn := connect(t, s, enc)
	got := make(chan AssignedJob, 1)
	go func() {
		st, j := acquire(t, s, conn.Session, 20)
		if st != 200 {
			t.Errorf("acquire: %d", st)
		}
		got <- j
	}()
	j := s.QueueJob("app", "tarty")
	select {
	case a := <-got:
		if a.ID != j.ID {
			t.Errorf("got job %d, want %d", a.ID, j.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listening runner was not handed the new job")
	}

	enc2 := jit(t, s, "", "tarty-lp-2", 1, "self-hosted")
	_, conn2 := connect(t, s, enc2)
	status := make(chan int, 1)
	go func() {
		st, _ := acquire(t, s, conn2.Session, 20)
		status <- st
	}()
	// Whether the runner already listens or is about to, the answer is 404.
	rn, _ := s.RunnerByName("tarty-lp-2")
	s.DeleteRunner(rn.ID)
	select {
	case st := <-status:
		if st != http.StatusNotFound {
			t.Errorf("acquire after deletion: %d, want 404", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("deleting the registration did not end the runner's wait")
	}
}

// Repository runners take jobs of their repository only; group runners
// those of the repositories their group serves.
func TestRunnerScopeAndGroup(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	s.AddRepo("app")
	s.AddRepo("lib")
	gid := s.AddRunnerGroupWith(RunnerGroup{Name: "macs", Visibility: "selected", Repositories: []string{"lib"}})
	now := time.Now().UTC().Truncate(time.Second)
	appJob := s.AddRun("app", "", now.Add(-time.Minute), JobSpec{Labels: []string{"tarty"}})
	libJob := s.AddRun("lib", "", now, JobSpec{Labels: []string{"tarty"}})

	_, group := connect(t, s, jit(t, s, "", "g-1", gid, "tarty"))
	if st, j := acquire(t, s, group.Session, 0); st != 200 || j.ID != libJob.JobIDs[0] {
		t.Errorf("group runner got %d %+v, want lib's job", st, j)
	}
	_, repo := connect(t, s, jit(t, s, "acme/lib", "r-1", 1, "tarty"))
	if st, _ := acquire(t, s, repo.Session, 0); st != http.StatusNoContent {
		t.Errorf("lib's runner took a job of app: %d", st)
	}
	_, repoApp := connect(t, s, jit(t, s, "acme/app", "r-2", 1, "tarty"))
	if st, j := acquire(t, s, repoApp.Session, 0); st != 200 || j.ID != appJob.JobIDs[0] {
		t.Errorf("app's runner: %d %+v", st, j)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
