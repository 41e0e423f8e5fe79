package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/tartyci/tarty/config"
)

// loadConfig loads the invocation's config and prints warnings and problems.
// It returns the exit code to use when the config cannot be used.
func loadConfig(inv *invocation) (*config.Config, int) {
	cfg, warnings, err := config.Load(inv.configPath, config.HostEnv())
	for _, w := range warnings {
		fmt.Fprintf(inv.stderr, "warning: %s\n", w)
	}
	var cerr *config.Error
	switch {
	case err == nil:
		return cfg, exitOK
	case errors.As(err, &cerr):
		fmt.Fprintln(inv.stderr, cerr)
		return nil, exitUsage
	case errors.Is(err, config.ErrNotFound):
		fmt.Fprintf(inv.stderr, "tarty: %v\n  pass --config PATH or set TARTY_CONFIG; tarty.yaml.example lists every key\n", err)
		return nil, exitUsage
	default:
		fmt.Fprintf(inv.stderr, "tarty: %v\n", err)
		return nil, exitFailure
	}
}

func cmdValidate(_ context.Context, inv *invocation) int {
	cfg, code := loadConfig(inv)
	if cfg == nil {
		return code
	}
	scope := "organisation " + cfg.GitHub.Organization
	if r := cfg.RepositoryFullName(); r != "" {
		scope = "repository " + r
	}
	fmt.Fprintf(inv.stdout, "config OK: %s; %s, up to %d runners named %s-*, labels %v\n",
		inv.configPath, scope, cfg.Runners.Max, cfg.Runners.NamePrefix, cfg.GitHub.Labels)
	return exitOK
}
