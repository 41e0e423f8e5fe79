package ghapi

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty/ghapi/fakegithub"
)

// What one poll costs, measured against the fake GitHub: requests sent and
// rate-limit units spent (a 304 is free, a 200 costs one). The organisation
// is "quiet": every repository had a run two days ago (so each could be
// re-run) and nothing is queued or running; that is the costliest idle case,
// since a repository with no run in 30 days needs only its probe.
//
//	TARTY_POLL_COST=1 go test -run TestPollCost -v ./ghapi/
//
// simulates three hours of polls at 60 s for each size and token and prints
// the table in BENCHMARKS.md (about 20 s; a minute under -race). Without
// TARTY_POLL_COST the test checks the per-poll aims on a few warm polls.

type costRow struct {
	repos                int
	token                string
	coldReq, coldUnits   int
	warmReq, warmUnits   int // the median warm poll
	maxReq               int // the most requests any warm poll sent
	hour1Req, hour1Units int // the first hour after the cold poll
	hourReq, hourUnits   int // a steady hour (the third)
}

type costMode int

const (
	threeHours costMode = iota // the table: three simulated hours at 60 s
	untilRead                  // polls until every repository was read once, then two warm polls
	fewPolls                   // the cold poll and three more
)

func measurePollCost(t *testing.T, n int, app bool, mode costMode) costRow {
	clk := newClock() // the App's JWT is stamped with the real time
	cfg := fakegithub.Config{Now: clk.Now, RateLimit: 1 << 30}
	var key []byte
	if app {
		priv, pem := newAppKey(t)
		key = pem
		// One token for the whole simulated run (ghinstallation renews by the
		// real clock); RotateInstallationTokens stands for each hourly renewal.
		cfg.App = &fakegithub.App{ID: 1, InstallationID: 2, PublicKey: &priv.PublicKey, TokenTTL: 100 * time.Hour}
	}
	s := fakegithub.New(cfg)
	defer s.Close()
	for i := 0; i < n; i++ {
		s.AddRun(fmt.Sprintf("repo%03d", i), "", clk.Now().Add(-48*time.Hour),
			fakegithub.JobSpec{Labels: []string{"self-hosted", "macOS", "tarty"}, Status: "completed"})
	}
	o := Options{BaseURL: s.EnterpriseURL(), Organization: s.Organization(), Labels: []string{"tarty"}, Clock: clk.Now}
	row := costRow{repos: n, token: "PAT"}
	if app {
		o.App = &App{ID: 1, InstallationID: 2, PrivateKey: key}
		row.token = "App"
	} else {
		o.Token = s.Token()
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pollOnce := func() (req, units int) {
		clk.Advance(time.Minute)
		calls, before := s.CallsMatching("GET", ""), s.RateRemaining()
		res, err := c.QueuedJobs(ctx)
		if err != nil || len(res.Failed) > 0 || len(res.Jobs) > 0 {
			t.Fatalf("poll: %v %v %d jobs", err, res.Failed, len(res.Jobs))
		}
		req, units = s.CallsMatching("GET", "")-calls, before-s.RateRemaining()
		return req, units
	}
	row.coldReq, row.coldUnits = pollOnce()
	var warmReq, warmUnits []int
	switch mode {
	case threeHours:
		for hour := 1; hour <= 3; hour++ {
			if app {
				s.RotateInstallationTokens() // the hourly token refresh: every ETag changes
			}
			for m := 0; m < 60; m++ {
				req, units := pollOnce()
				switch hour {
				case 1:
					row.hour1Req += req
					row.hour1Units += units
				case 3:
					row.hourReq += req
					row.hourUnits += units
					warmReq, warmUnits = append(warmReq, req), append(warmUnits, units)
				}
				row.maxReq = max(row.maxReq, req)
			}
		}
	case untilRead:
		for i := 0; !c.allRead(); i++ {
			if i > 500 {
				t.Fatal("repositories never all read")
			}
			req, _ := pollOnce()
			row.maxReq = max(row.maxReq, req)
		}
		fallthrough
	case fewPolls:
		for i := 0; i < 3; i++ {
			req, units := pollOnce()
			warmReq, warmUnits = append(warmReq, req), append(warmUnits, units)
			row.maxReq = max(row.maxReq, req)
		}
	}
	slices.Sort(warmReq)
	slices.Sort(warmUnits)
	row.warmReq, row.warmUnits = warmReq[len(warmReq)/2], warmUnits[len(warmUnits)/2]
	return row
}

// allRead reports whether every repository polled so far was read in full.
func (c *Client) allRead() bool {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	for _, st := range c.polls {
		if !st.read {
			return false
		}
	}
	return true
}

func TestPollCost(t *testing.T) {
	full := os.Getenv("TARTY_POLL_COST") != ""
	var rows []costRow
	if full {
		for _, n := range []int{1, 100, 500} {
			for _, app := range []bool{false, true} {
				rows = append(rows, measurePollCost(t, n, app, threeHours))
			}
		}
	} else {
		rows = append(rows, measurePollCost(t, 1, false, untilRead), measurePollCost(t, 100, false, untilRead),
			measurePollCost(t, 100, true, untilRead), measurePollCost(t, 500, false, fewPolls))
	}
	var b strings.Builder
	b.WriteString("| repositories | token | cold poll: requests / units | warm poll (median): requests / units | most requests in a poll | first hour: requests / units | steady hour: requests / units |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %d / %d | %d / %d | %d | %d / %d | %d / %d |\n", r.repos, r.token,
			r.coldReq, r.coldUnits, r.warmReq, r.warmUnits, r.maxReq, r.hour1Req, r.hour1Units, r.hourReq, r.hourUnits)
	}
	if full {
		t.Log("\n" + b.String())
	}

	for _, r := range rows {
		// The aims of issue 11: a warm poll of 100 quiet repositories costs
		// under 5 units; 500 stay far inside GitHub's limits at 60 s.
		if r.repos == 100 && r.warmUnits >= 5 {
			t.Errorf("warm poll of 100 quiet repositories cost %d units", r.warmUnits)
		}
		// Secondary limit: 900 points a minute, a 304 counts; stay under a third.
		if r.maxReq > 300 && r.repos > 1 && r.maxReq != r.coldReq {
			t.Errorf("%d repositories, %s: a warm poll sent %d requests", r.repos, r.token, r.maxReq)
		}
		// Primary limit: a PAT has 5,000 an hour; an App 5,000 plus 50 per
		// repository beyond 20, at most 12,500. Stay under a quarter.
		limit := 5000
		if r.token == "App" {
			limit = min(12500, 5000+50*max(0, r.repos-20))
		}
		if full && r.hourUnits > limit/4 {
			t.Errorf("%d repositories, %s: a steady hour costs %d units of %d", r.repos, r.token, r.hourUnits, limit)
		}
	}
}
