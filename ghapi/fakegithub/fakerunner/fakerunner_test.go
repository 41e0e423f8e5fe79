package fakerunner_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/ghapi/fakegithub"
	"github.com/tartyci/tarty/ghapi/fakegithub/fakerunner"
)

const secret = "s3cret-for-the-hook"

// hookSink receives the fake's webhooks, checks their signatures as Tarty
// does, and passes each parsed event on.
type hookSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []*github.WorkflowJobEvent
}

func newSink(t *testing.T) *hookSink {
	h := &hookSink{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		payload, err := github.ValidatePayload(r, []byte(secret))
		if err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		ev, err := github.ParseWebHook(github.WebHookType(r), payload)
		if err != nil {
			t.Errorf("webhook: %v", err)
			return
		}
		h.mu.Lock()
		h.events = append(h.events, ev.(*github.WorkflowJobEvent))
		h.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookSink) actions(jobID int64) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		if e.GetWorkflowJob().GetID() == jobID {
			out = append(out, e.GetAction()+":"+e.GetWorkflowJob().GetRunnerName())
		}
	}
	return out
}

type world struct {
	s      *fakegithub.Server
	hooks  *hookSink
	client *ghapi.Client
}

func newWorld(t *testing.T) *world {
	t.Helper()
	h := newSink(t)
	s := fakegithub.New(fakegithub.Config{WebhookURL: h.srv.URL, WebhookSecret: secret})
	t.Cleanup(s.Close)
	c, err := ghapi.New(ghapi.Options{
		BaseURL: s.URL(), Token: s.Token(), Organization: s.Organization(), Labels: []string{"tarty"},
		Sleep: func(context.Context, time.Duration) error { return nil }, // no real second between registrations
	})
	if err != nil {
		t.Fatal(err)
	}
	return &world{s: s, hooks: h, client: c}
}

func (w *world) jit(t *testing.T, name string) string {
	t.Helper()
	_, enc, err := w.client.JITConfig(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// runMain runs Main in a goroutine and returns its exit code, stdout and stderr.
func runMain(t *testing.T, args []string, vars map[string]string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- fakerunner.Main(args, env(vars), &out, &errb) }()
	select {
	case code := <-done:
		return code, out.String(), errb.String()
	case <-time.After(60 * time.Second):
		t.Fatal("the fake runner did not exit")
	}
	return 0, "", ""
}

func waitHooks(t *testing.T, s *fakegithub.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
}

// From a JIT config Tarty registered to a finished job: the runner connects,
// is handed the job, runs it, reports it, and its registration is gone; the
// webhooks arrive signed.
func TestRunsOneJob(t *testing.T) {
	w := newWorld(t)
	job := w.s.QueueJob("app", "self-hosted", "macOS", "TARTY")
	other := w.s.QueueJob("app", "self-hosted", "linux") // not ours
	enc := w.jit(t, "tarty-mac-1a2b3c4d")
	code, out, errOut := runMain(t, nil, map[string]string{fakerunner.EnvJITConfig: enc, fakerunner.EnvJobSeconds: "0"})
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"Connected to GitHub", "Listening for Jobs", "Running job: job-1", "completed with result: Succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, enc) {
		t.Error("the JIT config was printed")
	}
	j, _ := w.s.Job(job.ID)
	if j.Status != "completed" || j.Conclusion != "success" || j.RunnerName != "tarty-mac-1a2b3c4d" {
		t.Errorf("job %+v", j)
	}
	if o, _ := w.s.Job(other.ID); o.Status != "queued" {
		t.Errorf("a job with foreign labels was taken: %+v", o)
	}
	if _, ok := w.s.RunnerByName("tarty-mac-1a2b3c4d"); ok {
		t.Error("the registration is still there")
	}
	waitHooks(t, w.s)
	got := strings.Join(w.hooks.actions(job.ID), ",")
	if got != "queued:,in_progress:tarty-mac-1a2b3c4d,completed:tarty-mac-1a2b3c4d" {
		t.Errorf("webhooks %s", got)
	}

	// The JIT config is single-use.
	code, _, errOut = runMain(t, []string{"--jitconfig", enc}, map[string]string{fakerunner.EnvJobSeconds: "0"})
	if code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("second run: exit %d %s", code, errOut)
	}
}

