package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes (DESIGN.md section 5).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// command is one subcommand. Its flags are parsed from the words after its
// name; --config is accepted there too, as operators type it both ways.
type command struct {
	name    string
	args    string // synopsis of its arguments, for usage
	summary string
	run     func(ctx context.Context, inv *invocation) int
	flags   func(fs *flag.FlagSet, inv *invocation) // optional extra flags
}

// invocation carries what a command needs: its output streams and the
// config path chosen by --config, $TARTY_CONFIG or the default.
type invocation struct {
	stdout, stderr io.Writer
	configPath     string
	args           []string // positional arguments left after flags
	json           bool     // status --json
	dryRun         bool     // reconcile --dry-run
}

func commands() map[string]*command {
	list := []*command{
		{name: "run", summary: "the daemon: serve webhooks, run runner VMs, poll, rebuild nightly", run: cmdRun},
		{name: "status", summary: "ask the daemon: slots, VMs, queued jobs and why they wait, the nightly rebuild", run: cmdStatus,
			flags: func(fs *flag.FlagSet, inv *invocation) { fs.BoolVar(&inv.json, "json", false, "print JSON") }},
		{name: "reconcile", summary: "ask the daemon to sync with GitHub now; with no daemon, a one-shot sync", run: cmdReconcile,
			flags: func(fs *flag.FlagSet, inv *invocation) {
				fs.BoolVar(&inv.dryRun, "dry-run", false, "with no daemon: show what the one-shot sync would do")
			}},
		{name: "rebuild", summary: "rebuild the runner image now (inside the budget); with no daemon, directly", run: cmdRebuild},
		{name: "rollback", summary: "restore <images.runner>-previous as the runner image", run: cmdRollback},
		{name: "validate", summary: "load and check the config; print every problem; no side effects", run: cmdValidate},
		planCommand(),
		demoCommand(),
		{name: "doctor", summary: "check the host, images, GitHub and SSH into a throwaway VM; PASS/WARN/FAIL with fixes", run: cmdDoctor},
		{name: "forget-host-key", args: "IMAGE", summary: "drop the trusted SSH host key of IMAGE (after re-pulling it by hand)", run: cmdForgetHostKey},
		{name: "version", summary: "print version, commit and Go version", run: cmdVersion},
		{name: "help", args: "[COMMAND]", summary: "show this help, or a command's", run: nil},
	}
	m := map[string]*command{}
	for _, c := range list {
		m[c.name] = c
	}
	return m
}

const defaultConfigPath = "./tarty.yaml"

// run is the whole CLI: it parses args, runs one command and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	global := flag.NewFlagSet("tarty", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	var configPath string
	global.StringVar(&configPath, "config", "", "config file")
	help := global.Bool("help", false, "")
	global.BoolVar(help, "h", false, "")
	if err := global.Parse(args); err != nil {
		fmt.Fprintf(stderr, "tarty: %v\n", err)
		usage(stderr, cmds)
		return exitUsage
	}
	rest := global.Args()
	if *help || len(rest) == 0 {
		w, code := stdout, exitOK
		if !*help {
			w, code = stderr, exitUsage
		}
		usage(w, cmds)
		return code
	}
	name := rest[0]
	if name == "help" {
		return cmdHelp(stdout, stderr, cmds, rest[1:])
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "tarty: unknown command %q\n", name)
		usage(stderr, cmds)
		return exitUsage
	}

	inv := &invocation{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("tarty "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&configPath, "config", configPath, "config file")
	if cmd.flags != nil {
		cmd.flags(fs, inv)
	}
	if err := fs.Parse(rest[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(stdout, cmd, fs)
			return exitOK
		}
		fmt.Fprintf(stderr, "tarty %s: %v\n", name, err)
		commandUsage(stderr, cmd, fs)
		return exitUsage
	}
	inv.args = fs.Args()
	if len(inv.args) > 0 && cmd.args == "" {
		fmt.Fprintf(stderr, "tarty %s: unexpected argument %q\n", name, inv.args[0])
		commandUsage(stderr, cmd, fs)
		return exitUsage
	}
	inv.configPath = chooseConfigPath(configPath)
	return cmd.run(ctx, inv)
}

func chooseConfigPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv("TARTY_CONFIG"); env != "" {
		return env
	}
	return defaultConfigPath
}

func usage(w io.Writer, cmds map[string]*command) {
	fmt.Fprint(w, `tarty runs GitHub Actions jobs in ephemeral macOS VMs made by tart.

Usage: tarty [--config PATH] COMMAND [flags]

Commands:
`)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := cmds[n]
		fmt.Fprintf(w, "  %-22s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprint(w, `
The config is --config PATH (before or after the command), else $TARTY_CONFIG,
else ./tarty.yaml. Exit status: 0 success, 1 failure, 2 bad usage or invalid config.
`)
}

func commandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: tarty %s [--config PATH]", c.name)
	if c.args != "" {
		fmt.Fprintf(w, " %s", c.args)
	}
	fmt.Fprintf(w, "\n  %s\n", c.summary)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func cmdHelp(stdout, stderr io.Writer, cmds map[string]*command, args []string) int {
	if len(args) == 0 {
		usage(stdout, cmds)
		return exitOK
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tarty help: unknown command %q\n", args[0])
		return exitUsage
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	var ignored string
	fs.StringVar(&ignored, "config", "", "config file (default $TARTY_CONFIG, else ./tarty.yaml)")
	if c.flags != nil {
		c.flags(fs, &invocation{})
	}
	commandUsage(stdout, c, fs)
	return exitOK
}
