package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// parseWith parses yamlText and returns the config, warnings and sorted
// problem keys.
func parseWith(t *testing.T, yamlText string, env Env) (*Config, []string, []string) {
	t.Helper()
	cfg, warnings, err := Parse([]byte(yamlText), "test.yaml", env)
	if err != nil {
		return nil, warnings, problemKeys(t, err)
	}
	return cfg, warnings, nil
}

// configWith builds a config file text: github and images sections from the
// arguments, plus rest.
func configWith(github, images, rest string) string {
	if github == "" {
		github = "  organization: acme\n"
	}
	if images == "" {
		images = "  base: ghcr.io/cirruslabs/macos-sequoia-base:latest\n  runner: tarty-runner\n"
	}
	return "github:\n" + github + "images:\n" + images + rest
}

func TestAdminListenLoopback(t *testing.T) {
	tests := []struct {
		listen, admin string
		wantErr       bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8081", false},
		{"127.0.0.1:8080", "127.0.0.2:9000", false},
		{"127.0.0.1:8080", "[::1]:8081", false},
		{"127.0.0.1:8080", "localhost:8081", false},
		{"0.0.0.0:8080", "127.0.0.1:8081", false}, // the webhook may listen widely
		{"127.0.0.1:8080", "0.0.0.0:8081", true},
		{"127.0.0.1:8080", ":8081", true},
		{"127.0.0.1:8080", "[::]:8081", true},
		{"127.0.0.1:8080", "192.168.1.5:8081", true},
		{"127.0.0.1:8080", "[fe80::1]:8081", true},
		// Same port: equal, or a wildcard on either side, or localhost.
		{"127.0.0.1:8081", "127.0.0.1:8081", true},
		{"0.0.0.0:8081", "127.0.0.1:8081", true},
		{":8081", "127.0.0.1:8081", true},
		{"[::]:8081", "[::1]:8081", true},
		{"localhost:8081", "127.0.0.1:8081", true},
		{"127.0.0.1:8081", "localhost:8081", true},
		{"127.0.0.2:8081", "127.0.0.1:8081", false}, // two loopback addresses are two sockets
		{"127.0.0.1:0", "127.0.0.1:0", false},       // any free port
	}
	for _, tt := range tests {
		t.Run(tt.listen+" "+tt.admin, func(t *testing.T) {
			text := configWith("", "", "rebuild: {command: ./convert.sh}\nserver:\n  listen: \""+tt.listen+"\"\n  admin_listen: \""+tt.admin+"\"\n")
			_, _, err := Parse([]byte(text), "test.yaml", secretsEnv())
			switch {
			case tt.wantErr && err == nil:
				t.Fatal("accepted")
			case !tt.wantErr && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr:
				if got := problemKeys(t, err); !reflect.DeepEqual(got, []string{"server.admin_listen"}) {
					t.Errorf("problem keys = %q, want [server.admin_listen]\n%v", got, err)
				}
			}
		})
	}
}

