package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `tarty demo` in process: the test binary is re-executed as
// the fake tart and the fake runner (see init in demo.go), the daemon runs
// here, under the race detector when the test does.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo (about 20 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"demo"}, &out, &errOut)
	took := time.Since(start)
	t.Logf("tarty demo took %s:\n%s", took.Round(100*time.Millisecond), out.String())
	if code != exitOK {
		t.Fatalf("tarty demo = %d, want 0\nstderr:\n%s", code, errOut.String())
	}
	// About 20 s alone under -race; the bound leaves room for a loaded
	// machine running other packages' tests at the same time.
	if took > 90*time.Second {
		t.Errorf("tarty demo took %s, want under a minute", took)
	}
	o := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`curl -s http://127\.0\.0\.1:\d+/status`),
		regexp.MustCompile(`curl -s http://127\.0\.0\.1:\d+/metrics`),
		regexp.MustCompile(`webhook +job \d+ queued: signed delivery to /github/webhook, Tarty answered 202`),
		regexp.MustCompile(`tart +clone macos-runner tarty-demo-[0-9a-f]{8} +\(runner image v1\)`),
		regexp.MustCompile(`job \d+ +waits: at capacity: 2 of 2 runner VMs in use`),
		regexp.MustCompile(`guest +tarty-demo-[0-9a-f]{8}: run\.sh started detached over SSH`),
		regexp.MustCompile(`job \d+ +taken by runner tarty-demo-[0-9a-f]{8}`),
		regexp.MustCompile(`tart +tarty-demo-[0-9a-f]{8}: the guest powered itself off; tart run exited 0`),
		regexp.MustCompile(`tart +delete tarty-demo-[0-9a-f]{8}`),
		regexp.MustCompile(`webhook +job \d+ queued: LOST`),
		regexp.MustCompile(`poller +found 1 queued job\(s\) that no webhook announced`),
		regexp.MustCompile(`rebuild +finished: success`),
		regexp.MustCompile(`tart +rename tarty-demo-build-\d{8}T\d{6} macos-runner`),
		regexp.MustCompile(`job \d+ +taken by runner tarty-demo-[0-9a-f]{8} \(runner image v2, rebuilt at`),
		regexp.MustCompile(`jobs served +6 of 6`),
		regexp.MustCompile(`runner VMs +6 created, 6 deleted; at most 2 macOS VMs ran at once`),
		regexp.MustCompile(`the daemon +stopped cleanly`),
	} {
		if !want.MatchString(o) {
			t.Errorf("the narration lacks %q", want)
		}
	}
	if strings.Contains(o, "FAILED") || errOut.Len() > 0 {
		t.Errorf("stderr:\n%s", errOut.String())
	}
}
