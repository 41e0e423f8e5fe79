package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty/ghapi/fakegithub"
	"github.com/tartyci/tarty/ghapi/fakegithub/fakerunner"
	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/upkeep"
)

const day = 24 * time.Hour

// writeUpkeepState records what the daemon would have learnt of the runner
// image's actions runner.
func writeUpkeepState(t *testing.T, f *doctorFixture, version string, behindSince time.Time) {
	t.Helper()
	img := map[string]any{"version": version, "learnt_at": time.Now().Add(-time.Hour)}
	if !behindSince.IsZero() {
		img["behind_since"] = behindSince
	}
	data, _ := json.Marshal(map[string]any{"images": map[string]any{"runner-image": img}})
	if err := os.MkdirAll(f.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.cfg.StateDir, upkeep.StateFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// releasesAgo sets actions/runner's releases: 2.330.0 long ago, then
// 2.336.0 (the fake runner's) and 2.337.0 published the given days ago.
func releasesAgo(gh *fakegithub.Server, at2336, at2337 float64) {
	now := time.Now()
	ago := func(d float64) time.Time { return now.Add(-time.Duration(d * float64(day))) }
	gh.SetRunnerReleases(
		fakegithub.RunnerRelease{Version: "2.330.0", PublishedAt: ago(200)},
		fakegithub.RunnerRelease{Version: "2.336.0", PublishedAt: ago(at2336)},
		fakegithub.RunnerRelease{Version: "2.337.0", PublishedAt: ago(at2337)},
		fakegithub.RunnerRelease{Version: "2.338.0", PublishedAt: ago(0), Prerelease: true},
	)
}

func TestDoctorRunnerVersion(t *testing.T) {
	tests := []struct {
		name    string
		version string  // in the state file; "" = none
		at2337  float64 // days since 2.337.0 was published
		status  doctorStatus
		wants   []string
	}{
		{"not known yet", "", 25, doctorInfo, []string{"latest actions runner 2.337.0", "not known yet"}},
		{"current", "2.337.0", 25, doctorPass, []string{"runner-image has actions runner 2.337.0", "current"}},
		{"newer than the latest", "2.338.0", 25, doctorPass, []string{"current"}},
		{"a few days behind", "2.336.0", 5.5, doctorPass, []string{"5.5 days behind", "updates itself first", "504h0m0s"}},
		{"19 days", "2.336.0", 19.9, doctorPass, []string{"19.9 days behind"}},
		{"warns at 20 days", "2.336.0", 20.1, doctorWarn, []string{"20.1 days behind", "stops sending jobs to it at 30 days", "tarty rebuild", "rebuild.command"}},
		{"fails at 30 days", "2.336.0", 30.1, doctorFail, []string{"30.1 days behind", "GitHub stops sending jobs", "tarty rebuild", "newest actions runner"}},
		{"dated by the first newer release", "2.335.9", 1, doctorFail, []string{"2.335.9", "60.0 days behind"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newDoctorFixture(t, fixtureOpts{})
			releasesAgo(f.gh, 60, tt.at2337)
			if tt.version != "" {
				writeUpkeepState(t, f, tt.version, time.Time{})
			}
			expectCheck(t, f.run("runner-version"), tt.status, tt.wants...)
		})
	}

	t.Run("from the running daemon", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		releasesAgo(f.gh, 60, 25)
		writeUpkeepState(t, f, "2.337.0", time.Time{}) // older news than the daemon's
		fakeAdmin(t, f, http.StatusOK, `{"status":"ok","runner":{"image_version":"2.336.0"}}`)
		expectCheck(t, f.run("runner-version"), doctorWarn, "2.336.0 (from the running daemon)", "25.0 days behind")
	})
	t.Run("GitHub Enterprise Server", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{gh: fakegithub.Config{EnterpriseVersion: "3.14.2"},
			ghURL: (*fakegithub.Server).EnterpriseURL})
		f.gh.SetOfferedRunnerVersion("2.317.0")
		writeUpkeepState(t, f, "2.316.0", time.Now().Add(-22*day))
		expectCheck(t, f.run("runner-version"), doctorWarn, "latest 2.317.0", "GitHub Enterprise Server 3.14.2 offers runner 2.317.0",
			"22.0 days behind", "first saw")
		if n := f.gh.Calls("GET", "/repos/actions/runner/releases"); n != 0 {
			t.Errorf("asked the server for github.com's releases %d times", n)
		}
	})
	t.Run("releases unreadable", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.gh.Inject(fakegithub.Fault{Path: "/repos/actions/runner/releases", Kind: fakegithub.ServerError, Times: -1})
		writeUpkeepState(t, f, "2.330.0", time.Now().Add(-3*day))
		expectCheck(t, f.run("runner-version"), doctorPass, "latest 2.336.0", "could not be read", "3.0 days behind")
	})
	t.Run("GitHub says nothing", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.gh.Inject(fakegithub.Fault{Path: "/repos/actions/runner/releases", Kind: fakegithub.ServerError, Times: -1})
		f.gh.Inject(fakegithub.Fault{Path: "/orgs/acme/actions/runners/downloads", Kind: fakegithub.Forbidden, Times: -1})
		writeUpkeepState(t, f, "2.330.0", time.Time{})
		expectCheck(t, f.run("runner-version"), doctorWarn, "latest actions runner is unknown", "runner downloads: ", "GitHub access")
	})
}

