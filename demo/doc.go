// Package demo is `tarty demo`: the real daemon (scheduler, webhook server,
// admin listener, wired as `tarty run` wires them) against a simulated tart,
// GitHub and guest on this machine, with compressed time and nothing but
// loopback. It queues jobs on the fake GitHub, which sends signed webhooks,
// and narrates what happens from what it can observe: the fake GitHub's
// deliveries, jobs and registrations, the fake tart's invocation log, the
// commands the guest runs, and the daemon's /status and /metrics. It checks
// that each thing it shows happened within a bound, and fails otherwise.
//
// The simulator reuses the test doubles: tartvm/faketart is the tart binary
// and ghapi/fakegithub/fakerunner the guest's run.sh, both being the tarty
// binary itself re-executed with EnvFakeTart or EnvFakeRunner set (the
// dispatch is in cmd/tarty/demo.go), so nothing is built at demo time;
// ghapi/fakegithub runs in process. The guest is Guest, an SSH server on
// 127.0.0.1 that runs commands with /bin/sh in a home directory of the demo:
// every fake VM's address leads to it, so every guest is this host.
//
// Everything lives in one temporary directory, removed at the end. The demo
// needs a Unix system (Linux or macOS); elsewhere Run says so.
package demo

import (
	"context"
	"io"

	"github.com/tartyci/tarty/config"
)

// Environment variables under which the tarty binary, re-executed by the
// demo, acts as one of the simulator's programs instead of Tarty (see
// cmd/tarty/demo.go). The demo sets them only in the wrappers it writes in
// its own directory.
const (
	EnvFakeTart   = "TARTY_DEMO_FAKETART"   // the fake tart (package faketart)
	EnvFakeRunner = "TARTY_DEMO_FAKERUNNER" // the guest's run.sh (package fakerunner)
)

// Options configure Run.
type Options struct {
	Stdout io.Writer // the narration
	Stderr io.Writer // problems, and the daemon's log with Verbose
	// Executable is the tarty binary, which the demo re-executes as the
	// fake tart and as the guest's fake runner (see EnvFakeTart,
	// EnvFakeRunner): no build at demo time.
	Executable string
	// Daemon runs the real daemon built from cfg, logging to log, until ctx
	// ends; it returns once it stopped (cmd/tarty: what `tarty run` does).
	Daemon func(ctx context.Context, cfg *config.Config, log io.Writer) error
	// Verbose copies the daemon's log to Stderr.
	Verbose bool
}
