// Package fakegithub is an in-process imitation of the parts of GitHub that
// Tarty uses, for tests of ghapi, the scheduler, end-to-end runs and the demo.
// New starts an httptest server on loopback.
//
// The REST API answers under both "/" (github.com style) and "/api/v3/"
// (GitHub Enterprise Server style, with X-GitHub-Enterprise-Version when
// Config.EnterpriseVersion is set) with GitHub's JSON shapes, status codes
// and headers: organisation and repository JIT runner registration (201; 409
// for a taken name and 409 "GitHub Actions is disabled"; 403 for
// repository runners disabled by policy and for a group of hosted runners;
// 404 for an unknown group, and on GHES before 3.10), runner groups with
// their visibility and selected repositories, runner lists with Link paging,
// runner deletion (204, 404, 422 while busy), workflow runs filtered by
// status and created date (newest first), re-runs, the jobs of a run (latest
// attempt or all), organisation repositories (private, public, internal),
// /rate_limit and the GitHub App installation-token exchange, which verifies
// the RS256 JWT against the App's public key. Every request must carry the
// configured token (or one the exchange issued), else 401. Every answer
// carries X-RateLimit-* headers and an X-GitHub-Request-Id; GET answers carry
// a per-token ETag, and a matching If-None-Match gets an empty 304 that, as
// on GitHub, costs no rate-limit unit.
//
// State follows GitHub's rules: a run's status derives from its latest
// attempt's jobs (completed, in_progress, waiting while one job waits for an
// approval even if others are queued, queued, pending, requested); Rerun
// starts a new attempt that keeps the run's ID and created_at, with new job
// IDs, run_attempt+1 and a new run_started_at.
//
// With Config.WebhookURL the server sends workflow_job deliveries, signed
// with Config.WebhookSecret (X-Hub-Signature-256 over the raw body), with
// X-GitHub-Event and a unique X-GitHub-Delivery, in the order things happen:
// queued (and waiting) when a job is added (QueueJob, AddRun, Rerun),
// in_progress when a runner takes it, completed when it ends. Deliveries are
// recorded (Deliveries), can be dropped on purpose (DropWebhooks: a missed
// webhook) and redelivered with the same GUID (Redeliver); WaitWebhooks waits
// for the queue to drain.
//
// For Tarty's upkeep (upkeep.go): the releases of actions/runner with their
// published_at (SetRunnerReleases), the runner application downloads with
// the offered version in the osx-arm64 file name (SetOfferedRunnerVersion),
// the organisation's and repositories' webhooks (the server's own is hook
// WebhookHookID with WebhookURL; AddHook, SetWebhookRepository), its
// deliveries newest first with GitHub's cursor paging, and redelivery
// attempts (202), which reach the webhook with the original's GUID and
// body, signed alike, and then show in the list with redelivery true
// (RedeliveryRequests). DenyHooks makes every hook endpoint answer 403 or 404.
//
// The encoded JIT configs it hands out have the real shape (base64 of a JSON
// object mapping .runner, .credentials and .credentials_rsaparams to base64
// file contents); .runner names the runner, its ID and the server's runner
// protocol (RunnerProtocolPath), through which a fake runner (package
// fakerunner) connects with its config (single-use; a deleted registration
// is refused), is handed the oldest queued job whose labels it carries in a
// repository its group serves, and reports completion, which removes the
// ephemeral registration.
//
// Tests arrange state with AddRepo, AddPublicRepo, AddRun, QueueJob, Rerun,
// SetJobStatus, AddRunnerGroupWith, SetRunnerGroupAccess, SetActionsEnabled,
// SetRepositoryRunnersDisabled, AddRunner and SetRunnerBusy; script failures
// with Inject (5xx, 404, 403, 429 and 403 primary and secondary rate limits,
// with or without the documentation URL); and observe through Calls,
// RateRemaining, Runners, Jobs, JITRequests and Deliveries. All methods are
// safe for concurrent use.
package fakegithub