func TestDoctorRedelivery(t *testing.T) {
	t.Run("no webhook", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		expectCheck(t, f.run("redelivery"), doctorWarn, "no webhook of organization acme delivers to path /github/webhook", "github.hook_id")
	})
	t.Run("found, with failed deliveries", func(t *testing.T) {
		// Nothing listens at the hook's URL: every delivery fails.
		f := newDoctorFixture(t, fixtureOpts{gh: fakegithub.Config{WebhookURL: "http://127.0.0.1:1/github/webhook?token=x", WebhookHookID: 4242}})
		f.gh.QueueJob("app", "tarty")
		f.gh.QueueJob("app", "tarty")
		waitDoctorHooks(t, f.gh)
		r := f.run("redelivery")
		expectCheck(t, r, doctorPass, "webhook 4242 of organization acme (http://127.0.0.1:1/github/webhook)", "2 of its 2 latest deliveries", "read and write")
		if strings.Contains(r.detail, "token=x") {
			t.Errorf("the payload URL's query is printed: %s", r.detail)
		}
	})
	t.Run("by github.hook_id", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{extra: "", mutate: func(f *doctorFixture) { f.cfg.GitHub.HookID = 777 }})
		f.gh.AddHook(fakegithub.Hook{ID: 777, URL: "https://elsewhere.example.com/hook", Active: true})
		expectCheck(t, f.run("redelivery"), doctorPass, "webhook 777", "0 of its 0")
	})
	t.Run("inactive or without workflow_job", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.GitHub.HookID = 777 }})
		f.gh.AddHook(fakegithub.Hook{ID: 777, URL: "https://a.example.com/github/webhook", Active: false})
		expectCheck(t, f.run("redelivery"), doctorWarn, "inactive", "activate it")
		f.cfg.GitHub.HookID = 778
		f.gh.AddHook(fakegithub.Hook{ID: 778, URL: "https://a.example.com/github/webhook", Active: true, Events: []string{"push"}})
		expectCheck(t, f.run("redelivery"), doctorWarn, "does not send workflow_job", "Workflow jobs")
	})
	t.Run("two hosts on the same path", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.gh.AddHook(fakegithub.Hook{ID: 11, URL: "https://mac1.example.com/github/webhook", Active: true})
		f.gh.AddHook(fakegithub.Hook{ID: 12, URL: "https://mac2.example.com/github/webhook", Active: true})
		expectCheck(t, f.run("redelivery"), doctorWarn, "11", "12", "set github.hook_id")
	})
	for _, status := range []int{http.StatusNotFound, http.StatusForbidden} {
		t.Run(fmt.Sprintf("no permission (%d)", status), func(t *testing.T) {
			f := newDoctorFixture(t, fixtureOpts{gh: fakegithub.Config{WebhookURL: "https://hooks.example.com/github/webhook"}})
			f.gh.DenyHooks(status)
			expectCheck(t, f.run("redelivery"), doctorWarn, "cannot read the webhooks of organization acme",
				"in_progress and completed events are lost", "everything else works",
				`"Webhooks: read and write"`, "admin:org_hook")
		})
	}
	t.Run("repository webhook without permission", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.GitHub.Repository = "app" }})
		f.env = newDoctorEnv(f.cfg, "test")
		f.gh.DenyHooks(http.StatusForbidden)
		expectCheck(t, f.run("redelivery"), doctorWarn, "repository acme/app", "admin:repo_hook")
	})
}

