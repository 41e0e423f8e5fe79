package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tartyci/tarty/scheduler"
)

func cmdStatus(ctx context.Context, inv *invocation) int {
	cfg, code := loadConfig(inv)
	if cfg == nil {
		return code
	}
	st, err := newAdminClient(cfg.Server.AdminListen).status(ctx)
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty status: %v\n", err)
		if errors.Is(err, errNoDaemon) {
			fmt.Fprintf(inv.stderr, "  is `tarty run` running? it listens on server.admin_listen (%s)\n", cfg.Server.AdminListen)
		}
		return exitFailure
	}
	if inv.json {
		enc := json.NewEncoder(inv.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return exitFailure
		}
		return exitOK
	}
	printStatus(inv.stdout, st)
	return exitOK
}

// printStatus writes the status as an operator reads it.
func printStatus(w io.Writer, st scheduler.Status) {
	now := st.Now
	ready := "ready"
	if !st.Ready {
		ready = "not ready: " + st.NotReady
	}
	if st.Draining {
		ready = "shutting down"
	}
	foreign := "none"
	if len(st.ForeignVMs) > 0 {
		foreign = strings.Join(st.ForeignVMs, ", ")
	}
	rate := "unknown"
	if st.GitHub.RateLimitRemaining >= 0 {
		rate = strconv.Itoa(st.GitHub.RateLimitRemaining) + " requests left"
	}
	fmt.Fprintf(w, "Tarty: %s\nCapacity: %d runner VMs (runners.max %d, warm %d); foreign macOS VMs: %s\nGitHub rate limit: %s\n",
		ready, st.Capacity, st.MaxRunners, st.Warm, foreign, rate)
	if st.LaunchHeld != nil {
		fmt.Fprintf(w, "Launches held until %s (in %s)\n", st.LaunchHeld.Local().Format(time.DateTime), age(now, *st.LaunchHeld))
	}

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tSTATE\tVM\tJOB\tFOR\tNOTE")
	for _, s := range st.Slots {
		job := ""
		if s.JobID != 0 {
			job = strconv.FormatInt(s.JobID, 10)
		}
		note := s.Reason
		if s.Adopted {
			note = strings.TrimSpace("adopted after a restart " + note)
		}
		if s.RetryAt != nil {
			note += " (retry in " + age(now, *s.RetryAt) + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", s.Index, s.State, dash(s.VM), dash(job), age(s.Since, now), note)
	}
	tw.Flush()
	printWorkers(w, st)

	fmt.Fprintln(w)
	if len(st.Queued) == 0 {
		fmt.Fprintln(w, "No queued jobs.")
	} else {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "QUEUED JOB\tREPOSITORY\tWAITING\tWHY")
		for _, j := range st.Queued {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", j.JobID, j.Repository, age(j.QueuedAt, now), j.Reason)
		}
		tw.Flush()
	}

	rb := st.Rebuild
	fmt.Fprintf(w, "\nNightly rebuild: %s", rb.State)
	if rb.Since != nil {
		fmt.Fprintf(w, " (for %s)", age(*rb.Since, now))
	}
	if rb.NextAt != nil {
		fmt.Fprintf(w, "; next %s (in %s)", rb.NextAt.Local().Format("Mon 2 Jan 15:04 MST"), age(now, *rb.NextAt))
	}
	fmt.Fprintln(w)
	if rb.LastResult != "" && rb.LastAt != nil {
		fmt.Fprintf(w, "Last rebuild: %s, %s ago\n", rb.LastResult, age(*rb.LastAt, now))
	}
	if rb.LastSuccessAt != nil {
		fmt.Fprintf(w, "Last success: %s ago\n", age(*rb.LastSuccessAt, now))
	}
	printRunnerStatus(w, st)
	if st.RunnersGone > 0 {
		fmt.Fprintf(w, "Runner registrations still to remove: %d\n", st.RunnersGone)
	}
}

// printWorkers lists a fleet's workers (backend: orchard) with Tarty's VMs on each.
func printWorkers(w io.Writer, st scheduler.Status) {
	if st.WorkersError != "" {
		fmt.Fprintf(w, "\nWorkers: cannot be listed: %s\n", st.WorkersError)
	}
	if len(st.Workers) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tONLINE\tFREE\tTAKES RUNNERS\tLABELS\tRUNNER VMS")
	for _, wk := range st.Workers {
		online, takes := "yes", "yes"
		if !wk.Online {
			online = "no"
		}
		switch {
		case wk.Matches:
		case wk.Paused:
			takes = "no (paused)"
		default:
			takes = "no"
		}
		labels := make([]string, 0, len(wk.Labels))
		for k, v := range wk.Labels {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\n", wk.Name, online, wk.Free, wk.Slots, takes,
			dash(strings.Join(labels, ",")), dash(strings.Join(wk.VMs, ", ")))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age renders to-from briefly: 45s, 12m, 3h05m, 2d4h.
func age(from, to time.Time) string {
	d := to.Sub(from)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
