// Package admin is Tarty's admin listener (server.admin_listen, loopback
// only): /healthz, /readyz, /metrics, /status and the control requests of the
// CLI (POST /reconcile, /rebuild, /rollback). It has no authentication, which
// is why it refuses any address but loopback, and it never shares a listener
// with the webhook. Requests reach the scheduler as events with a reply.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/scheduler"
)

// Daemon is what the admin listener asks of the running daemon.
type Daemon interface {
	Status(ctx context.Context) (scheduler.Status, error)
	Reconcile(ctx context.Context) error
}

// Controls are the optional control requests (the nightly rebuild). A nil
// Controls answers 409 with the reason.
type Controls interface {
	Rebuild(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Refused is an error a control request answers 409 with; its message is the
// JSON reason.
type Refused interface{ Refused() bool }

// Options configure a Server.
type Options struct {
	Listen   string // server.admin_listen; must be loopback
	Daemon   Daemon
	Controls Controls
	Gatherer prometheus.Gatherer // what /metrics serves
	Logger   zerolog.Logger
	// RequestTimeout bounds how long a request waits for the scheduler.
	RequestTimeout time.Duration
}

// Server is the admin listener.
type Server struct {
	opts    Options
	mux     *http.ServeMux
	log     zerolog.Logger
	addr    atomic.Value // net.Addr once listening
	ready   chan struct{}
	started atomic.Bool
}

// New checks opts and builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Daemon == nil || opts.Gatherer == nil {
		return nil, errors.New("admin: daemon and gatherer are required")
	}
	if err := CheckLoopback(opts.Listen); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	s := &Server{opts: opts, mux: http.NewServeMux(), log: opts.Logger.With().Str("component", "admin").Logger(),
		ready: make(chan struct{})}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /status", s.status)
	s.mux.HandleFunc("POST /reconcile", s.control(func(ctx context.Context) error { return s.opts.Daemon.Reconcile(ctx) }))
	s.mux.HandleFunc("POST /rebuild", s.control(func(ctx context.Context) error {
		if s.opts.Controls == nil {
			return scheduler.Refusal("the nightly rebuild is not available with this backend")
		}
		return s.opts.Controls.Rebuild(ctx)
	}))
	s.mux.HandleFunc("POST /rollback", s.control(func(ctx context.Context) error {
		if s.opts.Controls == nil {
			return scheduler.Refusal("rollback is not available with this backend")
		}
		return s.opts.Controls.Rollback(ctx)
	}))
	return s, nil
}

// CheckLoopback refuses a listen address that is not loopback: the admin
// endpoints start VMs and rebuilds and have no authentication.
func CheckLoopback(addr string) error {
	if !tarty.LoopbackAddr(addr) {
		return fmt.Errorf("admin listen %q: must be a loopback address (127.0.0.1, ::1 or localhost): it has no authentication", addr)
	}
	return nil
}

// Handler is the HTTP handler Run serves.
func (s *Server) Handler() http.Handler { return s.mux }

// Ready is closed once Run listens; Addr is valid from then on.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the bound address, nil before Ready.
func (s *Server) Addr() net.Addr {
	a, _ := s.addr.Load().(net.Addr)
	return a
}

// Run serves until ctx is done, then shuts down within a few seconds.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("admin: Run called twice")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", s.opts.Listen, err)
	}
	s.addr.Store(ln.Addr())
	close(s.ready)
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          log.New(debugWriter{s.log}, "", 0),
	}
	s.log.Info().Str("addr", ln.Addr().String()).Msg("admin listener started")
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("admin serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// A client holding a request open must not fail the daemon's exit.
		_ = srv.Close()
	}
	<-served
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	st, err := s.opts.Daemon.Status(ctx)
	switch {
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
	case !st.Ready:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": st.NotReady})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	st, err := s.opts.Daemon.Status(ctx)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// control answers a control request: 202 when accepted, 409 with the reason
// when refused, 503 when the scheduler does not answer.
func (s *Server) control(do func(ctx context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
		defer cancel()
		err := do(ctx)
		var ref Refused
		switch {
		case err == nil:
			s.log.Info().Str("path", r.URL.Path).Msg("control request accepted")
			writeJSON(w, http.StatusAccepted, map[string]string{"result": "accepted"})
		case errors.As(err, &ref) && ref.Refused():
			writeJSON(w, http.StatusConflict, map[string]string{"reason": err.Error()})
		default:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"reason": err.Error()})
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type debugWriter struct{ log zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug().Msg(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
