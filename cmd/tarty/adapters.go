package main

import (
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty/config"
	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/tartvm"
)

// The adapters, built from the config the same way for `tarty run`, the
// one-shot commands and `tarty doctor`.

// newGitHub builds the GitHub client: a GitHub App when github.app is set,
// else the token. onRateLimit may be nil.
func newGitHub(cfg *config.Config, log zerolog.Logger, version string, onRateLimit func(int)) (*ghapi.Client, error) {
	o := ghapi.Options{
		BaseURL: cfg.GitHub.URL, Organization: cfg.GitHub.Organization, Repository: cfg.GitHub.Repository,
		RunnerGroup: cfg.GitHub.RunnerGroup, Labels: cfg.GitHub.Labels, UserAgent: "tarty/" + version, Logger: log,
		OnRateLimit: onRateLimit,
	}
	if cfg.GitHub.App.Enabled() {
		o.App = &ghapi.App{ID: cfg.GitHub.App.ID, InstallationID: cfg.GitHub.App.InstallationID,
			PrivateKey: []byte(cfg.GitHub.App.PrivateKey.Reveal())}
	} else {
		o.Token = cfg.GitHub.Token.Reveal()
	}
	return ghapi.New(o)
}

// newTart builds the tart client, its `tart run` logs in logDir, and the
// local backend over it.
func newTart(cfg *config.Config, logDir string, log zerolog.Logger) (*tartvm.Client, *tartvm.Backend) {
	c := tartvm.New(tartvm.Options{Path: cfg.Tart.Path, Home: cfg.Tart.Home, LogDir: logDir, Logger: log})
	return c, tartvm.NewBackend(c, tartvm.BackendOptions{Prefix: cfg.Runners.NamePrefix,
		CPU: cfg.Runners.CPU, MemoryMB: cfg.Runners.MemoryMB, Softnet: cfg.Runners.Softnet, Logger: log})
}

// newVMBackend builds the configured VM backend alone, for the one-shot
// commands that boot nothing (the `tart run` log directory is not created).
func newVMBackend(cfg *config.Config, log zerolog.Logger, version string) (scheduler.Backend, error) {
	if cfg.Backend == config.BackendOrchard {
		return newOrchardBackend(cfg, log, version)
	}
	_, b := newTart(cfg, filepath.Join(cfg.StateDir, "tart-logs"), log)
	return b, nil
}
