package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
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
	// Orchard names (service accounts) and worker label keys.
	orchardNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	workerLabelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
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
	if admin {
		admin = checkLoopback(add, "server.admin_listen", c.Server.AdminListen)
	}
	if listen && admin && listenersOverlap(c.Server.Listen, c.Server.AdminListen) {
		add("server.admin_listen", "%q overlaps server.listen %q: the admin endpoints must never be reachable through the webhook tunnel; use another port",
			c.Server.AdminListen, c.Server.Listen)
	}
	// The webhook listener refuses : and * too (echo would read them as a
	// parameter or a wildcard): refused here so that validate catches it.
	if !strings.HasPrefix(c.Server.WebhookPath, "/") || strings.ContainsAny(c.Server.WebhookPath, " ?#:*") {
		add("server.webhook_path", "%q must be a URL path starting with /, without white space, ?, #, : or *", c.Server.WebhookPath)
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
	c.validateOrchard(add)
	return ps
}

// orchard reports whether the Orchard backend is configured.
func (c *Config) orchard() bool { return c.Backend == BackendOrchard }

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
	if g.HookID < 0 {
		add("github.hook_id", "%d must be 0 (find the hook by its URL) or a webhook's ID", g.HookID)
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
	switch {
	case im.Base != "":
	case c.orchard():
		// No nightly rebuild with Orchard: the base image is not used.
	default:
		add("images.base", "required: the tart image the runner image is built from")
	}
	switch {
	case im.Runner == "" && c.orchard():
		add("images.runner", "required: the image each runner VM is cloned from, which every Orchard worker can pull")
	case im.Runner == "":
		add("images.runner", "required: the local tart image each runner VM is cloned from")
	case c.orchard():
		// An OCI reference every worker can pull; Tarty renames nothing.
	case strings.Contains(im.Runner, "/"):
		add("images.runner", "%q must be a local tart image name (no /): the nightly rebuild renames it", im.Runner)
	case im.Runner == im.Base:
		add("images.runner", "must differ from images.base: the rebuild would replace its own source")
	}
	// Tarty deletes VMs with its prefix that it does not run: an image under
	// that prefix would be deleted at the next start. Image names also key the
	// trusted SSH host keys (a leading # would read back as a comment there)
	// and reach tart's command line (a leading - would be read as a flag).
	p := strings.ToLower(c.Runners.NamePrefix) + "-"
	for _, f := range [...]struct{ key, name string }{{"images.base", im.Base}, {"images.runner", im.Runner}} {
		key, name := f.key, f.name
		if name == "" {
			continue
		}
		switch {
		case strings.HasPrefix(name, "#") || strings.HasPrefix(name, "-"):
			add(key, "%q must not start with # or -", name)
		case strings.IndexFunc(name, unicode.IsSpace) >= 0:
			add(key, "%q must not contain white space", name)
		case strings.IndexFunc(name, unicode.IsControl) >= 0:
			add(key, "%q must not contain control characters", name)
		}
		if strings.HasPrefix(strings.ToLower(name), p) {
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
	if c.orchard() {
		// runners.max caps the fleet; Orchard enforces two VMs per Mac.
		if r.Max < 1 || r.Max > MaxOrchardRunners {
			add("runners.max", "%d is not in 1..%d", r.Max, MaxOrchardRunners)
		}
	} else if r.Max < 1 || r.Max > MaxMacOSVMs {
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
	if strings.TrimSpace(r.ShutdownCommand) == "" {
		add("runners.shutdown_command", "required: the guest command that powers the VM off after its job (default: sudo -n shutdown -h now)")
	}
}

func (c *Config) validateRebuild(add addFunc) {
	r := c.Rebuild
	if r.Enabled && !c.orchard() && strings.TrimSpace(r.Command) == "" {
		add("rebuild.command", "required while rebuild.enabled is true: the command that turns a clone of images.base into a runner image")
	}
	if r.Hour < 0 || r.Hour > 23 {
		add("rebuild.hour", "%d is not in 0..23", r.Hour)
	}
	positive(add, "rebuild.timeout", r.Timeout)
	if r.RunnerMaxAge < MinRunnerMaxAge {
		add("rebuild.runner_max_age", "%s is shorter than %s: GitHub publishes runner releases days apart, and Tarty rebuilds early at most once a day", r.RunnerMaxAge, MinRunnerMaxAge)
	}
}

// validateOrchard checks backend and the orchard section.
func (c *Config) validateOrchard(add addFunc) {
	o := c.Orchard
	switch c.Backend {
	case BackendLocal:
		if o.set() {
			add("orchard", "only with backend: orchard (backend is local)")
		}
		return
	case BackendOrchard:
	default:
		add("backend", "%q is not local or orchard", c.Backend)
		return
	}
	if u, err := url.Parse(o.URL); o.URL == "" {
		add("orchard.url", "required with backend: orchard (the controller, such as https://orchard.example.com:6120)")
	} else if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		add("orchard.url", "%q is not an https URL such as https://orchard.example.com:6120", o.URL)
	}
	if c.SSH.Client == SSHClientOpenSSH {
		add("ssh.client", "openssh cannot reach guests through the Orchard controller's port-forward: use native with backend: orchard")
	}
	token := o.Token.IsSet() || o.TokenFile != ""
	switch {
	case o.BootstrapToken.IsSet() && (o.ServiceAccount != "" || token):
		add("orchard.bootstrap_token", "set both a bootstrap token and orchard.service_account/orchard.token; choose one")
	case o.BootstrapToken.IsSet():
	case o.ServiceAccount == "" && !token:
		add("orchard", "set orchard.service_account and orchard.token (or orchard.token_file, or %s), or orchard.bootstrap_token (or %s)",
			EnvOrchardToken, EnvOrchardBootstrapToken)
	case o.ServiceAccount == "":
		add("orchard.service_account", "required with orchard.token: the service account the token belongs to")
	case !token:
		add("orchard.token", "required with orchard.service_account (or orchard.token_file, or %s)", EnvOrchardToken)
	}
	if o.ServiceAccount != "" && !orchardNameRE.MatchString(o.ServiceAccount) {
		add("orchard.service_account", "%q is not a service account name", o.ServiceAccount)
	}
	if o.CAFile != "" {
		if info, err := os.Stat(o.CAFile); err != nil || !info.Mode().IsRegular() {
			add("orchard.ca_file", "%s is not a readable file", o.CAFile)
		}
	}
	keys := make([]string, 0, len(o.WorkerLabels))
	for k := range o.WorkerLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !workerLabelRE.MatchString(k) {
			add("orchard.worker_labels", "%q is not a label name (letters, digits, . _ / -)", k)
		}
		if v := o.WorkerLabels[k]; strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 || strings.Contains(v, ",") {
			add("orchard.worker_labels."+k, "%q must not contain white space, commas or control characters", v)
		}
	}
}

func positive(add addFunc, key string, d time.Duration) bool {
	if d <= 0 {
		add(key, "%s must be longer than zero", d)
		return false
	}
	return true
}

// checkLoopback requires a loopback address: the admin listener starts VMs and
// rebuilds and has no authentication.
func checkLoopback(add addFunc, key, addr string) bool {
	if tarty.LoopbackAddr(addr) {
		return true
	}
	add(key, "%q must be a loopback address (127.0.0.1, ::1 or localhost): the admin endpoints have no authentication", addr)
	return false
}

// listenersOverlap reports whether two valid listen addresses would share a
// socket: the same port, with the same host, or with a wildcard host on either
// side, or localhost beside a loopback address. Port 0 (any free port) never
// overlaps.
func listenersOverlap(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if na != nb || na == 0 {
		return false
	}
	ipa, ipb := net.ParseIP(ha), net.ParseIP(hb)
	wild := func(h string, ip net.IP) bool { return h == "" || ip != nil && ip.IsUnspecified() }
	local := func(h string, ip net.IP) bool { return h == "localhost" || ip != nil && ip.IsLoopback() }
	switch {
	case wild(ha, ipa) || wild(hb, ipb):
		return true
	case ipa != nil && ipb != nil:
		return ipa.Equal(ipb)
	case ha == hb:
		return true
	default: // localhost and a loopback address
		return local(ha, ipa) && local(hb, ipb)
	}
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
