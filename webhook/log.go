package webhook

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// logOutcome logs a delivery at debug, a rejection (4xx/5xx) at warn. A
// request refused before its signature held (401, 413, 503 busy, unreadable)
// is anonymous: those are logged at most once a minute, each line with the
// number refused since the previous one, so a flood cannot fill the disk
// (tarty_webhook_deliveries_total counts every one). Header values are clipped;
// bodies and signatures are never logged.
func (s *Server) logOutcome(r *http.Request, event, id string, o outcome, took time.Duration) {
	refused := 0
	if o.code >= 400 && !o.authentic {
		var ok bool
		if refused, ok = s.refused.next(s.opts.Now()); !ok {
			return
		}
	}
	var e *zerolog.Event
	if o.code >= 400 {
		e = s.log.Warn()
	} else {
		e = s.log.Debug()
	}
	if e == nil { // level disabled: skip building the fields
		return
	}
	e = e.Str("event", clip(event)).Str("delivery", clip(id)).Str("result", o.result).
		Int("status", o.code).Dur("took", took)
	if o.code >= 400 {
		e = e.Str("remote", clip(remoteAddr(r)))
	}
	if refused > 0 {
		e = e.Int("refused", refused)
	}
	if o.reason != nil {
		e = e.AnErr("reason", o.reason)
	}
	if j := o.job; j != nil {
		// The scheduler's field names, so one job's lines can be found together.
		e = e.Str("action", clip(string(j.Action))).Int64("job_id", j.JobID).Int64("run_id", j.RunID).
			Str("repo", clip(j.Repository)).Strs("labels", j.Labels)
	}
	e.Msg("webhook delivery")
}

// refusalInterval is the least time between two log lines about refused
// unauthenticated requests.
const refusalInterval = time.Minute

// refusalLog limits the log lines about refused unauthenticated requests.
type refusalLog struct {
	mu     sync.Mutex
	last   time.Time // of the last line; zero before the first
	counts int       // refused since the last line, this one included
}

// next records one refusal at now and reports whether to log it, with the
// number refused since the last line (this one included).
func (l *refusalLog) next(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts++
	if !l.last.IsZero() && now.Sub(l.last) < refusalInterval {
		return 0, false
	}
	n := l.counts
	l.last, l.counts = now, 0
	return n, true
}

// Forwarding headers trusted from a loopback peer only (cloudflared, a local
// proxy): anyone else could write them.
const (
	hdrCFConnectingIP = "Cf-Connecting-Ip"
	hdrForwardedFor   = "X-Forwarded-For"
)

// remoteAddr is the client address to log: the TCP peer, or, when the peer is
// on loopback, the address cloudflared gives in CF-Connecting-IP, else the
// first X-Forwarded-For entry. A header value that is not an IP is ignored.
func remoteAddr(r *http.Request) string {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	ip, err := netip.ParseAddr(peer)
	if err != nil || !ip.IsLoopback() {
		return peer
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get(hdrCFConnectingIP))); err == nil {
		return a.String()
	}
	first, _, _ := strings.Cut(r.Header.Get(hdrForwardedFor), ",")
	if a, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
		return a.String()
	}
	return peer
}

// clip bounds a client-controlled string before it reaches a log line.
func clip(s string) string {
	const max = 100
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
