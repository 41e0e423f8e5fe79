package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tartyci/tarty/config"
	"github.com/tartyci/tarty/demo"
)

// The demo re-executes this binary as its fake tart and as the guest's fake
// runner (run.sh), through wrappers it writes in its temporary directory that
// set one of these variables; the dispatch happens here, before main parses
// anything, so no program needs building at demo time. Neither variable is
// ever set for Tarty itself.
func init() {
	switch {
	case os.Getenv(demo.EnvFakeTart) == "1":
		os.Exit(demo.FakeTart(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	case os.Getenv(demo.EnvFakeRunner) == "1":
		os.Exit(demo.FakeRunner(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
}

// demoCommand is the `tarty demo` entry of the command table.
func demoCommand() *command {
	return &command{name: "demo", run: cmdDemo, flags: demoFlags,
		summary: "run the daemon against a simulated tart, GitHub and guest, and narrate a few jobs (no config, no network)"}
}

// demoVerbose marks an invocation's stderr when --verbose was given.
type demoVerbose struct{ io.Writer }

func demoFlags(fs *flag.FlagSet, inv *invocation) {
	fs.BoolFunc("verbose", "also print the daemon's own log (what tarty run logs) on stderr", func(v string) error {
		if v == "true" {
			if _, ok := inv.stderr.(demoVerbose); !ok {
				inv.stderr = demoVerbose{inv.stderr}
			}
		}
		return nil
	})
}

func cmdDemo(ctx context.Context, inv *invocation) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty demo: cannot find this program's path, which the demo re-executes: %v\n", err)
		return exitFailure
	}
	_, verbose := inv.stderr.(demoVerbose)
	ver, _ := buildVersion()
	err = demo.Run(ctx, demo.Options{
		Stdout: inv.stdout, Stderr: inv.stderr, Executable: exe, Verbose: verbose,
		Daemon: func(ctx context.Context, cfg *config.Config, logw io.Writer) error {
			d, err := newDaemon(cfg, newLogger(cfg.Log, logw), ver, modeRun)
			if err != nil {
				return err
			}
			return d.run(ctx)
		},
	})
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty demo: %v\n", err)
		return exitFailure
	}
	return exitOK
}