func TestSecretsTrimmed(t *testing.T) {
	long := "0123456789abcdef-secret"
	tests := []struct {
		name      string
		github    string
		rest      string
		env       map[string]string
		wantToken string
		wantHook  string
		problems  []string
		warnings  []string // substrings, one per warning, in any order
	}{
		{"trailing newline in the environment", "", "",
			map[string]string{EnvGitHubToken: testToken + "\n", EnvWebhookSecret: "  " + long + "\r\n"},
			testToken, long, nil, nil},
		{"inline with spaces", "  organization: acme\n  token: \"  " + testToken + " \"\n  webhook_secret: \"\\t" + long + "\\n\"\n", "", nil,
			testToken, long, nil, nil},
		{"inline blank webhook secret", "  organization: acme\n  token: " + testToken + "\n  webhook_secret: \" \"\n", "", nil,
			"", "", []string{"github.webhook_secret"}, nil},
		{"blank environment variable", "", "",
			map[string]string{EnvGitHubToken: testToken, EnvWebhookSecret: " \n\t"},
			"", "", []string{"github.webhook_secret"}, nil},
		{"blank ssh password", "", "ssh:\n  password: \"  \"\n",
			map[string]string{EnvGitHubToken: testToken, EnvWebhookSecret: long},
			"", "", []string{"ssh.password"}, nil},
		{"short secrets warn, the ssh password does not", "", "ssh:\n  password: admin\n",
			map[string]string{EnvGitHubToken: "ghp_short", EnvWebhookSecret: " hunter2 "},
			"ghp_short", "hunter2", nil, []string{"github.token is 9 bytes", "github.webhook_secret is 7 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := configWith(tt.github, "", "rebuild: {command: x}\n"+tt.rest)
			cfg, warnings, problems := parseWith(t, text, testEnv(tt.env))
			if !reflect.DeepEqual(problems, tt.problems) {
				t.Fatalf("problems = %q, want %q", problems, tt.problems)
			}
			if cfg != nil {
				if cfg.GitHub.Token.Reveal() != tt.wantToken || cfg.GitHub.WebhookSecret.Reveal() != tt.wantHook {
					t.Errorf("token, secret = %q, %q; want %q, %q", cfg.GitHub.Token.Reveal(),
						cfg.GitHub.WebhookSecret.Reveal(), tt.wantToken, tt.wantHook)
				}
			}
			if len(warnings) != len(tt.warnings) {
				t.Fatalf("warnings = %q, want %d", warnings, len(tt.warnings))
			}
			for _, want := range tt.warnings {
				if !strings.Contains(strings.Join(warnings, "\n"), want) {
					t.Errorf("warnings %q lack %q", warnings, want)
				}
			}
			for _, w := range warnings {
				if strings.Contains(w, "hunter2") || strings.Contains(w, "ghp_short") {
					t.Errorf("warning shows the secret: %s", w)
				}
			}
		})
	}
}

// TestFileSafetyWarnings: a config or secret file that someone else may
// change is warned about, whether or not it holds a secret: the config names
// the binary Tarty runs (tart.path).
func TestFileSafetyWarnings(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tarty.yaml")
	secretPath := filepath.Join(dir, "hook-secret")
	writeFile(t, secretPath, testSecret+"\n", 0o600)
	text := configWith("  organization: acme\n  webhook_secret_file: "+secretPath+"\n", "", "rebuild: {command: x}\n")
	env := testEnv(map[string]string{EnvGitHubToken: testToken})
	me := os.Geteuid()

	tests := []struct {
		name             string
		cfgMode, secMode os.FileMode
		uid              int
		want             []string // substrings, one per warning
	}{
		{"private files", 0o600, 0o600, me, nil},
		{"config readable but not writable: no secret in it", 0o644, 0o600, me, nil},
		{"config writable by group", 0o664, 0o600, me, []string{"tarty.yaml is writable by group or others (mode 0664)"}},
		{"config writable by others", 0o602, 0o600, me, []string{"tarty.yaml is writable by group or others (mode 0602)"}},
		{"secret file writable by group", 0o600, 0o620, me, []string{"hook-secret is writable by group or others (mode 0620)"}},
		{"secret file readable by others", 0o600, 0o604, me, []string{"hook-secret holds a secret but is readable by group or others"}},
		{"owned by another user", 0o600, 0o600, me + 1, []string{"tarty.yaml is owned by uid", "hook-secret is owned by uid"}},
	}
	if me == 0 {
		// Root-owned files are fine, so as root the files are given to
		// someone else instead.
		tests[len(tests)-1].uid = 0
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, cfgPath, text, tt.cfgMode)
			if err := os.Chmod(secretPath, tt.secMode); err != nil {
				t.Fatal(err)
			}
			env.UID = func() int { return tt.uid }
			owner := me
			if me == 0 && strings.Contains(tt.name, "another user") {
				owner = 4242
			}
			for _, p := range []string{cfgPath, secretPath} {
				if err := os.Chown(p, owner, -1); err != nil {
					t.Fatal(err)
				}
			}
			_, warnings, err := Load(cfgPath, env)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != len(tt.want) {
				t.Fatalf("warnings = %q, want %d", warnings, len(tt.want))
			}
			for _, want := range tt.want {
				if !strings.Contains(strings.Join(warnings, "\n"), want) {
					t.Errorf("warnings %q lack %q", warnings, want)
				}
			}
		})
	}
	if me == 0 {
		return
	}
	t.Run("root-owned files are fine", func(t *testing.T) {
		env.UID = func() int { return me }
		if ws := fileSafetyWarnings("/", env, "x"); len(ws) != 0 {
			t.Errorf("warnings for a root-owned path: %q", ws)
		}
	})
}

