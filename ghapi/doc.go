// Package ghapi is Tarty's GitHub client, a thin layer over go-github v62. It
// registers just-in-time runners (organisation or repository level, explicit
// labels, the runner group resolved by name), lists and removes runners, and
// finds queued jobs for the reconciliation poller by walking the workflow runs
// of every repository in scope. It implements scheduler.Runners and
// scheduler.Jobs. Authentication is a personal access token or a GitHub App
// installation (ghinstallation); GitHub Enterprise Server is reached through
// its /api/v3/ base URL.
//
// Every GET goes through a bounded ETag cache so unchanged pages come back as
// free 304s. Errors name the operation and GitHub's request ID; the ones a
// caller branches on are typed: *RateLimitError (RetryAfter) for primary and
// secondary limits and 429s, *APIError with Temporary (5xx), NameTaken (409 on
// JIT registration) and Busy (422 on removal). Secrets (token, App key, JIT
// configs) never appear in errors or logs.
//
// Tests run the client over loopback HTTP against the fake GitHub API in
// package fakegithub, which other packages' tests reuse.
package ghapi
