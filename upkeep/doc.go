// Package upkeep keeps a Tarty host healthy over weeks, beside the
// scheduler: two failures that hit self-hosted fleets in practice heal
// themselves.
//
// The runner version guard (Guard) knows the actions runner baked into the
// runner image (the scheduler reports it from the first runner VM and from
// each rebuild; it is persisted so a restart knows it at once) and the
// newest one: on github.com the releases of actions/runner, whose
// published_at dates the age, on GitHub Enterprise Server the runner the
// server itself offers (the runner downloads endpoint), whose age counts
// from when Tarty first saw the image behind it. It reports the gap in
// /status and metrics, and when the image's runner is older than
// rebuild.runner_max_age it asks for a rebuild at the next quiet moment (no
// queued jobs), at most once a day. GitHub stops sending jobs to a runner 30
// days behind, and an older runner updates itself at the start of every job.
//
// The redelivery (Redeliverer) asks GitHub to redeliver the workflow_job
// deliveries that failed while Tarty could not take them: GitHub never
// retries a failed delivery by itself. At start, and after a gap (the
// poller found a job no webhook announced), it lists the webhook's
// deliveries since the last one it examined and asks, oldest first, once per
// delivery GUID, for each failed one; the attempts reach the webhook
// listener with the original GUID and signature. Without the webhooks
// permission it logs what that costs once, and everything else works.
//
// Both remember what they need across restarts in one small file in
// state_dir (Store).
package upkeep