func TestImageNames(t *testing.T) {
	tests := []struct {
		base, runner string
		orchard      bool
		want         []string
	}{
		{"ghcr.io/cirruslabs/macos-sequoia-base:latest", "tarty-runner", false, nil},
		{"macos-base", "tarty-runner", false, nil},
		{"#base", "tarty-runner", false, []string{"images.base"}},
		{"macos-base", "#runner", false, []string{"images.runner"}},
		{"-h", "tarty-runner", false, []string{"images.base"}},
		{"macos-base", "--help", false, []string{"images.runner"}},
		{"macos base", "tarty-runner", false, []string{"images.base"}},
		{"macos-base", "runner\x7f", false, []string{"images.runner"}},
		{"macos-base\x00", "tarty-runner", false, []string{"images.base"}},
		{"macos-base", "ghcr.io/acme/runner:1", false, []string{"images.runner"}},
		// With Orchard every worker pulls the runner image: a reference is right.
		{"", "ghcr.io/acme/runner:1", true, nil},
		{"", "-runner", true, []string{"images.runner"}},
	}
	for _, tt := range tests {
		t.Run(tt.base+" "+tt.runner, func(t *testing.T) {
			images := "  base: \"" + yamlEscape(tt.base) + "\"\n  runner: \"" + yamlEscape(tt.runner) + "\"\n"
			rest := "rebuild: {command: x}\n"
			if tt.orchard {
				rest = orchardYAML
			}
			_, _, problems := parseWith(t, configWith("", images, rest), secretsEnv())
			if !reflect.DeepEqual(problems, tt.want) {
				t.Errorf("problem keys = %q, want %q", problems, tt.want)
			}
		})
	}
}

