package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	testToken  = "ghp_TESTTOKEN0123456789abcdefghijklmnopq"
	testSecret = "webhook-secret-value-42"
)

// testEnv is a hermetic host: secrets in the environment, a fixed home and hostname.
func testEnv(vars map[string]string) Env {
	return Env{
		Getenv:   func(k string) string { return vars[k] },
		HomeDir:  "/home/ci",
		Hostname: "Build-Mac.local",
	}
}

func secretsEnv() Env {
	return testEnv(map[string]string{EnvGitHubToken: testToken, EnvWebhookSecret: testSecret})
}

// problemKeys returns the sorted, de-duplicated key paths of a config error.
func problemKeys(t *testing.T, err error) []string {
	t.Helper()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error %v is not a *config.Error", err)
	}
	seen := map[string]bool{}
	var keys []string
	for _, p := range cerr.Problems {
		if !seen[p.Key] {
			seen[p.Key] = true
			keys = append(keys, p.Key)
		}
	}
	sort.Strings(keys)
	return keys
}

func TestLoadProblems(t *testing.T) {
	tests := []struct {
		file string
		want []string // every key path named, sorted
	}{
		{"issue-example.yaml", []string{"github.organization", "github.orgnization", "rebuild.hour"}},
		{"runners-max.yaml", []string{"runners.max", "runners.warm"}},
		{"labels-defaults-only.yaml", []string{"github.labels"}},
		{"labels-empty.yaml", []string{"github.labels"}},
		{"labels-bad.yaml", []string{"github.labels[1]", "github.labels[2]"}},
		{"app-partial.yaml", []string{"github.app.installation_id", "github.app.private_key_file"}},
		{"lifetime-short.yaml", []string{"runners.max_lifetime"}},
		{"ssh-bad.yaml", []string{"ssh.client", "ssh.port", "ssh.user"}},
		{"ssh-openssh-password.yaml", []string{"ssh.password"}},
		{"durations-bad.yaml", []string{"rebuild.timeout", "reconcile.interval", "runners.boot_timeout",
			"runners.idle_timeout", "ssh.connect_timeout"}},
		{"types-bad.yaml", []string{"github.labels", "github.organization", "github.token", "rebuild.enabled", "rebuild.hour", "runners"}},
		{"repo-other-org.yaml", []string{"github.repository"}},
		{"images-bad.yaml", []string{"images.base", "images.runner"}},
		{"images-space.yaml", []string{"images.base", "images.runner"}},
		{"images-missing.yaml", []string{"images.base", "images.runner"}},
		{"server-bad.yaml", []string{"log.format", "log.level", "server.admin_listen", "server.webhook_path"}},
		{"server-bad-listen.yaml", []string{"server.admin_listen", "server.listen"}},
		{"duplicate-key.yaml", []string{"github.organization"}},
		{"not-yaml.yaml", []string{"(file)"}},
		{"prefix-bad.yaml", []string{"runners.cpu", "runners.memory_mb", "runners.name_prefix"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			// types-bad has a token in the file: keep the env from masking it.
			env := secretsEnv()
			if tt.file == "types-bad.yaml" || tt.file == "app-partial.yaml" {
				env = testEnv(map[string]string{EnvWebhookSecret: testSecret})
			}
			cfg, _, err := Load(filepath.Join("testdata", tt.file), env)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", cfg)
			}
			if got := problemKeys(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problem keys = %q, want %q\n%v", got, tt.want, err)
			}
		})
	}
}

