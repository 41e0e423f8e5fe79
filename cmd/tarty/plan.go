package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/config"
	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/plan"
)

// planFlags are `tarty plan`'s flags.
type planFlags struct {
	days            int
	macs            string
	warm            string
	boot            time.Duration
	jobs            string
	labels          string
	json            bool
	csv             bool
	target          time.Duration
	budget          int
	rebuildDuration string
	saveJobs        string

	now func() time.Time // tests fix the clock
}

// planCommand is `tarty plan`; each call has its own flags.
func planCommand() *command {
	o := &planFlags{now: time.Now}
	return &command{
		name:    "plan",
		summary: "replay recent job history through the scheduler for 1..N Macs and warm settings; predicted waits beside observed ones",
		run:     func(ctx context.Context, inv *invocation) int { return cmdPlan(ctx, inv, o) },
		flags: func(fs *flag.FlagSet, _ *invocation) {
			fs.IntVar(&o.days, "days", 14, "read the jobs created in the last `N` days from GitHub")
			fs.StringVar(&o.macs, "macs", "1..4", "the numbers of Macs to replay: a range `1..4` or a list 1,2,4")
			fs.StringVar(&o.warm, "warm", "0,1,2", "the runners.warm settings to replay on each Mac (`list` or range)")
			fs.DurationVar(&o.boot, "boot", 0, "clone to runner listening (default: the mean tarty_vm_boot_seconds of the daemon on server.admin_listen, else 25s)")
			fs.StringVar(&o.jobs, "jobs", "", "read the history from `FILE` (JSON lines: id, repository, labels, created_at, started_at, completed_at, conclusion, runner_name) instead of GitHub")
			fs.StringVar(&o.labels, "labels", "", "replay the jobs these `labels` would serve (comma-separated; default github.labels)")
			fs.BoolVar(&o.json, "json", false, "print the report as JSON")
			fs.BoolVar(&o.csv, "csv", false, "print the table as CSV")
			fs.DurationVar(&o.target, "target", plan.DefaultTarget, "the p95 wait the recommendation aims for")
			fs.IntVar(&o.budget, "budget", plan.DefaultBudget, "the most GitHub rate-limit `units` reading the history may spend; above, refuse with the estimate")
			fs.StringVar(&o.rebuildDuration, "rebuild-duration", "", "how long the nightly rebuild holds a VM of each Mac (default rebuild.timeout; 0 leaves the rebuild out)")
			fs.StringVar(&o.saveJobs, "save-jobs", "", "also write the history read from GitHub to `FILE` in the --jobs format")
		},
	}
}

