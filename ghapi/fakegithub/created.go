package fakegithub

import (
	"fmt"
	"strings"
	"time"
)

// parseCreated turns GitHub's date-range search syntax (">=2026-01-02T15:00:00Z",
// "<2026-01-02", "A..B", or one date) into a predicate.
func parseCreated(v string) (func(time.Time) bool, error) {
	if v == "" {
		return func(time.Time) bool { return true }, nil
	}
	if a, b, ok := strings.Cut(v, ".."); ok {
		lo, _, err := parseWhen(a)
		if err != nil {
			return nil, err
		}
		hi, hiDay, err := parseWhen(b)
		if err != nil {
			return nil, err
		}
		if hiDay {
			hi = hi.Add(24*time.Hour - time.Nanosecond)
		}
		return func(t time.Time) bool { return !t.Before(lo) && !t.After(hi) }, nil
	}
	for _, op := range []string{">=", "<=", ">", "<"} {
		rest, ok := strings.CutPrefix(v, op)
		if !ok {
			continue
		}
		at, day, err := parseWhen(rest)
		if err != nil {
			return nil, err
		}
		end := at
		if day {
			end = at.Add(24 * time.Hour)
		}
		switch op {
		case ">=":
			return func(t time.Time) bool { return !t.Before(at) }, nil
		case ">":
			return func(t time.Time) bool { return !t.Before(end) }, nil
		case "<=":
			return func(t time.Time) bool { return t.Before(end) || t.Equal(at) }, nil
		default:
			return func(t time.Time) bool { return t.Before(at) }, nil
		}
	}
	at, day, err := parseWhen(v)
	if err != nil {
		return nil, err
	}
	if !day {
		return func(t time.Time) bool { return t.Equal(at) }, nil
	}
	return func(t time.Time) bool { return !t.Before(at) && t.Before(at.Add(24*time.Hour)) }, nil
}

func parseWhen(s string) (t time.Time, day bool, err error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, false, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, true, nil
	}
	return time.Time{}, false, fmt.Errorf("%q is not a date or RFC 3339 time", s)
}