func waitDoctorHooks(t *testing.T, gh *fakegithub.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := gh.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestUpkeepPrintRunnerStatus(t *testing.T) {
	at := time.Now()
	tests := []struct {
		r     scheduler.RunnerStatus
		wants []string
	}{
		{scheduler.RunnerStatus{}, nil},
		{scheduler.RunnerStatus{ImageVersion: "2.337.0", Latest: "2.337.0", CheckedAt: &at}, []string{"Actions runner in the image: 2.337.0, latest 2.337.0 (current)"}},
		{scheduler.RunnerStatus{ImageVersion: "2.336.0", Latest: "2.337.0", BehindDays: 5.5, CheckedAt: &at}, []string{"2.336.0, latest 2.337.0 (5.5 days behind)"}},
		{scheduler.RunnerStatus{ImageVersion: "2.336.0", Latest: "2.337.0", BehindDays: 22, CheckedAt: &at}, []string{"(22.0 days behind: rebuild the image before 30)"}},
		{scheduler.RunnerStatus{ImageVersion: "2.336.0", Latest: "2.337.0", BehindDays: 31, Note: "rebuilding early", CheckedAt: &at}, []string{"31.0 days behind: GitHub stops", "\n  rebuilding early\n"}},
		{scheduler.RunnerStatus{Note: "not known yet", CheckedAt: &at}, []string{"Actions runner in the image: -\n  not known yet"}},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		printRunnerStatus(&b, scheduler.Status{Runner: tt.r})
		if len(tt.wants) == 0 && b.Len() != 0 {
			t.Errorf("%+v printed %q", tt.r, b.String())
		}
		for _, w := range tt.wants {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%+v: %q lacks %q", tt.r, b.String(), w)
			}
		}
	}
	// tarty status prints it.
	var b bytes.Buffer
	printStatus(&b, scheduler.Status{Now: at, Runner: scheduler.RunnerStatus{ImageVersion: "2.336.0", Latest: "2.337.0", BehindDays: 5, CheckedAt: &at}})
	if !strings.Contains(b.String(), "Actions runner in the image: 2.336.0") {
		t.Errorf("tarty status:\n%s", b.String())
	}
}

// TestUpkeepEndToEnd: deliveries that failed while Tarty was down are
// redelivered at start into its webhook listener; the runner image's
// version is read in the first runner VM (config.sh --version, here the
// fake runner), compared with GitHub's releases, shown in /status, tarty
// status and /metrics, and remembered in state_dir.
func TestUpkeepEndToEnd(t *testing.T) {
	e := newE2E(t, "rebuild:\n  enabled: false\n")
	configSh := "#!/bin/sh\nexec " + fakeRunnerBin + ` "$@"` + "\n"
	if err := os.WriteFile(filepath.Join(e.workDir, "config.sh"), []byte(configSh), 0o755); err != nil {
		t.Fatal(err)
	}
	releasesAgo(e.gh, 40, 5)

	// Tarty is down: three jobs' deliveries fail.
	var jobs []int64
	for range 3 {
		jobs = append(jobs, e.gh.QueueJob("app", "self-hosted", "macOS", "tarty").ID)
	}
	waitDoctorHooks(t, e.gh)
	var failed []int64
	for _, d := range e.gh.Deliveries() {
		if !d.OK() {
			failed = append(failed, d.ID)
		}
	}
	if len(failed) != 3 {
		t.Fatalf("%d failed deliveries", len(failed))
	}

	d := e.start()
	e.waitFor("the three failed deliveries asked for again", 60*time.Second, func() bool {
		return len(e.gh.RedeliveryRequests()) == 3
	})
	if got := e.gh.RedeliveryRequests(); fmt.Sprint(got) != fmt.Sprint(failed) {
		t.Errorf("redelivered %v, want %v (oldest first)", got, failed)
	}
	e.waitFor("the jobs completed", 120*time.Second, func() bool {
		for _, id := range jobs {
			if j, _ := e.gh.Job(id); j.Status != "completed" {
				return false
			}
		}
		return true
	})
	var st scheduler.Status
	e.waitFor("the runner version in /status", 60*time.Second, func() bool {
		resp, err := http.Get("http://" + e.admin + "/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&st) != nil {
			return false
		}
		return st.Runner.ImageVersion == fakerunner.Version
	})
	if r := st.Runner; r.Latest != "2.337.0" || r.BehindDays != 5 || r.CheckedAt == nil {
		t.Errorf("/status runner: %+v", r)
	}
	metrics := e.metrics()
	for _, w := range []string{
		`tarty_webhook_redeliveries_total{result="accepted"} 3`,
		`tarty_webhook_redeliveries_total{result="failed_again"} 0`,
		"tarty_runner_image_behind_days 5",
		`tarty_runner_image_info{image="runner-image",latest="2.337.0",version="2.336.0"} 1`,
		`tarty_runner_early_rebuilds_total 0`,
	} {
		if !strings.Contains(metrics, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	if code, out := e.command("status"); code != 0 || !strings.Contains(out, "Actions runner in the image: 2.336.0, latest 2.337.0 (5.0 days behind)") {
		t.Errorf("tarty status = %d:\n%s", code, out)
	}
	if code := e.stop(d); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	log := d.log.String()
	for _, id := range failed {
		if !strings.Contains(log, fmt.Sprintf(`"delivery_id":%d`, id)) {
			t.Errorf("the log does not name redelivered delivery %d", id)
		}
	}
	store, err := upkeep.OpenStore(filepath.Join(e.dir, "state", upkeep.StateFile), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := store.ImageRunner("runner-image"); !ok || r.Version != fakerunner.Version {
		t.Errorf("state after the daemon stopped: %+v", r)
	}
}
