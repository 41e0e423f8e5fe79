// Package plan answers "how many Macs do we need?" for `tarty plan`: it reads
// an organisation's recent job history (from GitHub, paged, within a bound
// on the rate-limit units it spends and cached under state_dir, or from a
// JSON-lines file), replays it through the real scheduler in simulated time
// (scheduler.Replay) for each number of Macs and each runners.warm setting,
// and reports the waits each fleet would give, the smallest fleet that keeps
// the 95th percentile wait under a target, a chart, and the waits observed
// on Tarty's own runners beside the prediction for today's setup.
//
// The replay is deterministic: the same history and settings give the same
// report.
package plan
