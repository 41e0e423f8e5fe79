package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Environment variables that supply secrets; they win over the file.
const (
	EnvGitHubToken           = "TARTY_GITHUB_TOKEN"
	EnvWebhookSecret         = "TARTY_WEBHOOK_SECRET"
	EnvOrchardToken          = "TARTY_ORCHARD_TOKEN"
	EnvOrchardBootstrapToken = "TARTY_ORCHARD_BOOTSTRAP_TOKEN"
)

// minSecretLen is the length under which a secret draws a warning: a webhook
// secret or token that short can be guessed.
const minSecretLen = 16

// maxConfigSize bounds what the loader reads; a real tarty.yaml is a few KiB.
const maxConfigSize = 1 << 20

// Env is what the loader needs from the host, injected so loading has no hidden
// inputs and tests are hermetic.
type Env struct {
	Getenv   func(string) string // nil: no environment
	HomeDir  string              // for ~ expansion and the default state_dir
	Hostname string              // for the default runners.name_prefix
	// UID is the user Tarty runs as, for the warning about a config or
	// secret file owned by someone else; nil means os.Geteuid.
	UID func() int
}

// HostEnv returns the Env of the running process.
func HostEnv() Env {
	home, _ := os.UserHomeDir()
	host, _ := os.Hostname()
	return Env{Getenv: os.Getenv, HomeDir: home, Hostname: host}
}

func (e Env) uid() int {
	if e.UID == nil {
		return os.Geteuid()
	}
	return e.UID()
}

func (e Env) get(key string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(key)
}

// Problem is one thing wrong with a config, tied to its key path.
type Problem struct {
	Key     string // e.g. github.organization
	Line    int    // 0 when the key is absent from the file
	Message string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", p.Key, p.Message, p.Line)
	}
	return fmt.Sprintf("%s: %s", p.Key, p.Message)
}

