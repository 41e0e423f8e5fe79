package main

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/tartyci/tarty/sshexec"
)

// cmdForgetHostKey is `tarty forget-host-key IMAGE`: after an operator
// re-pulled or rebuilt an image by hand, its clones present a new SSH host
// key, which Tarty refuses as a possible impersonation. This drops the key
// trusted for IMAGE (both SSH clients' stores under state_dir), so the next
// VM cloned from it is trusted on first use. A running daemon shares the
// store safely: changes are made under its cross-process lock.
func cmdForgetHostKey(_ context.Context, inv *invocation) int {
	args, configPath, err := configAfterArgs(inv.args)
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty forget-host-key: %v\n", err)
		return exitUsage
	}
	if configPath != "" {
		inv.configPath = configPath
	}
	if len(args) != 1 {
		fmt.Fprintln(inv.stderr, "tarty forget-host-key: want one argument, the image (for example the value of images.runner)")
		return exitUsage
	}
	image := args[0]
	if err := checkImageArg(image); err != nil {
		fmt.Fprintf(inv.stderr, "tarty forget-host-key: %v\n", err)
		return exitUsage
	}
	cfg, code := loadConfig(inv)
	if cfg == nil {
		return code
	}
	forgotten, err := sshexec.ForgetImageHostKey(statePathsIn(cfg.StateDir).knownHosts, image)
	if err != nil {
		fmt.Fprintf(inv.stderr, "tarty forget-host-key: %v\n", err)
		return exitFailure
	}
	if image != cfg.Images.Runner && image != cfg.Images.Base {
		fmt.Fprintf(inv.stderr, "note: %q is neither images.runner (%q) nor images.base (%q)\n", image, cfg.Images.Runner, cfg.Images.Base)
	}
	if len(forgotten) == 0 {
		fmt.Fprintf(inv.stdout, "no SSH host key was trusted for image %q (in %s): nothing to forget\n", image, cfg.StateDir)
		return exitOK
	}
	fmt.Fprintf(inv.stdout, "forgot the SSH host key trusted for image %q (%s) in %s; the next VM cloned from it is trusted on first use\n",
		image, strings.Join(forgotten, ", "), cfg.StateDir)
	return exitOK
}

// checkImageArg refuses what cannot be a tart image name, by the rules
// config applies to images.*: empty, a leading # or -, white space or
// control characters.
func checkImageArg(image string) error {
	switch {
	case image == "":
		return fmt.Errorf("empty image name")
	case strings.HasPrefix(image, "#") || strings.HasPrefix(image, "-"):
		return fmt.Errorf("invalid image name %q: must not start with # or -", image)
	case strings.IndexFunc(image, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("invalid image name %q: must not contain white space or control characters", image)
	}
	return nil
}

// configAfterArgs takes --config PATH (or --config=PATH) from among the
// positional arguments, where the flag parser stops looking: operators type
// `tarty forget-host-key IMAGE --config PATH` too. After "--" every word is
// positional.
func configAfterArgs(args []string) (positional []string, configPath string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(positional, args[i+1:]...), configPath, nil
		case a == "--config" || a == "-config":
			if i+1 >= len(args) {
				return nil, "", fmt.Errorf("flag needs an argument: %s", a)
			}
			configPath = args[i+1]
			i++
		case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config="):
			_, configPath, _ = strings.Cut(a, "=")
		default:
			positional = append(positional, a)
		}
	}
	return positional, configPath, nil
}
