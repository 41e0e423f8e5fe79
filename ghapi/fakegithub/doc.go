// Package fakegithub is an in-process imitation of the parts of GitHub's REST API
// that Tarty uses, for tests of ghapi, the scheduler and end-to-end runs. New starts
// an httptest server on loopback that answers under both "/" (github.com style)
// and "/api/v3/" (GitHub Enterprise Server style) with GitHub's JSON shapes,
// status codes and headers: organisation and repository JIT runner registration
// (201, 409 for a taken name, 404 for an unknown runner group, 422 for a missing
// key), runner groups, runner lists with RFC 5988 Link paging, runner deletion
// (204, 404, 422 while busy), workflow runs filtered by status and created date,
// the jobs of a run, organisation repositories, /rate_limit and the GitHub App
// installation-token exchange, which verifies the RS256 JWT against the App's
// public key. Every request must carry the configured token (or a token the
// exchange issued), else it gets 401 "Bad credentials". Every answer carries
// X-RateLimit-* headers and an X-GitHub-Request-Id; GET answers carry an ETag
// and a matching If-None-Match gets an empty 304 that, as on GitHub, costs no
// rate-limit unit. Tests arrange state with AddRepo, AddRun, SetJobStatus,
// AddRunner and SetRunnerBusy, script failures with Inject (5xx, 429 with
// Retry-After, 403 primary and secondary rate limits, 403 missing permission),
// and observe the client through Calls, RateRemaining, Runners and JITRequests.
// All methods are safe for concurrent use.
package fakegithub
