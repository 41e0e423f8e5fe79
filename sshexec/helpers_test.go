package sshexec_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty/internal/sshdtest"
	"github.com/tartyci/tarty/sshexec"
)

var clientKinds = []string{sshexec.ClientNative, sshexec.ClientOpenSSH}

// requireClient skips (or fails under TARTY_REQUIRE_SSHD=1) when the client
// kind needs a binary that is missing.
func requireClient(t testing.TB, kind string) {
	t.Helper()
	if kind == sshexec.ClientOpenSSH {
		sshdtest.Require(t, "ssh", "/usr/bin/ssh")
	}
}

// logSink collects a client's log lines and reports them on a channel, so
// tests can wait for "ssh not ready yet" instead of sleeping.
type logSink struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func newLogSink() *logSink { return &logSink{lines: make(chan string, 1024)} }

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	select {
	case l.lines <- string(p):
	default:
	}
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type setup struct {
	srv   *sshdtest.Server
	opts  sshexec.Options
	logs  *logSink
	state string // Tarty's state dir (known hosts)
}

func newSetup(t testing.TB, srv *sshdtest.Server, kind string) *setup {
	t.Helper()
	requireClient(t, kind)
	state := t.TempDir()
	logs := newLogSink()
	return &setup{srv: srv, logs: logs, state: state, opts: sshexec.Options{
		User:           srv.User,
		Port:           srv.Port,
		KeyFile:        srv.ClientKey.Private,
		Client:         kind,
		ConnectTimeout: 10 * time.Second,
		KnownHostsFile: filepath.Join(state, "known_hosts"),
		Logger:         zerolog.New(logs).Level(zerolog.DebugLevel),
		Keepalive:      time.Second,
		StartLog:       filepath.Join(t.TempDir(), "start.log"),
	}}
}

func (s *setup) client(t testing.TB, mutate ...func(*sshexec.Options)) *sshexec.Client {
	t.Helper()
	o := s.opts
	for _, m := range mutate {
		m(&o)
	}
	c, err := sshexec.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		<-tick.C
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// syncWriter is a goroutine-safe bytes.Buffer that can signal when it first
// sees a marker.
type syncWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	marker string
	seen   chan struct{}
	once   sync.Once
}

func newSyncWriter(marker string) *syncWriter {
	return &syncWriter{marker: marker, seen: make(chan struct{})}
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if w.marker != "" && strings.Contains(w.b.String(), w.marker) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func generateEd25519() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

func writePEM(t *testing.T, path string, block *pem.Block) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}
