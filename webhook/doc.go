// Package webhook is Tarty's GitHub webhook listener: an echo server with one
// route, POST {server.webhook_path}, that turns signed workflow_job deliveries
// into tarty.JobEvent values on the scheduler's channel and answers fast.
//
// Per request, in this order: the body is read with a 5 MiB cap (413 beyond),
// its memory following the bytes that arrive, never the declared length, and
// at most Options.MaxConcurrentReads bodies at once (503 when no read slot
// frees in time); X-Hub-Signature-256 is checked over the raw bytes with a
// constant-time compare (401 when missing or wrong; the legacy SHA-1 header
// is not enough); the X-GitHub-Event header must be present (400); a
// form-encoded delivery (the default of hooks made through the REST API) has
// its JSON taken from the payload field, after the signature of the raw form
// body held; only then is JSON parsed (400 when malformed). ping answers 200,
// other signed events 202. A workflow_job is decoded with go-github v62 types,
// keyed off the top-level action, and:
//
//   - a redelivery (same X-GitHub-Delivery, remembered for a bounded number of
//     IDs and time) answers 202 with no second effect; an ID is only remembered
//     once its delivery was accepted, so a 503 can be redelivered;
//   - an action GitHub does not document, another organisation or repository,
//     or runs-on labels the tarty.LabelMatcher rejects answer 202 and are
//     counted, not forwarded (in_progress/completed events with no labels are
//     forwarded: they can only remove demand);
//   - a queued event of a job created more than tarty.StaleAfter ago (a signed
//     body replayed under a new delivery ID) answers 202 as ignored_stale;
//   - a queued or waiting event of a repository the runner group cannot serve
//     (Options.Serves, a cached lookup) answers 202 as ignored_runner_group;
//   - everything else is sent on Options.Events; if the channel stays full for
//     EnqueueTimeout the answer is 503 and the poller will find the job.
//
// Every outcome is counted in tarty_webhook_deliveries_total{event,result}.
// Requests refused before their signature held are anonymous: they are logged
// at most once a minute with a count, so a flood cannot fill the disk. The
// logged client address believes CF-Connecting-IP and X-Forwarded-For only
// from a loopback peer (cloudflared). A shutdown closes connections that never
// sent a request (ReadHeaderTimeout is shorter than ShutdownTimeout) and only
// reports an error when it cut off an authentic delivery.
//
// There is no test double here: the scheduler consumes a plain channel, so its
// tests feed JobEvent values directly, and this package's tests drive a real
// Server over loopback HTTP (Run on 127.0.0.1:0) or through Handler() with
// requests signed by the real HMAC, using GitHub's example payloads copied into
// testdata/github.
package webhook
