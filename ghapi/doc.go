// Package ghapi is Tarty's GitHub client, a thin layer over go-github v62. It
// registers just-in-time runners (organisation or repository level, explicit
// labels, the runner group resolved by name), lists and removes runners, and
// finds queued jobs for the reconciliation poller. It implements
// scheduler.Runners and scheduler.Jobs. Authentication is a personal access
// token or a GitHub App installation (ghinstallation); GitHub Enterprise
// Server is reached through its /api/v3/ base URL.
//
// The poller (QueuedJobs) finds every job whose own status is queued,
// wherever its run is: runs queued, in progress, waiting, requested or
// pending, and re-runs of runs created up to 30 days ago (a re-run keeps the
// run's created_at). It answers per repository (tarty.PollResult: Complete,
// Failed) and bounds its cost: live repositories are read in full each
// poll, the others are probed in turns (one request for the newest run, a
// free 304 while nothing changed) and re-read for re-runs every 30 minutes,
// a few a poll (see pollTuning; the measured cost is in BENCHMARKS.md). Every
// GET goes through a bounded ETag cache, and the poll's URLs are stable, so
// unchanged pages come back as free 304s.
//
// The runner group's repository access (visibility all, selected or
// private, allows_public_repositories, and the selected repositories) and
// each repository's visibility are read with the poll and cached for 10
// minutes: repositories the group cannot serve are not polled, and Serves
// answers from the cache, without I/O, for the webhook.
//
// Errors name the operation and GitHub's request ID. The ones a caller
// branches on are typed: *RateLimitError (RetryAfter; Secondary) for primary
// and secondary limits, recognised on 403 and 429 whatever the body's
// documentation URL (a secondary limit holds back every call until its wait
// is over); *APIError with Temporary (5xx), NameTaken (409 on JIT
// registration), Busy (422 on removal) and, for what only an operator can
// fix, Permanent with a one-line Fix (also HostFix, for tarty.HostFix):
// Actions disabled (409), repository runners disabled by policy (403), a
// runner group missing or not usable (404/403), a GitHub Enterprise Server
// older than 3.10 (404 with X-GitHub-Enterprise-Version), bad credentials or
// missing permissions. Writes (JIT registrations, removals) go one at a time,
// at least a second apart. Secrets (token, App key, JIT configs) never appear
// in errors or logs.
//
// Tests run the client over loopback HTTP against the fake GitHub in package
// fakegithub, which other packages' tests reuse.
package ghapi