func cmdPlan(ctx context.Context, inv *invocation, o *planFlags) int {
	usage := func(format string, args ...any) int {
		fmt.Fprintf(inv.stderr, "tarty plan: "+format+"\n", args...)
		return exitUsage
	}
	macs, err := parseCounts(o.macs, 1, 100)
	if err != nil {
		return usage("--macs: %v", err)
	}
	warms, err := parseCounts(o.warm, 0, config.MaxMacOSVMs)
	if err != nil {
		return usage("--warm: %v", err)
	}
	switch {
	case o.json && o.csv:
		return usage("--json and --csv: choose one")
	case o.days < 1 || o.days > 90:
		return usage("--days %d: want 1..90 (GitHub keeps 90 days of runs)", o.days)
	case o.target <= 0:
		return usage("--target must be positive")
	case o.boot < 0:
		return usage("--boot must not be negative")
	case o.budget < 1:
		return usage("--budget must be positive")
	case o.saveJobs != "" && o.jobs != "":
		return usage("--save-jobs writes the history read from GitHub; with --jobs there is none")
	}
	rebuildFor := time.Duration(-1) // rebuild.timeout
	if o.rebuildDuration != "" {
		if rebuildFor, err = time.ParseDuration(o.rebuildDuration); err != nil || rebuildFor < 0 {
			return usage("--rebuild-duration %q: want a duration such as 45m, or 0", o.rebuildDuration)
		}
	}

	cfg, code := planConfig(inv, o)
	if cfg == nil {
		return code
	}
	labels := cfg.GitHub.Labels
	if strings.TrimSpace(o.labels) != "" {
		labels = nil
		for _, l := range strings.Split(o.labels, ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
	}
	slots := cfg.Runners.Max
	if cfg.Backend == config.BackendOrchard {
		slots = config.MaxMacOSVMs
	}
	for _, k := range warms {
		if k > slots {
			return usage("--warm %d: above the %d VMs a Mac runs (runners.max)", k, slots)
		}
	}

	// The history.
	now := o.now().UTC().Truncate(time.Second)
	since := now.Add(-time.Duration(o.days) * 24 * time.Hour)
	var (
		jobs       []plan.Job
		source     string
		from, till time.Time
	)
	if o.jobs != "" {
		jobs, err = plan.ReadJobsFile(o.jobs)
		if err != nil {
			fmt.Fprintf(inv.stderr, "tarty plan: %v\n", err)
			return exitFailure
		}
		source = o.jobs
	} else {
		jobs, source, code = readPlanHistory(ctx, inv, cfg, o, since, now)
		if code != exitOK {
			return code
		}
		from, till = since, now
	}

	w := plan.NewWorkload(jobs, tarty.NewLabelMatcher(labels), cfg.Runners.NamePrefix)
	if len(w.Jobs) == 0 {
		fmt.Fprintf(inv.stderr, "tarty plan: none of the %d jobs read has labels Tarty serves %v (%d other labels, %d skipped, %d not finished); try --labels\n",
			w.Counts.Read, labels, w.Counts.OtherLabels, w.Counts.Skipped, w.Counts.Unfinished)
		return exitFailure
	}

	m := plan.Model{SlotsPerMac: slots, Labels: labels, IdleTimeout: cfg.Runners.IdleTimeout,
		MaxLifetime: cfg.Runners.MaxLifetime, RebuildHour: -1, Location: time.Local}
	if cfg.Rebuild.Enabled && cfg.Backend != config.BackendOrchard && rebuildFor != 0 {
		m.RebuildHour, m.RebuildDuration = cfg.Rebuild.Hour, cfg.Rebuild.Timeout
		if rebuildFor > 0 {
			m.RebuildDuration = rebuildFor
		}
	}
	var bootSource string
	m.Boot, bootSource = planBoot(ctx, cfg, o.boot)

	today := &plan.Fleet{Macs: 1, Warm: min(cfg.Runners.Warm, slots)}
	if cfg.Backend == config.BackendOrchard {
		n := (cfg.Runners.Max + 1) / 2
		today = &plan.Fleet{Macs: n, Warm: min((cfg.Runners.Warm+n-1)/n, slots)}
	}
	report, err := plan.Run(w, m, plan.Fleets(macs, warms), plan.Options{Target: o.target, Today: today,
		Source: source, From: from, To: till, BootSource: bootSource})
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty plan: %v\n", err)
		return exitFailure
	}
	switch {
	case o.json:
		err = plan.WriteJSON(inv.stdout, report)
	case o.csv:
		err = plan.WriteCSV(inv.stdout, report)
	default:
		err = plan.WriteText(inv.stdout, report)
	}
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty plan: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// planConfig loads the config; with --jobs and no config file, the defaults
// serve (labels from --labels, else "tarty").
func planConfig(inv *invocation, o *planFlags) (*config.Config, int) {
	if o.jobs != "" {
		if _, err := os.Stat(inv.configPath); errors.Is(err, fs.ErrNotExist) {
			cfg := config.Default()
			cfg.Rebuild.Enabled = false // nothing says when or how long
			return &cfg, exitOK
		}
	}
	return loadConfig(inv)
}

// readPlanHistory reads the history from GitHub through the cache under
// state_dir, with a progress bar on a terminal.
func readPlanHistory(ctx context.Context, inv *invocation, cfg *config.Config, o *planFlags, since, until time.Time) ([]plan.Job, string, int) {
	ver, _ := buildVersion()
	meter := plan.NewMeter(http.DefaultTransport)
	opts := githubOptions(cfg, zerolog.Nop(), ver)
	opts.Transport = meter
	gh, err := ghapi.New(opts)
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty plan: %v\n", err)
		return nil, "", exitFailure
	}
	cache, err := plan.OpenCache(plan.CachePath(filepath.Join(cfg.StateDir, "plan"), cfg.GitHub.URL, cfg.GitHub.Organization))
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty plan: %v\n", err)
		return nil, "", exitFailure
	}
	if cache.Note != "" {
		fmt.Fprintf(inv.stderr, "warning: %s\n", cache.Note)
	}
	gh.RestoreAnswers(cache.Answers())

	ro := plan.ReadOptions{Since: since, Until: until, Budget: o.budget, Meter: meter, Cache: cache}
	var bar *plan.Bar
	if isTerminal(inv.stderr) {
		bar = plan.NewBar(inv.stderr)
		ro.Progress = bar.Update
	}
	jobs, stats, err := plan.ReadHistory(ctx, gh, ro)
	if bar != nil {
		bar.Done()
	}
	// Keep what was read, even when the reading stopped half-way. The jobs
	// pages are not kept: the completed runs' jobs are, more compactly.
	keep := func(key string) bool { return !strings.Contains(key, "/jobs") }
	if serr := cache.Save(gh.CachedAnswers(keep), since.Add(-30*24*time.Hour)); serr != nil {
		fmt.Fprintf(inv.stderr, "warning: %v\n", serr)
	}
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty plan: %v\n", err)
		return nil, "", exitFailure
	}
	fmt.Fprintf(inv.stderr, "read %s runs of %s repositories (%s from the cache), %s jobs: %s rate-limit units\n",
		plan.Thousands(stats.Runs), plan.Thousands(stats.Repositories), plan.Thousands(stats.RunsCached),
		plan.Thousands(len(jobs)), plan.Thousands(stats.Units))
	if o.saveJobs != "" {
		if err := writeJobsFile(o.saveJobs, jobs); err != nil {
			fmt.Fprintf(inv.stderr, "tarty plan: --save-jobs: %v\n", err)
			return nil, "", exitFailure
		}
	}
	source := "organisation " + cfg.GitHub.Organization
	if r := cfg.RepositoryFullName(); r != "" {
		source = "repository " + r
	} else {
		source += fmt.Sprintf(" (%d repositories the runner group serves)", stats.Repositories)
	}
	return jobs, source, exitOK
}

