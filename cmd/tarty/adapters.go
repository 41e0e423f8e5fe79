package main

import (
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty/config"
	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/sshexec"
	"github.com/tartyci/tarty/tartvm"
)

// The adapters, built from the config the same way for `tarty run`, the
// one-shot commands and `tarty doctor`.

// newGitHub builds the GitHub client: a GitHub App when github.app is set,
// else the token. onRateLimit may be nil.
func newGitHub(cfg *config.Config, log zerolog.Logger, version string, onRateLimit func(int)) (*ghapi.Client, error) {
	o := githubOptions(cfg, log, version)
	o.OnRateLimit = onRateLimit
	return ghapi.New(o)
}

// githubOptions are the GitHub client's options from the github section,
// for a caller that adds its own (`tarty plan`'s metering transport).
func githubOptions(cfg *config.Config, log zerolog.Logger, version string) ghapi.Options {
	o := ghapi.Options{
		BaseURL: cfg.GitHub.URL, Organization: cfg.GitHub.Organization, Repository: cfg.GitHub.Repository,
		RunnerGroup: cfg.GitHub.RunnerGroup, Labels: cfg.GitHub.Labels, UserAgent: "tarty/" + version, Logger: log,
	}
	if cfg.GitHub.App.Enabled() {
		o.App = &ghapi.App{ID: cfg.GitHub.App.ID, InstallationID: cfg.GitHub.App.InstallationID,
			PrivateKey: []byte(cfg.GitHub.App.PrivateKey.Reveal())}
	} else {
		o.Token = cfg.GitHub.Token.Reveal()
	}
	return o
}

// newTart builds the tart client, its `tart run` logs in logDir, and the
// local backend over it.
func newTart(cfg *config.Config, logDir string, log zerolog.Logger) (*tartvm.Client, *tartvm.Backend) {
	c := tartvm.New(tartvm.Options{Path: cfg.Tart.Path, Home: cfg.Tart.Home, LogDir: logDir, Logger: log})
	return c, tartvm.NewBackend(c, tartvm.BackendOptions{Prefix: cfg.Runners.NamePrefix,
		CPU: cfg.Runners.CPU, MemoryMB: cfg.Runners.MemoryMB, Softnet: cfg.Runners.Softnet, Logger: log})
}

// newGuest builds the SSH client for the guests, trusting host keys in
// knownHosts; dial reaches a guest (nil: TCP, the Orchard backend's Dial
// otherwise).
func newGuest(cfg *config.Config, knownHosts string, dial sshexec.DialFunc, log zerolog.Logger) (*sshexec.Client, error) {
	return sshexec.New(sshexec.Options{
		User: cfg.SSH.User, Port: cfg.SSH.Port, KeyFile: cfg.SSH.KeyFile, Password: cfg.SSH.Password.Reveal(),
		Client: cfg.SSH.Client, ConnectTimeout: cfg.SSH.ConnectTimeout, KnownHostsFile: knownHosts, Logger: log,
		Dial: dial,
	})
}

// statePathsIn names Tarty's files under state_dir dir without creating
// anything (prepareState creates them).
func statePathsIn(dir string) statePaths {
	return statePaths{dir: dir, knownHosts: filepath.Join(dir, "known_hosts"), tartLogs: filepath.Join(dir, "tart-logs")}
}

// newVMBackend builds the configured VM backend alone, for the one-shot
// commands that boot nothing (the `tart run` log directory is not created).
func newVMBackend(cfg *config.Config, log zerolog.Logger, version string) (scheduler.Backend, error) {
	if cfg.Backend == config.BackendOrchard {
		return newOrchardBackend(cfg, log, version)
	}
	_, b := newTart(cfg, statePathsIn(cfg.StateDir).tartLogs, log)
	return b, nil
}
