//go:build unix

package demo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tartyci/tarty/config"
)

// A port taken between the demo choosing it and the daemon listening on it
// costs one more attempt with other ports, not the demo.
func TestStartRetriesWhenAPortWasTaken(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var mu sync.Mutex
	calls := 0
	pickPort = func() (int, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 { // the first webhook port
			return taken.Addr().(*net.TCPAddr).Port, nil
		}
		return freePort()
	}
	defer func() { pickPort = freePort }()

	var stderr bytes.Buffer
	attempts := 0
	o := Options{Stdout: io.Discard, Stderr: &stderr, Executable: "/bin/true",
		// A stand-in daemon: the webhook listener, and /readyz on the admin one.
		Daemon: func(ctx context.Context, cfg *config.Config, _ io.Writer) error {
			attempts++
			hook, err := net.Listen("tcp", cfg.Server.Listen)
			if err != nil {
				return err
			}
			defer hook.Close()
			admin, err := net.Listen("tcp", cfg.Server.AdminListen)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
			go srv.Serve(admin)
			<-ctx.Done()
			return srv.Close()
		}}
	r, err := start(context.Background(), o, nil)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, stderr.String())
	}
	r.stop()
	if err := <-r.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("daemon: %v", err)
	}
	r.logFile.Close()
	r.w.close()
	if attempts != 2 || strings.Contains(stderr.String(), "log") {
		t.Errorf("%d attempts, stderr %q; want 2 and nothing said", attempts, stderr.String())
	}
}