// yamlEscape writes control characters as YAML double-quoted escapes.
func yamlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			fmt.Fprintf(&b, "\\x%02X", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// orchardYAML is a valid Orchard backend on top of configWith's sections.
const orchardYAML = `backend: orchard
orchard:
  url: https://orchard.example.com:6120
  service_account: tarty
  token: orchard-token-0123456789
`

func TestNewKeyDefaults(t *testing.T) {
	cfg, _, problems := parseWith(t, configWith("", "", "rebuild: {command: ./convert.sh}\n"), secretsEnv())
	if problems != nil {
		t.Fatal(problems)
	}
	if cfg.Runners.Softnet || cfg.Runners.ShutdownCommand != "sudo -n shutdown -h now" || cfg.GitHub.HookID != 0 ||
		cfg.Backend != BackendLocal || !reflect.DeepEqual(cfg.Orchard, Orchard{}) {
		t.Errorf("defaults: softnet %v, shutdown_command %q, hook_id %d, backend %q, orchard %+v",
			cfg.Runners.Softnet, cfg.Runners.ShutdownCommand, cfg.GitHub.HookID, cfg.Backend, cfg.Orchard)
	}
	cfg, _, problems = parseWith(t, configWith("  organization: acme\n  hook_id: 4242\n", "",
		"rebuild: {command: x}\nrunners:\n  softnet: true\n  shutdown_command: sudo /sbin/halt\n"), secretsEnv())
	if problems != nil {
		t.Fatal(problems)
	}
	if !cfg.Runners.Softnet || cfg.Runners.ShutdownCommand != "sudo /sbin/halt" || cfg.GitHub.HookID != 4242 {
		t.Errorf("set: softnet %v, shutdown_command %q, hook_id %d", cfg.Runners.Softnet, cfg.Runners.ShutdownCommand, cfg.GitHub.HookID)
	}
}

func TestOrchard(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "orchard-ca.pem")
	writeFile(t, ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", 0o600)
	tokenFile := filepath.Join(dir, "orchard-token")
	writeFile(t, tokenFile, "orchard-file-token-0123456789\n", 0o600)
	runner := "  runner: ghcr.io/acme/runner:latest\n"

	tests := []struct {
		name     string
		images   string
		rest     string
		env      map[string]string
		want     []string
		validate func(t *testing.T, cfg *Config)
	}{
		{"service account and token, fleet of 10, no rebuild command", runner,
			orchardYAML + "runners: {max: 10, warm: 3}\n", nil, nil, nil},
		{"full", runner, "runners: {max: 10, warm: 3}\n" + orchardYAML + "  ca_file: " + ca + "\n  worker_labels: {pool: ci, site: zrh}\n", nil, nil,
			func(t *testing.T, cfg *Config) {
				if cfg.Runners.Max != 10 || cfg.Orchard.Token.Reveal() != "orchard-token-0123456789" ||
					!reflect.DeepEqual(cfg.Orchard.WorkerLabels, map[string]string{"pool": "ci", "site": "zrh"}) || cfg.Orchard.CAFile != ca {
					t.Errorf("orchard = %+v, max %d", cfg.Orchard, cfg.Runners.Max)
				}
			}},
		{"bootstrap token from the environment, trimmed", runner,
			"backend: orchard\norchard: {url: \"https://orchard.example.com:6120\"}\n",
			map[string]string{EnvOrchardBootstrapToken: "bootstrap-0123456789abcdef\n"}, nil,
			func(t *testing.T, cfg *Config) {
				if cfg.Orchard.BootstrapToken.Reveal() != "bootstrap-0123456789abcdef" {
					t.Errorf("bootstrap token = %q", cfg.Orchard.BootstrapToken.Reveal())
				}
			}},
		{"token file, env wins", runner,
			"backend: orchard\norchard: {url: \"https://o.example.com\", service_account: tarty, token_file: " + tokenFile + "}\n",
			map[string]string{EnvOrchardToken: " env-orchard-token-0123456789 "}, nil,
			func(t *testing.T, cfg *Config) {
				if cfg.Orchard.Token.Reveal() != "env-orchard-token-0123456789" {
					t.Errorf("token = %q", cfg.Orchard.Token.Reveal())
				}
			}},
		{"token file", runner,
			"backend: orchard\norchard: {url: \"https://o.example.com\", service_account: tarty, token_file: " + tokenFile + "}\n", nil, nil,
			func(t *testing.T, cfg *Config) {
				if cfg.Orchard.Token.Reveal() != "orchard-file-token-0123456789" {
					t.Errorf("token = %q", cfg.Orchard.Token.Reveal())
				}
			}},
		{"no url", runner, "backend: orchard\norchard: {service_account: tarty, token: orchard-token-0123456789}\n", nil,
			[]string{"orchard.url"}, nil},
		{"http url", runner, "backend: orchard\norchard: {url: \"http://o.example.com:6120\", service_account: tarty, token: orchard-token-0123456789}\n", nil,
			[]string{"orchard.url"}, nil},
		{"no credentials", runner, "backend: orchard\norchard: {url: \"https://o.example.com\"}\n", nil, []string{"orchard"}, nil},
		{"account without token", runner, "backend: orchard\norchard: {url: \"https://o.example.com\", service_account: tarty}\n", nil,
			[]string{"orchard.token"}, nil},
		{"token without account", runner, "backend: orchard\norchard: {url: \"https://o.example.com\", token: orchard-token-0123456789}\n", nil,
			[]string{"orchard.service_account"}, nil},
		{"both ways", runner, orchardYAML + "  bootstrap_token: bootstrap-0123456789abcdef\n", nil, []string{"orchard.bootstrap_token"}, nil},
		{"blank token", runner, "backend: orchard\norchard: {url: \"https://o.example.com\", service_account: tarty, token: \" \"}\n", nil,
			[]string{"orchard.token"}, nil},
		{"ca file missing", runner, orchardYAML + "  ca_file: " + filepath.Join(dir, "nope.pem") + "\n", nil, []string{"orchard.ca_file"}, nil},
		{"fleet too large", runner, "runners: {max: 1001}\n" + orchardYAML, nil, []string{"runners.max"}, nil},
		{"worker labels not a mapping", runner, orchardYAML + "  worker_labels: [a, b]\n", nil, []string{"orchard.worker_labels"}, nil},
		{"worker label given twice", runner, orchardYAML + "  worker_labels: {pool: a, pool: b}\n", nil, []string{"orchard.worker_labels.pool"}, nil},
		{"worker label value not a string", runner, orchardYAML + "  worker_labels: {pool: [a]}\n", nil, []string{"orchard.worker_labels.pool"}, nil},
		{"worker label with a space", runner, orchardYAML + "  worker_labels: {pool: \"a b\"}\n", nil, []string{"orchard.worker_labels.pool"}, nil},
		{"openssh cannot use the port-forward", runner, orchardYAML + "ssh: {client: openssh}\n", nil, []string{"ssh.client"}, nil},
		{"unknown backend", "", "rebuild: {command: x}\nbackend: kubernetes\n", nil, []string{"backend"}, nil},
		{"orchard keys with backend local", "", "rebuild: {command: x}\norchard: {url: \"https://o.example.com\"}\n", nil, []string{"orchard"}, nil},
		{"worker labels with backend local", "", "rebuild: {command: x}\norchard: {worker_labels: {pool: ci}}\n", nil, []string{"orchard"}, nil},
		{"local: runners.max stays at most 2", "", "rebuild: {command: x}\nrunners: {max: 3}\n", nil, []string{"runners.max"}, nil},
		{"local: an orchard token in the environment is not read", "", "rebuild: {command: x}\n",
			map[string]string{EnvOrchardToken: "x", EnvOrchardBootstrapToken: "y"}, nil,
			func(t *testing.T, cfg *Config) {
				if cfg.Orchard.Token.IsSet() || cfg.Orchard.BootstrapToken.IsSet() {
					t.Errorf("orchard secrets read with backend local")
				}
			}},
		{"hook id negative", "", "rebuild: {command: x}\n", nil, []string{"github.hook_id"}, nil},
		{"empty shutdown command", "", "rebuild: {command: x}\nrunners: {shutdown_command: \"  \"}\n", nil, []string{"runners.shutdown_command"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{EnvGitHubToken: testToken, EnvWebhookSecret: testSecret}
			for k, v := range tt.env {
				vars[k] = v
			}
			gh := ""
			if tt.name == "hook id negative" {
				gh = "  organization: acme\n  hook_id: -1\n"
			}
			cfg, warnings, problems := parseWith(t, configWith(gh, tt.images, tt.rest), testEnv(vars))
			if !reflect.DeepEqual(problems, tt.want) {
				t.Fatalf("problem keys = %q, want %q", problems, tt.want)
			}
			if cfg != nil && len(warnings) != 0 {
				t.Errorf("warnings: %q", warnings)
			}
			if tt.validate != nil && cfg != nil {
				tt.validate(t, cfg)
			}
		})
	}
}

// TestExampleConfig: tarty.yaml.example is valid as shipped, draws no warning,
// and lists every key the loader knows.
func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile("../tarty.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, warnings, err := Parse(data, "tarty.yaml.example", secretsEnv()); err != nil || len(warnings) != 0 {
		t.Fatalf("example: %v, warnings %q", err, warnings)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		have[prefix] = true
		if m, ok := v.(map[string]any); ok {
			for k, sub := range m {
				walk(joinPath(prefix, k), sub)
			}
		}
	}
	walk("", doc)
	var missing []string
	for _, key := range configKeys(reflect.TypeOf(Config{}), "") {
		if !have[key] {
			missing = append(missing, key)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("tarty.yaml.example lacks %q", missing)
	}
}

// configKeys lists every yaml key path of a config struct type.
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := joinPath(prefix, name)
		keys = append(keys, path)
		if ft := t.Field(i).Type; ft.Kind() == reflect.Struct && ft != durationType {
			keys = append(keys, configKeys(ft, path)...)
		}
	}
	return keys
}
