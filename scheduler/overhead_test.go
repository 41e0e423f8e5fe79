package scheduler_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/tartvm"
	"github.com/tartyci/tarty/tartvm/faketart"
	"github.com/tartyci/tarty/tartvm/faketart/tarttest"
	"github.com/tartyci/tarty/webhook"
)

func TestMain(m *testing.M) {
	code := m.Run()
	tarttest.Cleanup()
	os.Exit(code)
}

// stampBackend records when the scheduler asks for each VM.
type stampBackend struct {
	*tartvm.Backend
	created chan time.Time
}

func (b stampBackend) Create(ctx context.Context, image, name string) error {
	b.created <- time.Now()
	return b.Backend.Create(ctx, image, name)
}

// instantGuest and instantGitHub answer at once: this measures Tarty, not them.
type instantGuest struct{}

func (instantGuest) WaitReady(context.Context, string, string) error { return nil }
func (instantGuest) Run(context.Context, string, string, string, io.Reader, io.Writer, io.Writer) error {
	return nil
}
func (instantGuest) Start(context.Context, string, string, string, io.Reader) error { return nil }
func (instantGuest) ForgetHostKey(string) error                                     { return nil }

type instantGitHub struct {
	mu sync.Mutex
	n  int64
}

func (g *instantGitHub) JITConfig(context.Context, string) (int64, string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	return g.n, "config", nil
}
func (*instantGitHub) ListRunners(context.Context, string) ([]tarty.Runner, error) { return nil, nil }
func (*instantGitHub) RemoveRunner(context.Context, int64) error                   { return nil }
func (*instantGitHub) QueuedJobs(context.Context) (tarty.PollResult, error) {
	return tarty.PollResult{}, nil
}

// BenchmarkWebhookToClone measures Tarty's own overhead in real time: from a
// signed queued webhook sent over loopback to the scheduler asking the tart
// backend for a VM, and to the fake tart's `clone` process starting (the
// backend first checks `tart list` so that clone never overwrites a VM).
// See BENCHMARKS.md.
func BenchmarkWebhookToClone(b *testing.B) {
	env := tarttest.New(b)
	env.Seed("runner-image", faketart.VMOptions{})
	client := tartvm.New(tartvm.Options{Path: env.Bin, Home: env.Home, LogDir: b.TempDir()})
	backend := stampBackend{Backend: tartvm.NewBackend(client, tartvm.BackendOptions{Prefix: "bench"}), created: make(chan time.Time, 1)}

	events := make(chan tarty.JobEvent, 64)
	secret := []byte("benchmark-webhook-secret-000000")
	hook, err := webhook.New(webhook.Options{Listen: "127.0.0.1:0", Secret: secret, Organization: "acme",
		Matcher: tarty.NewLabelMatcher([]string{"tarty"}), Events: events})
	if err != nil {
		b.Fatal(err)
	}
	gh := &instantGitHub{}
	sched, err := scheduler.New(scheduler.Options{Prefix: "bench", Image: "runner-image", Labels: []string{"tarty"}, Max: 1,
		ShutdownCommand: "true"},
		scheduler.Deps{Backend: backend, Guest: instantGuest{}, Runners: gh, Jobs: gh, Events: events})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = hook.Run(ctx) }()
	go func() { defer wg.Done(); _ = sched.Run(ctx) }()
	defer func() {
		cancel()
		wg.Wait()
	}()
	<-hook.Ready()
	url := "http://" + hook.Addr().String() + webhook.DefaultPath
	waitIdle(b, sched)

	var toCreate, toClone []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		body := fmt.Sprintf(`{"action":"queued","workflow_job":{"id":%d,"run_id":1,"run_attempt":1,"status":"queued",`+
			`"labels":["tarty"],"created_at":"%s"},"repository":{"full_name":"acme/app","owner":{"login":"acme"}},`+
			`"organization":{"login":"acme"}}`, i+1, time.Now().UTC().Format(time.RFC3339))
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(body))
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "workflow_job")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d", i))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		sent := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		created := <-backend.created
		toCreate = append(toCreate, created.Sub(sent))

		b.StopTimer()
		vm := waitVM(b, sched)
		for _, c := range env.Calls() {
			if len(c.Args) == 3 && c.Args[0] == "clone" && c.Args[2] == vm {
				toClone = append(toClone, c.Time.Sub(sent))
			}
		}
		// Let GitHub hand the runner the job, then power the guest off.
		events <- tarty.JobEvent{Source: tarty.SourceWebhook, Action: tarty.ActionInProgress, JobID: int64(i + 1),
			Labels: []string{"tarty"}, Repository: "acme/app", RunnerName: vm, CreatedAt: time.Now()}
		env.PowerOff(vm)
		waitIdle(b, sched)
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "create", toCreate)
	report(b, "clone", toClone)
}

func report(b *testing.B, what string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[(len(ds)-1)/2].Microseconds())/1000, what+"-p50-ms")
	b.ReportMetric(float64(ds[(len(ds)*99+99)/100-1].Microseconds())/1000, what+"-p99-ms")
}

// waitVM waits for the slot's runner to be listening and returns its VM.
func waitVM(b *testing.B, s *scheduler.Scheduler) string {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := s.Status(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if sl := st.Slots[0]; sl.State == scheduler.SlotIdle || sl.State == scheduler.SlotBusy {
			return sl.VM
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatal("no runner within 30 s")
	return ""
}

// waitIdle waits until every slot is free and start-up recovery is done.
func waitIdle(b *testing.B, s *scheduler.Scheduler) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := s.Status(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		free := true
		for _, sl := range st.Slots {
			free = free && sl.State == scheduler.SlotFree
		}
		if free && !strings.Contains(st.NotReady, "recovery") {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatal("slots not free within 30 s")
}
