package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tartyci/tarty"
)

var (
	// GitHub logins: alphanumerics and single hyphens, at most 39 characters.
	loginRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}$`)
	repoRE  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
	// Runner names become VM names, tart image names and GitHub runner names.
	prefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)
	labelRE  = regexp.MustCompile(`^[^\s,]+$`)
)

// maxPrefixLen keeps `<prefix>-build-<yyyymmddThhmmss>` within GitHub's
// 64-character runner-name limit with room to spare.
const maxPrefixLen = 40

// minReconcileInterval keeps the poller from eating the API rate limit.
const minReconcileInterval = 10 * time.Second

// validate checks every rule of DESIGN.md section 3 and returns all problems.
func (c *Config) validate() []Problem {
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	c.validateGitHub(add)
	c.validateImages(add)
	c.validateSSH(add)
	c.validateRunners(add)
	c.validateRebuild(add)

	if c.Reconcile.Interval < minReconcileInterval {
		add("reconcile.interval", "%s is below the %s minimum (the poller would spend the GitHub rate limit)",
			c.Reconcile.Interval, minReconcileInterval)
	}
	listen := checkListen(add, "server.listen", c.Server.Listen)
	admin := checkListen(add, "server.admin_listen", c.Server.AdminListen)
	if listen && admin && c.Server.Listen == c.Server.AdminListen {
		add("server.admin_listen", "must differ from server.listen: the admin endpoints must never be reachable through the webhook tunnel")
	}
	if !strings.HasPrefix(c.Server.WebhookPath, "/") || strings.ContainsAny(c.Server.WebhookPath, " ?#") {
		add("server.webhook_path", "%q must be a URL path starting with /", c.Server.WebhookPath)
	}
	if strings.TrimSpace(c.Tart.Path) == "" {
		add("tart.path", "required (the tart binary, e.g. tart or /opt/homebrew/bin/tart)")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "console":
	default:
		add("log.format", "%q is not one of auto, json, console", c.Log.Format)
	}
	if strings.TrimSpace(c.StateDir) == "" {
		add("state_dir", "must not be empty")
	}
	return ps
}

type addFunc func(key, format string, args ...any)

func (c *Config) validateGitHub(add addFunc) {
	g := &c.GitHub
	if u, err := url.Parse(g.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("github.url", "%q is not an http(s) URL such as https://api.github.com/ or https://HOST/api/v3/", g.URL)
	} else if !strings.HasSuffix(g.URL, "/") {
		g.URL += "/"
	}
	switch {
	case g.Organization == "":
		add("github.organization", "required")
	case !loginRE.MatchString(g.Organization):
		add("github.organization", "%q is not a GitHub organisation login", g.Organization)
	}
	if name, err := tarty.RepositoryName(g.Organization, g.Repository); err != nil {
		add("github.repository", "%v", err)
	} else if name != "" && (!repoRE.MatchString(name) || name == "." || name == "..") {
		add("github.repository", "%q is not a repository name", g.Repository)
	} else {
		g.Repository = name
	}
	if g.Repository == "" && strings.TrimSpace(g.RunnerGroup) == "" {
		add("github.runner_group", "must not be empty for organisation runners (the default is Default)")
	}

	app := g.App
	if app.Enabled() {
		if app.ID <= 0 {
			add("github.app.id", "required with github.app (the App's numeric ID)")
		}
		if app.InstallationID <= 0 {
			add("github.app.installation_id", "required with github.app (the installation's numeric ID)")
		}
		if app.PrivateKeyFile == "" {
			add("github.app.private_key_file", "required with github.app (the App's PEM private key)")
		}
		if g.Token.IsSet() {
			add("github.token", "set both a token and github.app; choose one way to authenticate")
		}
	} else if !g.Token.IsSet() {
		add("github.token", "required: a token (or github.token_file, or %s), or a GitHub App under github.app", EnvGitHubToken)
	}

	switch {
	case len(g.Labels) == 0:
		add("github.labels", "name at least one label of your own, such as [tarty]; self-hosted, macOS and ARM64 are always added")
	default:
		own := false
		for i, l := range g.Labels {
			if !labelRE.MatchString(l) {
				add(fmt.Sprintf("github.labels[%d]", i), "%q must be one word without spaces or commas", l)
				continue
			}
			if !isDefaultLabel(l) {
				own = true
			}
		}
		if !own {
			add("github.labels", "name at least one label of your own besides self-hosted, macOS and ARM64, so that `runs-on: self-hosted` jobs of other workflows do not start VMs here")
		}
		if n := len(tarty.RunnerLabels(g.Labels)); n > 100 {
			add("github.labels", "%d labels; GitHub allows at most 100 per runner", n)
		}
	}
	if !g.WebhookSecret.IsSet() {
		add("github.webhook_secret", "required (or github.webhook_secret_file, or %s): unsigned webhooks are refused", EnvWebhookSecret)
	}
}

func isDefaultLabel(l string) bool {
	for _, d := range tarty.DefaultRunnerLabels {
		if strings.EqualFold(l, d) {
			return true
		}
	}
	return false
}

func (c *Config) validateImages(add addFunc) {
	im := c.Images
	if im.Base == "" {
		add("images.base", "required: the tart image the runner image is built from")
	}
	switch {
	case im.Runner == "":
		add("images.runner", "required: the local tart image each runner VM is cloned from")
	case strings.Contains(im.Runner, "/"):
		add("images.runner", "%q must be a local tart image name (no /): the nightly rebuild renames it", im.Runner)
	case im.Runner == im.Base:
		add("images.runner", "must differ from images.base: the rebuild would replace its own source")
	}
	// Tarty deletes VMs with its prefix that it does not run: an image under
	// that prefix would be deleted at the next start. Image names also key the
	// trusted SSH host keys, one word per name.
	p := strings.ToLower(c.Runners.NamePrefix) + "-"
	for key, name := range map[string]string{"images.base": im.Base, "images.runner": im.Runner} {
		if strings.IndexFunc(name, unicode.IsSpace) >= 0 {
			add(key, "%q must not contain white space", name)
		}
		if name != "" && strings.HasPrefix(strings.ToLower(name), p) {
			add(key, "%q starts with runners.name_prefix %q: Tarty would delete it as an orphan VM", name, c.Runners.NamePrefix)
		}
	}
}

func (c *Config) validateSSH(add addFunc) {
	s := c.SSH
	if s.User == "" {
		add("ssh.user", "required")
	}
	if s.Port < 1 || s.Port > 65535 {
		add("ssh.port", "%d is not a TCP port (1..65535)", s.Port)
	}
	switch s.Client {
	case SSHClientNative:
	case SSHClientOpenSSH:
		if s.Password.IsSet() && s.KeyFile == "" {
			add("ssh.password", "the openssh client runs in batch mode and cannot type a password; set ssh.key_file or use ssh.client: native")
		}
	default:
		add("ssh.client", "%q is not native or openssh", s.Client)
	}
	if s.KeyFile != "" {
		if info, err := os.Stat(s.KeyFile); err != nil || !info.Mode().IsRegular() {
			add("ssh.key_file", "%s is not a readable file", s.KeyFile)
		}
	}
	positive(add, "ssh.connect_timeout", s.ConnectTimeout)
}

func (c *Config) validateRunners(add addFunc) {
	r := c.Runners
	if r.Max < 1 || r.Max > MaxMacOSVMs {
		if r.Max > MaxMacOSVMs {
			add("runners.max", "%d is more than the %d macOS VMs a Mac may run", r.Max, MaxMacOSVMs)
		} else {
			add("runners.max", "%d is not in 1..%d", r.Max, MaxMacOSVMs)
		}
	}
	if r.Warm < 0 || r.Warm > r.Max {
		add("runners.warm", "%d is not in 0..runners.max (%d)", r.Warm, r.Max)
	}
	switch {
	case !prefixRE.MatchString(r.NamePrefix):
		add("runners.name_prefix", "%q may hold only letters, digits and hyphens, starting with a letter or digit", r.NamePrefix)
	case len(r.NamePrefix) > maxPrefixLen:
		add("runners.name_prefix", "%q is longer than %d characters (runner names are limited to 64)", r.NamePrefix, maxPrefixLen)
	}
	if r.CPU < 0 {
		add("runners.cpu", "%d must be 0 (image default) or more", r.CPU)
	}
	if r.MemoryMB < 0 {
		add("runners.memory_mb", "%d must be 0 (image default) or more", r.MemoryMB)
	} else if r.MemoryMB > 0 && r.MemoryMB < 2048 {
		add("runners.memory_mb", "%d MB is too little for a macOS guest (at least 2048)", r.MemoryMB)
	}
	positive(add, "runners.boot_timeout", r.BootTimeout)
	positive(add, "runners.idle_timeout", r.IdleTimeout)
	if positive(add, "runners.max_lifetime", r.MaxLifetime) && r.BootTimeout > 0 && r.BootTimeout >= r.MaxLifetime {
		add("runners.max_lifetime", "%s must be longer than runners.boot_timeout (%s)", r.MaxLifetime, r.BootTimeout)
	}
	if strings.TrimSpace(r.WorkDir) == "" {
		add("runners.work_dir", "required: where run.sh lives in the guest")
	}
}

func (c *Config) validateRebuild(add addFunc) {
	r := c.Rebuild
	if r.Enabled && strings.TrimSpace(r.Command) == "" {
		add("rebuild.command", "required while rebuild.enabled is true: the command that turns a clone of images.base into a runner image")
	}
	if r.Hour < 0 || r.Hour > 23 {
		add("rebuild.hour", "%d is not in 0..23", r.Hour)
	}
	positive(add, "rebuild.timeout", r.Timeout)
}

func positive(add addFunc, key string, d time.Duration) bool {
	if d <= 0 {
		add(key, "%s must be longer than zero", d)
		return false
	}
	return true
}

func checkListen(add addFunc, key, addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		add(key, "%q is not host:port, such as 127.0.0.1:8080", addr)
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		add(key, "%q has no valid port", addr)
		return false
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		add(key, "%q: listen on an IP address or localhost", addr)
		return false
	}
	return true
}
