package webhook

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
)

// Server is the webhook listener: one route, POST {Path}.
type Server struct {
	opts    Options
	scope   scope
	events  chan<- tarty.JobEvent
	echo    *echo.Echo
	sig     *signer
	seen    *deliveries
	metrics *metrics
	log     zerolog.Logger
	bufs    sync.Pool     // *bytes.Buffer for request bodies
	reads   chan struct{} // read slots: a send takes one (MaxConcurrentReads)
	refused refusalLog    // once-a-minute log of refused unauthenticated requests
	// handling counts authentic deliveries being handled: a shutdown that
	// has to cut one off is an error, cutting anything else is not.
	handling atomic.Int64

	started atomic.Bool
	ready   chan struct{} // closed once the listener is bound
	addr    net.Addr      // set before ready is closed
}

// New checks opts and builds a Server; it registers the metrics but does not
// listen yet (see Run).
func New(opts Options) (*Server, error) {
	repo, err := opts.normalize()
	if err != nil {
		return nil, fmt.Errorf("webhook options: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:    opts,
		scope:   scope{org: opts.Organization, repo: repo},
		events:  opts.Events,
		sig:     newSigner(opts.Secret),
		seen:    newDeliveries(opts.DedupeSize, opts.DedupeTTL, opts.Now),
		metrics: m,
		log:     opts.Logger.With().Str("component", "webhook").Logger(),
		ready:   make(chan struct{}),
		reads:   make(chan struct{}, opts.MaxConcurrentReads),
	}
	// The secret lives in the signer only; no copy stays in opts.
	s.opts.Secret = nil

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Logger.SetOutput(debugWriter{s.log})
	e.HTTPErrorHandler = s.handleError
	e.POST(opts.Path, s.handleDelivery)
	// Echo answers OPTIONS on a known path with 204 by itself; the contract is 405
	// for every method but POST.
	e.OPTIONS(opts.Path, func(echo.Context) error { return echo.ErrMethodNotAllowed })
	s.echo = e
	return s, nil
}

// Handler returns the HTTP handler Run serves, for tests and benchmarks.
func (s *Server) Handler() http.Handler { return s.echo }

// Ready is closed once Run has bound its listener; Addr is valid from then on.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the bound address, or nil before Ready is closed.
func (s *Server) Addr() net.Addr {
	select {
	case <-s.ready:
		return s.addr
	default:
		return nil
	}
}

// Run listens on Options.Listen and serves until ctx is cancelled, then shuts
// down gracefully within ShutdownTimeout. Connections still open then are
// closed; Run returns an error only when that cut off an authentic delivery
// (an idle client or an unauthenticated request being read is no error).
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("webhook: Run called twice")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("webhook listen %s: %w", s.opts.Listen, err)
	}
	s.addr = ln.Addr()
	close(s.ready)

	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(debugWriter{s.log}, "", 0),
	}
	s.log.Info().Str("addr", s.addr.String()).Str("path", s.opts.Path).Msg("webhook listener started")

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("webhook serve %s: %w", s.addr, err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if err != nil {
		// Still open: connections that never sent a request (closed by
		// ReadHeaderTimeout, usually before this), slow unauthenticated
		// bodies, or a delivery waiting on the scheduler's queue.
		cut := s.handling.Load()
		_ = srv.Close()
		if cut > 0 {
			err = fmt.Errorf("webhook shutdown %s: %d deliveries still being handled: %w", s.addr, cut, err)
		} else {
			s.log.Debug().Str("addr", s.addr.String()).Msg("webhook: closed connections with no authentic delivery at shutdown")
			err = nil
		}
	}
	<-served // http.ErrServerClosed once Shutdown or Close returned
	s.log.Info().Str("addr", s.addr.String()).Msg("webhook listener stopped")
	return err
}

// handleError counts and answers the router's own 404 and 405 (the handler
// counts everything else), then lets echo write its JSON {"message": ...}.
func (s *Server) handleError(err error, c echo.Context) {
	var he *echo.HTTPError
	if errors.As(err, &he) && !c.Response().Committed {
		r := c.Request()
		event := eventLabel(r.Header.Get(hdrEvent))
		switch he.Code {
		case http.StatusNotFound:
			s.metrics.deliveries.WithLabelValues(event, resultNotFound).Inc()
			// Debug, not warn: an exposed listener gets scanned all day.
			s.log.Debug().Str("method", clip(r.Method)).Str("path", clip(r.URL.Path)).Msg("webhook: no such path")
		case http.StatusMethodNotAllowed:
			c.Response().Header().Set(echo.HeaderAllow, http.MethodPost)
			s.metrics.deliveries.WithLabelValues(event, resultBadMethod).Inc()
			s.log.Debug().Str("method", clip(r.Method)).Msg("webhook: method not allowed")
		}
	}
	s.echo.DefaultHTTPErrorHandler(err, c)
}

// debugWriter sends net/http's and echo's own log lines to zerolog at debug.
type debugWriter struct{ log zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	n := len(p)
	if n > 0 && p[n-1] == '\n' {
		p = p[:n-1]
	}
	w.log.Debug().Msg(string(p))
	return n, nil
}
