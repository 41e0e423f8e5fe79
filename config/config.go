// Package config loads tarty.yaml into one Config value: strict decoding (an
// unknown key is an error naming it and its line), defaults, secrets from the
// file, *_file keys or the environment, and validation that reports every
// problem at once with its key path. It has no globals and never logs: warnings
// are returned to the caller.
package config

import "time"

// Config is the whole of tarty.yaml after defaults, secrets and validation.
type Config struct {
	GitHub    GitHub    `yaml:"github"`
	Images    Images    `yaml:"images"`
	SSH       SSH       `yaml:"ssh"`
	Runners   Runners   `yaml:"runners"`
	Rebuild   Rebuild   `yaml:"rebuild"`
	Reconcile Reconcile `yaml:"reconcile"`
	Server    Server    `yaml:"server"`
	Tart      Tart      `yaml:"tart"`
	Log       Log       `yaml:"log"`
	// StateDir holds what Tarty keeps between restarts: trusted SSH host keys,
	// `tart run` logs. Not in DESIGN.md's list; documented in the README.
	StateDir string `yaml:"state_dir"`
	// Backend is where runner VMs run: BackendLocal (tart on this Mac) or
	// BackendOrchard (a fleet of Macs behind an Orchard controller).
	Backend string  `yaml:"backend"`
	Orchard Orchard `yaml:"orchard"`
}

// VM backends.
const (
	BackendLocal   = "local"
	BackendOrchard = "orchard"
)

// Orchard is the Orchard controller that runs the VMs when Backend is
// BackendOrchard. Authenticate with ServiceAccount and Token, or with a
// BootstrapToken (which carries both and the controller's certificate).
type Orchard struct {
	URL            string `yaml:"url"`
	ServiceAccount string `yaml:"service_account"`
	Token          Secret `yaml:"token"`
	TokenFile      string `yaml:"token_file"`
	BootstrapToken Secret `yaml:"bootstrap_token"`
	// CAFile is the controller's certificate (self-signed by default).
	CAFile string `yaml:"ca_file"`
	// WorkerLabels place runners only on workers carrying all these labels.
	WorkerLabels map[string]string `yaml:"worker_labels"`
}

// set reports whether any Orchard key has a value.
func (o Orchard) set() bool {
	return o.URL != "" || o.ServiceAccount != "" || o.Token.IsSet() || o.TokenFile != "" ||
		o.BootstrapToken.IsSet() || o.CAFile != "" || len(o.WorkerLabels) > 0
}

// GitHub is where runners register and jobs come from.
type GitHub struct {
	URL               string   `yaml:"url"`
	Token             Secret   `yaml:"token"`
	TokenFile         string   `yaml:"token_file"`
	App               App      `yaml:"app"`
	Organization      string   `yaml:"organization"`
	Repository        string   `yaml:"repository"` // normalised to the bare name
	RunnerGroup       string   `yaml:"runner_group"`
	Labels            []string `yaml:"labels"`
	WebhookSecret     Secret   `yaml:"webhook_secret"`
	WebhookSecretFile string   `yaml:"webhook_secret_file"`
	// HookID names the webhook whose failed deliveries are redelivered at
	// start; 0 = find it by its URL.
	HookID int64 `yaml:"hook_id"`
}

// App is GitHub App authentication, used instead of a token when set.
type App struct {
	ID             int64  `yaml:"id"`
	InstallationID int64  `yaml:"installation_id"`
	PrivateKeyFile string `yaml:"private_key_file"`
	// PrivateKey is the PEM read from PrivateKeyFile by the loader.
	PrivateKey Secret `yaml:"-"`
}

// Enabled reports whether App authentication is configured.
func (a App) Enabled() bool { return a.ID != 0 || a.InstallationID != 0 || a.PrivateKeyFile != "" }

// Images names the tart images.
type Images struct {
	Base   string `yaml:"base"`
	Runner string `yaml:"runner"`
}