func TestRefusals(t *testing.T) {
	w := newWorld(t)
	// A registration deleted before the runner starts.
	enc := w.jit(t, "tarty-gone")
	rn, _ := w.s.RunnerByName("tarty-gone")
	w.s.DeleteRunner(rn.ID)
	if code, _, errOut := runMain(t, nil, map[string]string{fakerunner.EnvJITConfig: enc}); code != 1 || !strings.Contains(errOut, "was not found") {
		t.Errorf("deleted registration: exit %d %q", code, errOut)
	}
	// No config at all, a bad one, unknown arguments.
	for _, tc := range []struct {
		args []string
		vars map[string]string
		want string
	}{
		{nil, nil, "Not configured"},
		{nil, map[string]string{fakerunner.EnvJITConfig: "garbage"}, "Invalid JIT configuration"},
		{[]string{"--once"}, nil, "unknown argument"},
		{nil, map[string]string{fakerunner.EnvJITConfig: enc, fakerunner.EnvJobSeconds: "soon"}, fakerunner.EnvJobSeconds},
	} {
		if code, _, errOut := runMain(t, tc.args, tc.vars); code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v %v: exit %d %q", tc.args, tc.vars, code, errOut)
		}
	}
}

// No job within the idle time: exit 0. A registration deleted while the
// runner listens: exit 0, as the real runner does.
func TestIdleAndDeletedWhileListening(t *testing.T) {
	w := newWorld(t)
	enc := w.jit(t, "tarty-idle")
	code, out, _ := runMain(t, nil, map[string]string{fakerunner.EnvJITConfig: enc, fakerunner.EnvIdle: "0.2"})
	if code != 0 || !strings.Contains(out, "No job within") {
		t.Errorf("idle: exit %d\n%s", code, out)
	}

	enc = w.jit(t, "tarty-deleted")
	var out2, err2 bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- fakerunner.Main(nil, env(map[string]string{fakerunner.EnvJITConfig: enc}), &out2, &err2)
	}()
	// Once it is online (connected), remove its registration.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rn, ok := w.s.RunnerByName("tarty-deleted"); ok && rn.Status == "online" {
			w.s.DeleteRunner(rn.ID)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the runner never connected")
		}
		pause()
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d %s", code, err2.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the runner did not notice its registration was deleted")
	}
}

// The built command behaves the same when placed as run.sh, and never reads
// its stdin (an open pipe nobody writes to).
func TestBuiltBinaryAsRunSh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	runSh := filepath.Join(dir, "run.sh")
	build := exec.Command("go", "build", "-o", runSh, "github.com/tartyci/tarty/ghapi/fakegithub/fakerunner/cmd/fakerunner")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	w := newWorld(t)
	for i, viaFlag := range []bool{false, true} {
		job := w.s.QueueJob("app", "self-hosted", "macos", "arm64", "tarty")
		name := []string{"tarty-bin-env", "tarty-bin-flag"}[i]
		enc := w.jit(t, name)
		cmd := exec.Command(runSh)
		cmd.Env = append(os.Environ(), fakerunner.EnvJobSeconds+"=0.1")
		if viaFlag {
			cmd.Args = append(cmd.Args, "--jitconfig", enc)
		} else {
			cmd.Env = append(cmd.Env, fakerunner.EnvJITConfig+"="+enc)
		}
		stdinR, stdinW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = stdinR
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stdinR.Close()
		errc := make(chan error, 1)
		go func() { errc <- cmd.Wait() }()
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("run.sh: %v\n%s", err, out.String())
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("run.sh did not exit (waiting on stdin?)")
		}
		stdinW.Close()
		if j, _ := w.s.Job(job.ID); j.Status != "completed" || j.RunnerName != name {
			t.Errorf("job %+v\n%s", j, out.String())
		}
	}
}

// pause is the interval of a poll bounded by a deadline.
func pause() { time.Sleep(time.Millisecond) }
