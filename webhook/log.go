package webhook

import (
	"time"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"
)

// logOutcome logs a delivery at debug, a rejection (4xx/5xx) at warn. Header
// values are clipped; bodies and signatures are never logged.
func (s *Server) logOutcome(c echo.Context, event, id string, o outcome, took time.Duration) {
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
		e = e.Str("remote", clip(c.RealIP()))
	}
	if o.reason != nil {
		e = e.AnErr("reason", o.reason)
	}
	if j := o.job; j != nil {
		e = e.Str("action", clip(string(j.Action))).Int64("job_id", j.JobID).
			Str("repository", clip(j.Repository)).Strs("labels", j.Labels)
	}
	e.Msg("webhook delivery")
}

// clip bounds a client-controlled string before it reaches a log line.
func clip(s string) string {
	const max = 100
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