// SSH is how Tarty logs into guests.
type SSH struct {
	User           string        `yaml:"user"`
	Port           int           `yaml:"port"`
	KeyFile        string        `yaml:"key_file"`
	Password       Secret        `yaml:"password"`
	Client         string        `yaml:"client"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// SSH client kinds.
const (
	SSHClientNative  = "native"
	SSHClientOpenSSH = "openssh"
)

// Runners sizes and times the runner VMs.
type Runners struct {
	Max         int           `yaml:"max"`
	Warm        int           `yaml:"warm"`
	NamePrefix  string        `yaml:"name_prefix"`
	CPU         int           `yaml:"cpu"`
	MemoryMB    int           `yaml:"memory_mb"`
	BootTimeout time.Duration `yaml:"boot_timeout"`
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	WorkDir     string        `yaml:"work_dir"`
	// Softnet runs guests with `tart run --net-softnet`: they cannot reach
	// each other or the LAN (clones of one image share its SSH host key, so a
	// job could otherwise pose as a sibling VM).
	Softnet bool `yaml:"softnet"`
	// ShutdownCommand is what the guest runs after the runner exits so the VM
	// powers off (Tarty's addition to DESIGN.md's keys).
	ShutdownCommand string `yaml:"shutdown_command"`
}

// Rebuild is the nightly runner-image rebuild.
type Rebuild struct {
	Command       string        `yaml:"command"`
	Hour          int           `yaml:"hour"`
	Timeout       time.Duration `yaml:"timeout"`
	VerifyCommand string        `yaml:"verify_command"`
	Enabled       bool          `yaml:"enabled"`
	// RunnerMaxAge is how far the runner image's actions runner may fall
	// behind GitHub's newest release before Tarty rebuilds at the next quiet
	// moment instead of waiting for the hour (at most once a day).
	RunnerMaxAge time.Duration `yaml:"runner_max_age"`
}

// Reconcile is the poller that catches lost webhooks.
type Reconcile struct {
	Interval time.Duration `yaml:"interval"`
}

// Server holds the two HTTP listeners.
type Server struct {
	Listen      string `yaml:"listen"`
	WebhookPath string `yaml:"webhook_path"`
	AdminListen string `yaml:"admin_listen"`
}

// Tart locates the tart binary and its storage.
type Tart struct {
	Path string `yaml:"path"`
	Home string `yaml:"home"`
}

// Log configures the zerolog output.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// DefaultRunnerMaxAge is rebuild.runner_max_age: 21 days, before GitHub's
// 30 (after which a runner gets no jobs); MinRunnerMaxAge is its least.
const (
	DefaultRunnerMaxAge = 21 * 24 * time.Hour
	MinRunnerMaxAge     = 24 * time.Hour
)

// MaxMacOSVMs is Apple's licence limit of macOS VMs per Mac.
const MaxMacOSVMs = 2

// MaxOrchardRunners bounds runners.max with the Orchard backend, where it caps
// the whole fleet's runners.
const MaxOrchardRunners = 1000

// Default returns the configuration every key starts from. The name prefix and
// state directory depend on the host and are filled in by the loader.
func Default() Config {
	return Config{
		GitHub: GitHub{
			URL:         "https://api.github.com/",
			RunnerGroup: "Default",
			Labels:      []string{"tarty"},
		},
		SSH: SSH{
			User:           "admin",
			Port:           22,
			Client:         SSHClientNative,
			ConnectTimeout: 2 * time.Minute,
		},
		Runners: Runners{
			Max:         2,
			BootTimeout: 5 * time.Minute,
			IdleTimeout: 15 * time.Minute,
			MaxLifetime: 6 * time.Hour,
			WorkDir:     "~/actions-runner",
			// -n: never wait for a password prompt in a guest without
			// passwordless sudo (the host then stops the VM itself).
			ShutdownCommand: "sudo -n shutdown -h now",
		},
		Rebuild: Rebuild{
			Hour:         2,
			Timeout:      2 * time.Hour,
			Enabled:      true,
			RunnerMaxAge: DefaultRunnerMaxAge,
		},
		Reconcile: Reconcile{Interval: 60 * time.Second},
		Server: Server{
			Listen:      "127.0.0.1:8080",
			WebhookPath: "/github/webhook",
			AdminListen: "127.0.0.1:8081",
		},
		Tart:    Tart{Path: "tart"},
		Log:     Log{Level: "info", Format: "auto"},
		Backend: BackendLocal,
	}
}

// RepositoryFullName returns owner/name when the config is repository-scoped, else "".
func (c *Config) RepositoryFullName() string {
	if c.GitHub.Repository == "" {
		return ""
	}
	return c.GitHub.Organization + "/" + c.GitHub.Repository
}
