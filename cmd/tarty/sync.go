package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/config"
)

// oneShotSync is `tarty reconcile` with no daemon: it deletes the VMs with
// the prefix (keeping any whose runner is running a job: the next `tarty
// run` adopts it), removes the offline runners with the prefix, and prints
// the queued jobs Tarty would serve. --dry-run only says what it would do.
func oneShotSync(ctx context.Context, inv *invocation, cfg *config.Config) int {
	log := newLogger(cfg.Log, inv.stderr)
	ver, _ := buildVersion()
	backend, err := newVMBackend(cfg, log, ver)
	if err != nil {
		log.Error().Err(err).Msg("tarty cannot start")
		return exitFailure
	}
	gh, err := newGitHub(cfg, log, ver, nil)
	if err != nil {
		log.Error().Err(err).Msg("tarty cannot start")
		return exitFailure
	}
	out, failed := inv.stdout, false
	act := func(what string, do func() error) {
		if inv.dryRun {
			fmt.Fprintf(out, "would %s\n", what)
			return
		}
		if err := do(); err != nil {
			fmt.Fprintf(inv.stderr, "could not %s: %v\n", what, err)
			failed = true
			return
		}
		fmt.Fprintf(out, "did %s\n", what)
	}

	prefix := cfg.Runners.NamePrefix + "-"
	vms, err := backend.VMs(ctx, prefix)
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty reconcile: listing VMs: %v\n", err)
		return exitFailure
	}
	runners, runnersErr := gh.ListRunners(ctx, prefix)
	if runnersErr != nil {
		fmt.Fprintf(inv.stderr, "tarty reconcile: listing runners: %v (running VMs are kept)\n", runnersErr)
		failed = true
	}
	busy := map[string]bool{}
	for _, r := range runners {
		busy[r.Name] = r.Busy
	}
	kept := map[string]bool{}
	for _, vm := range vms {
		if vm.Running && (runnersErr != nil || busy[vm.Name]) {
			kept[vm.Name] = true
			fmt.Fprintf(out, "keep VM %s: its runner may be running a job\n", vm.Name)
			continue
		}
		name := vm.Name
		act("delete VM "+name, func() error {
			if err := backend.Stop(ctx, name); err != nil {
				return err
			}
			return backend.Delete(ctx, name)
		})
	}
	for _, r := range runners {
		if r.Online || kept[r.Name] {
			continue
		}
		r := r
		act(fmt.Sprintf("remove offline runner %s (%d)", r.Name, r.ID), func() error { return gh.RemoveRunner(ctx, r.ID) })
	}

	res, err := gh.QueuedJobs(ctx)
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty reconcile: finding queued jobs: %v\n", err)
		return exitFailure
	}
	repos := make([]string, 0, len(res.Failed))
	for repo := range res.Failed {
		repos = append(repos, repo)
	}
	sort.Strings(repos)
	for _, repo := range repos {
		fmt.Fprintf(inv.stderr, "could not read %s: %v\n", repo, res.Failed[repo])
		failed = true
	}
	match := tarty.NewLabelMatcher(cfg.GitHub.Labels)
	var jobs []tarty.JobEvent
	for _, j := range res.Jobs {
		if match.Match(j.Labels) && j.Status != "waiting" {
			jobs = append(jobs, j)
		}
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].CreatedAt.Before(jobs[b].CreatedAt) })
	fmt.Fprintf(out, "\n%d queued job(s) Tarty would serve (%d repositories read):\n", len(jobs), len(res.Complete))
	if len(jobs) > 0 {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "JOB\tRUN\tREPOSITORY\tLABELS\tCREATED")
		for _, j := range jobs {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\n", j.JobID, j.RunID, j.Repository, strings.Join(j.Labels, ","),
				j.CreatedAt.Local().Format("2006-01-02 15:04"))
		}
		tw.Flush()
	}
	if failed {
		return exitFailure
	}
	return exitOK
}