// Error lists every problem found in a config file.
type Error struct {
	Path     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	noun := "problems"
	if len(e.Problems) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(&b, "%s: %d %s", e.Path, len(e.Problems), noun)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// ErrNotFound is returned (wrapped) when the config file does not exist.
var ErrNotFound = errors.New("config file not found")

// Load reads, decodes and validates the config file at path. Warnings (for
// example a secret file readable by others, or a config file others may
// change) come back beside a valid config; every problem comes back at once in
// an *Error.
func Load(path string, env Env) (*Config, []string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("load config %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("load config %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, nil, fmt.Errorf("load config %s: larger than %d bytes", path, maxConfigSize)
	}
	cfg, warnings, inline, err := parse(data, path, env)
	// The config names a binary Tarty executes (tart.path): whoever can
	// change the file can run code as the user running Tarty.
	fileWarnings := fileSafetyWarnings(path, env, "it names the programs Tarty runs (tart.path)")
	if inline {
		if w := permissionWarning(path); w != "" {
			fileWarnings = append(fileWarnings, w)
		}
	}
	return cfg, append(fileWarnings, warnings...), err
}

// Parse decodes and validates config data; name is used in messages. Secret
// files named by *_file keys are read from disk.
func Parse(data []byte, name string, env Env) (*Config, []string, error) {
	cfg, warnings, _, err := parse(data, name, env)
	return cfg, warnings, err
}

// parse is Parse that also says whether the data itself holds a secret
// (a token, webhook secret or SSH password written inline).
func parse(data []byte, name string, env Env) (_ *Config, _ []string, inlineSecret bool, _ error) {
	cfg := Default()
	d := &decoder{lines: map[string]int{}}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, false, &Error{Path: name, Problems: []Problem{{Key: "(file)", Message: yamlMessage(err)}}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, false, &Error{Path: name, Problems: []Problem{{Key: "(file)", Message: "holds more than one YAML document"}}}
	}
	d.decode(&root, reflect.ValueOf(&cfg).Elem(), "")
	inlineSecret = cfg.GitHub.Token.IsSet() || cfg.GitHub.WebhookSecret.IsSet() || cfg.SSH.Password.IsSet() ||
		cfg.Orchard.Token.IsSet() || cfg.Orchard.BootstrapToken.IsSet()

	var warnings []string
	cfg.applyHostDefaults(env)
	warnings = append(warnings, cfg.resolveSecrets(env, d)...)
	problems := append(d.problems, cfg.validate()...)
	for i := range problems {
		if problems[i].Line == 0 {
			problems[i].Line = d.lines[problems[i].Key]
		}
	}
	// In file order; keys absent from the file (line 0) last, in rule order.
	sort.SliceStable(problems, func(i, j int) bool {
		li, lj := problems[i].Line, problems[j].Line
		return li != 0 && (lj == 0 || li < lj)
	})
	if len(problems) > 0 {
		return nil, warnings, inlineSecret, &Error{Path: name, Problems: problems}
	}
	return &cfg, warnings, inlineSecret, nil
}

// yamlMessage keeps the parser's message and line but drops its "yaml: " prefix.
func yamlMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// applyHostDefaults fills the defaults that depend on the host and expands ~.
func (c *Config) applyHostDefaults(env Env) {
	if c.Runners.NamePrefix == "" {
		short, _, _ := strings.Cut(strings.ToLower(env.Hostname), ".")
		short = strings.Trim(nonName.ReplaceAllString(short, "-"), "-")
		if len(short) > 24 {
			short = strings.TrimRight(short[:24], "-")
		}
		if short == "" {
			short = "mac"
		}
		c.Runners.NamePrefix = "tarty-" + short
	}
	if c.StateDir == "" {
		c.StateDir = "~/.tarty"
	}
	for _, p := range []*string{&c.GitHub.TokenFile, &c.GitHub.WebhookSecretFile, &c.GitHub.App.PrivateKeyFile,
		&c.SSH.KeyFile, &c.Tart.Home, &c.StateDir, &c.Orchard.TokenFile, &c.Orchard.CAFile} {
		*p = expandHome(*p, env.HomeDir)
	}
}

// expandHome expands a leading ~ or ~/; the guest-side runners.work_dir is left
// alone because ~ there means the guest user's home.
func expandHome(p, home string) string {
	if home == "" {
		return p
	}
	if p == "~" {
		return home
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(home, p[2:])
	}
	return p
}

// resolveSecrets applies the precedence environment > *_file > inline value and
// reads the App private key. Every secret, whatever its source, is trimmed of
// surrounding white space, and one that is then empty is a problem (a
// trailing newline in an environment variable would otherwise break every
// signature check, silently). Problems go to d; warnings are returned.
func (c *Config) resolveSecrets(env Env, d *decoder) []string {
	var warnings []string
	// resolve sets *inline from the environment, the file or the inline value
	// and reports whether a secret is now set.
	resolve := func(key string, inline *Secret, fileKey, file, envName string) bool {
		raw, from := env.get(envName), "$"+envName+" "
		switch {
		case raw != "":
		case inline.IsSet() && file != "":
			d.problem(key, d.lines[key], "set both %s and %s; keep one", key, fileKey)
			return false
		case file != "":
			v, w, err := readSecretFile(file, env) // trimmed, never empty
			if err != nil {
				d.problem(fileKey, d.lines[fileKey], "%v", err)
				return false
			}
			warnings = append(warnings, w...)
			*inline = Secret(v)
			return true
		case !inline.IsSet():
			return false
		default:
			raw, from = inline.Reveal(), ""
		}
		v := strings.TrimSpace(raw)
		if v == "" {
			d.problem(key, d.lines[key], "%sholds only white space", from)
			return false
		}
		*inline = Secret(v)
		return true
	}
	short := func(key string, s Secret) {
		if n := len(s.Reveal()); n < minSecretLen {
			warnings = append(warnings, fmt.Sprintf("%s is %d bytes long; use at least %d random bytes (openssl rand -hex 32)",
				key, n, minSecretLen))
		}
	}
	if resolve("github.token", &c.GitHub.Token, "github.token_file", c.GitHub.TokenFile, EnvGitHubToken) {
		short("github.token", c.GitHub.Token)
	}
	if resolve("github.webhook_secret", &c.GitHub.WebhookSecret, "github.webhook_secret_file", c.GitHub.WebhookSecretFile, EnvWebhookSecret) {
		short("github.webhook_secret", c.GitHub.WebhookSecret)
	}
	// ssh.password may be as short as the cirruslabs images' "admin".
	resolve("ssh.password", &c.SSH.Password, "", "", "")
	// The Orchard credentials only mean something with that backend; its
	// environment variables are not read otherwise.
	if c.Backend == BackendOrchard {
		if resolve("orchard.token", &c.Orchard.Token, "orchard.token_file", c.Orchard.TokenFile, EnvOrchardToken) {
			short("orchard.token", c.Orchard.Token)
		}
		if resolve("orchard.bootstrap_token", &c.Orchard.BootstrapToken, "", "", EnvOrchardBootstrapToken) {
			short("orchard.bootstrap_token", c.Orchard.BootstrapToken)
		}
	}
	if f := c.GitHub.App.PrivateKeyFile; f != "" {
		v, w, err := readSecretFile(f, env)
		if err != nil {
			d.problem("github.app.private_key_file", d.lines["github.app.private_key_file"], "%v", err)
		} else {
			if !strings.Contains(v, "PRIVATE KEY-----") {
				d.problem("github.app.private_key_file", d.lines["github.app.private_key_file"], "%s is not a PEM private key", f)
			}
			warnings = append(warnings, w...)
			c.GitHub.App.PrivateKey = Secret(v)
		}
	}
	if f := c.SSH.KeyFile; f != "" {
		// Only checked here; sshexec reads it. A missing file is validate's problem.
		if _, err := os.Stat(f); err == nil {
			warnings = append(warnings, secretFileWarnings(f, env)...)
		}
	}
	return warnings
}

// readSecretFile reads a secret, trimmed of surrounding white space, and
// returns the warnings about who else may read or change the file.
func readSecretFile(path string, env Env) (value string, warnings []string, err error) {
	info, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil, fmt.Errorf("%s does not exist", path)
		}
		return "", nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	if !info.Mode().IsRegular() {
		return "", nil, fmt.Errorf("%s is not a regular file", path)
	}
	if info.Size() > 64<<10 {
		return "", nil, fmt.Errorf("%s is larger than 64 KiB: not a secret file", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	value = strings.TrimSpace(string(data))
	if value == "" {
		return "", nil, fmt.Errorf("%s is empty", path)
	}
	return value, secretFileWarnings(path, env), nil
}

// secretFileWarnings are the warnings for a file holding a secret: readable
// by others, or changeable by someone else.
func secretFileWarnings(path string, env Env) []string {
	var ws []string
	if w := permissionWarning(path); w != "" {
		ws = append(ws, w)
	}
	return append(ws, fileSafetyWarnings(path, env, "it holds a secret Tarty trusts")...)
}

// permissionWarning returns a warning when path, which holds a secret, is
// readable by group or others.
func permissionWarning(path string) string {
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm()&0o044 == 0 {
		return ""
	}
	return fmt.Sprintf("%s holds a secret but is readable by group or others (mode %04o); run chmod 600 %s",
		path, info.Mode().Perm(), path)
}

// fileSafetyWarnings warns when someone other than the user running Tarty
// (or root) may change path: it is writable by group or others, or owned by
// another user. why says what a changed file would do.
func fileSafetyWarnings(path string, env Env, why string) []string {
	info, err := os.Stat(path)
	if err != nil {
		return nil
	}
	var ws []string
	if perm := info.Mode().Perm(); perm&0o022 != 0 {
		ws = append(ws, fmt.Sprintf("%s is writable by group or others (mode %04o) and %s; run chmod go-w %s",
			path, perm, why, path))
	}
	if owner, ok := fileOwner(info); ok && owner != 0 {
		if uid := env.uid(); owner != uid {
			ws = append(ws, fmt.Sprintf("%s is owned by uid %d, not by the user running Tarty (uid %d), and %s; chown it to that user",
				path, owner, uid, why))
		}
	}
	return ws
}
