package plan

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const metricsText = `# HELP tarty_vm_boot_seconds From clone to the runner started in its VM.
# TYPE tarty_vm_boot_seconds histogram
tarty_vm_boot_seconds_bucket{le="10"} 0
tarty_vm_boot_seconds_bucket{le="+Inf"} 4
tarty_vm_boot_seconds_sum 126.4
tarty_vm_boot_seconds_count 4
# HELP tarty_vm_boot_seconds_total_nonsense not ours
tarty_vm_boot_seconds_total_nonsense 99
`

func TestPlanMeanBoot(t *testing.T) {
	mean, n, err := MeanBoot(strings.NewReader(metricsText))
	if err != nil || n != 4 || mean != 32*time.Second {
		t.Errorf("mean %v of %d (%v), want 32s of 4", mean, n, err)
	}
	_, n, err = MeanBoot(strings.NewReader("tarty_vm_boot_seconds_sum 0\ntarty_vm_boot_seconds_count 0\n"))
	if err != nil || n != 0 {
		t.Errorf("no boots yet: %d, %v", n, err)
	}
	if _, _, err := MeanBoot(strings.NewReader("go_goroutines 12\n")); err == nil {
		t.Error("metrics without the histogram were accepted")
	}
}

func TestPlanDaemonBoot(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(metricsText))
	}))
	defer srv.Close()
	mean, n, err := DaemonBoot(context.Background(), strings.TrimPrefix(srv.URL, "http://"))
	if err != nil || n != 4 || mean != 32*time.Second {
		t.Errorf("mean %v of %d (%v)", mean, n, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, _, err := DaemonBoot(context.Background(), addr); err == nil {
		t.Error("no daemon, no error")
	}
}