func writeJobsFile(path string, jobs []plan.Job) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := plan.WriteJobs(f, jobs); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// planBoot is --boot, else the daemon's measured mean, else 25 s, with
// where it came from.
func planBoot(ctx context.Context, cfg *config.Config, flagBoot time.Duration) (time.Duration, string) {
	if flagBoot > 0 {
		return flagBoot, "--boot"
	}
	const fallback = 25 * time.Second
	addr := cfg.Server.AdminListen
	if addr == "" {
		return fallback, "the default"
	}
	mean, n, err := plan.DaemonBoot(ctx, addr)
	switch {
	case err != nil:
		return fallback, "the default: no daemon answered on " + addr
	case n == 0:
		return fallback, "the default: the daemon on " + addr + " has booted no VM yet"
	}
	return mean, fmt.Sprintf("the mean of %d boots measured by the daemon on %s", n, addr)
}

// parseCounts reads "1..4", "1-4", "1,2,4" or "3" into sorted, distinct
// numbers within lo..hi.
func parseCounts(s string, lo, hi int) ([]int, error) {
	var out []int
	add := func(n int) error {
		if n < lo || n > hi {
			return fmt.Errorf("%d is outside %d..%d", n, lo, hi)
		}
		for _, x := range out {
			if x == n {
				return nil
			}
		}
		out = append(out, n)
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, b, isRange := strings.Cut(part, "..")
		if !isRange {
			a, b, isRange = strings.Cut(part, "-")
		}
		first, err := strconv.Atoi(strings.TrimSpace(a))
		if err != nil {
			return nil, fmt.Errorf("%q: want N, N..M or a list", part)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(strings.TrimSpace(b)); err != nil || last < first {
				return nil, fmt.Errorf("%q: want N..M with N <= M", part)
			}
		}
		for n := first; n <= last; n++ {
			if err := add(n); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("empty")
	}
	slices.Sort(out)
	return out, nil
}