func TestProblemMessages(t *testing.T) {
	_, _, err := Load("testdata/issue-example.yaml", secretsEnv())
	msg := fmt.Sprint(err)
	for _, want := range []string{
		"testdata/issue-example.yaml: 3 problems",
		"github.orgnization: unknown key (did you mean organization?) (line 2)",
		"github.organization: required",
		"rebuild.hour: 25 is not in 0..23 (line 8)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	_, _, err = Load("testdata/runners-max.yaml", secretsEnv())
	if !strings.Contains(fmt.Sprint(err), "runners.max: 3 is more than the 2 macOS VMs a Mac may run (line 6)") {
		t.Errorf("runners.max message: %v", err)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tarty.yaml")
	writeFile(t, path, `github:
  organization: acme
  token: `+testToken+`
  token_file: /nonexistent
  webhook_secret: [`+testSecret+`]
ssh:
  password: {nested: hunter2}
`, 0o600)
	_, _, err := Load(path, testEnv(nil))
	if err == nil {
		t.Fatal("expected problems")
	}
	for _, s := range []string{testToken, testSecret, "hunter2"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks %q:\n%v", s, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	cfg, warnings, err := Load("testdata/minimal.yaml", secretsEnv())
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"github.url", cfg.GitHub.URL, "https://api.github.com/"},
		{"github.runner_group", cfg.GitHub.RunnerGroup, "Default"},
		{"github.labels", cfg.GitHub.Labels, []string{"tarty"}},
		{"github.token from env", cfg.GitHub.Token.Reveal(), testToken},
		{"github.webhook_secret from env", cfg.GitHub.WebhookSecret.Reveal(), testSecret},
		{"ssh.user", cfg.SSH.User, "admin"},
		{"ssh.port", cfg.SSH.Port, 22},
		{"ssh.client", cfg.SSH.Client, "native"},
		{"ssh.connect_timeout", cfg.SSH.ConnectTimeout, 2 * time.Minute},
		{"runners.max", cfg.Runners.Max, 2},
		{"runners.warm", cfg.Runners.Warm, 0},
		{"runners.name_prefix", cfg.Runners.NamePrefix, "tarty-build-mac"},
		{"runners.boot_timeout", cfg.Runners.BootTimeout, 5 * time.Minute},
		{"runners.idle_timeout", cfg.Runners.IdleTimeout, 15 * time.Minute},
		{"runners.max_lifetime", cfg.Runners.MaxLifetime, 6 * time.Hour},
		{"runners.work_dir", cfg.Runners.WorkDir, "~/actions-runner"},
		{"rebuild.hour", cfg.Rebuild.Hour, 2},
		{"rebuild.timeout", cfg.Rebuild.Timeout, 2 * time.Hour},
		{"rebuild.enabled", cfg.Rebuild.Enabled, true},
		{"reconcile.interval", cfg.Reconcile.Interval, time.Minute},
		{"server.listen", cfg.Server.Listen, "127.0.0.1:8080"},
		{"server.webhook_path", cfg.Server.WebhookPath, "/github/webhook"},
		{"server.admin_listen", cfg.Server.AdminListen, "127.0.0.1:8081"},
		{"tart.path", cfg.Tart.Path, "tart"},
		{"log.level", cfg.Log.Level, "info"},
		{"log.format", cfg.Log.Format, "auto"},
		{"state_dir", cfg.StateDir, "/home/ci/.tarty"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestRepositoryScope(t *testing.T) {
	cfg, _, err := Load("testdata/repo-scoped.yaml", secretsEnv())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GitHub.Repository != "app" || cfg.RepositoryFullName() != "acme/app" {
		t.Errorf("repository = %q, full = %q", cfg.GitHub.Repository, cfg.RepositoryFullName())
	}
	if cfg.GitHub.URL != "https://ghe.example.com/api/v3/" {
		t.Errorf("url not normalised: %q", cfg.GitHub.URL)
	}
}

func TestRebuildDisabledNeedsNoCommand(t *testing.T) {
	if _, _, err := Load("testdata/rebuild-disabled.yaml", secretsEnv()); err != nil {
		t.Fatal(err)
	}
}

func TestMissingFile(t *testing.T) {
	_, _, err := Load("testdata/does-not-exist.yaml", secretsEnv())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask may have narrowed it
		t.Fatal(err)
	}
}

func TestSecretSources(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	secretFile := filepath.Join(dir, "secret")
	writeFile(t, tokenFile, "  file-token-0123456789\n", 0o600)
	writeFile(t, secretFile, "file-secret-0123456789\n", 0o644)
	base := "github:\n  organization: acme\n%s\nimages: {base: b, runner: r}\nrebuild: {command: x}\n"

	tests := []struct {
		name        string
		github      string
		env         map[string]string
		token       string
		secret      string
		warnings    int
		problemKeys []string
	}{
		{"inline", "  token: inline-token-0123456789\n  webhook_secret: inline-secret-0123456789", nil,
			"inline-token-0123456789", "inline-secret-0123456789", 0, nil},
		{"files", "  token_file: " + tokenFile + "\n  webhook_secret_file: " + secretFile, nil,
			"file-token-0123456789", "file-secret-0123456789", 1, nil},
		{"env wins over file", "  token_file: " + tokenFile + "\n  webhook_secret: inline-secret-0123456789",
			map[string]string{EnvGitHubToken: "env-token-0123456789", EnvWebhookSecret: "env-secret-0123456789"},
			"env-token-0123456789", "env-secret-0123456789", 0, nil},
		{"both inline and file", "  token: a\n  token_file: " + tokenFile + "\n  webhook_secret: " + testSecret, nil, "", "", 0, []string{"github.token"}},
		{"missing file", "  token_file: " + filepath.Join(dir, "nope") + "\n  webhook_secret: " + testSecret, nil, "", "", 0, []string{"github.token", "github.token_file"}},
		{"tilde file", "  token_file: ~/token\n  webhook_secret: " + testSecret, nil, "", "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "tarty.yaml")
			writeFile(t, path, fmt.Sprintf(base, tt.github), 0o600)
			env := testEnv(tt.env)
			if tt.name == "tilde file" {
				env.HomeDir = dir
			}
			cfg, warnings, err := Load(path, env)
			if tt.problemKeys != nil {
				if got := problemKeys(t, err); !reflect.DeepEqual(got, tt.problemKeys) {
					t.Fatalf("problem keys = %q, want %q (%v)", got, tt.problemKeys, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "tilde file" {
				if cfg.GitHub.Token.Reveal() != "file-token-0123456789" {
					t.Errorf("token = %q", cfg.GitHub.Token.Reveal())
				}
				return
			}
			if cfg.GitHub.Token.Reveal() != tt.token || cfg.GitHub.WebhookSecret.Reveal() != tt.secret {
				t.Errorf("token, secret = %q, %q; want %q, %q", cfg.GitHub.Token.Reveal(), cfg.GitHub.WebhookSecret.Reveal(), tt.token, tt.secret)
			}
			if len(warnings) != tt.warnings {
				t.Errorf("warnings = %q, want %d", warnings, tt.warnings)
			}
		})
	}
}

func TestConfigFilePermissionWarning(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tarty.yaml")
	writeFile(t, path, "github:\n  organization: acme\n  token: "+testToken+"\n  webhook_secret: "+testSecret+"\nimages: {base: b, runner: r}\nrebuild: {command: x}\n", 0o644)
	_, warnings, err := Load(path, testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "readable by group or others (mode 0644)") || !strings.Contains(warnings[0], "chmod 600") {
		t.Errorf("warnings = %q", warnings)
	}
	if strings.Contains(strings.Join(warnings, ""), testToken) {
		t.Error("warning shows the file content")
	}
	// An SSH password is a secret too.
	writeFile(t, path, "github:\n  organization: acme\nimages: {base: b, runner: r}\nrebuild: {command: x}\nssh: {password: admin}\n", 0o644)
	if _, warnings, _ = Load(path, secretsEnv()); len(warnings) != 1 {
		t.Errorf("ssh.password in a 0644 file: warnings = %q", warnings)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, warnings, _ = Load(path, testEnv(nil)); len(warnings) != 0 {
		t.Errorf("0600 file warned: %q", warnings)
	}
}

func TestAppAuth(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "app.pem")
	writeFile(t, key, "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n", 0o600)
	path := filepath.Join(dir, "tarty.yaml")
	writeFile(t, path, "github:\n  organization: acme\n  app: {id: 1, installation_id: 2, private_key_file: "+key+"}\nimages: {base: b, runner: r}\nrebuild: {command: x}\n", 0o600)
	cfg, _, err := Load(path, testEnv(map[string]string{EnvWebhookSecret: "s"}))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.GitHub.App.Enabled() || !strings.Contains(cfg.GitHub.App.PrivateKey.Reveal(), "BEGIN RSA") {
		t.Errorf("app = %+v", cfg.GitHub.App)
	}
	// A token as well is ambiguous.
	_, _, err = Load(path, testEnv(map[string]string{EnvWebhookSecret: "s", EnvGitHubToken: "t"}))
	if got := problemKeys(t, err); !reflect.DeepEqual(got, []string{"github.token"}) {
		t.Errorf("PAT and App: %q", got)
	}
	writeFile(t, key, "not a key", 0o600)
	_, _, err = Load(path, testEnv(map[string]string{EnvWebhookSecret: "s"}))
	if got := problemKeys(t, err); !reflect.DeepEqual(got, []string{"github.app.private_key_file"}) {
		t.Errorf("bad PEM: %q", got)
	}
}

func TestSecretRedaction(t *testing.T) {
	s := Secret("hunter2")
	for _, f := range []string{"%s", "%v", "%q", "%x", "%#v", "%+v"} {
		if got := fmt.Sprintf(f, s); strings.Contains(got, "hunter2") || strings.Contains(got, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("%s leaks: %s", f, got)
		}
	}
	cfg := Config{GitHub: GitHub{Token: s}}
	if got := fmt.Sprintf("%+v", cfg); strings.Contains(got, "hunter2") {
		t.Errorf("%%+v of Config leaks: %s", got)
	}
	if b, _ := s.MarshalJSON(); string(b) != `"***"` {
		t.Errorf("json = %s", b)
	}
	if Secret("").String() != "" {
		t.Error("empty secret should print empty")
	}
}
