package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func setSecrets(t *testing.T) {
	t.Setenv("TARTY_GITHUB_TOKEN", "ghp_cli_test_token_value")
	t.Setenv("TARTY_WEBHOOK_SECRET", "cli-test-webhook-secret")
}

func TestCLI(t *testing.T) {
	setSecrets(t)
	t.Setenv("TARTY_CONFIG", "")
	const good = "../../config/testdata/minimal.yaml"
	const bad = "../../config/testdata/issue-example.yaml"
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{"no command", nil, 2, nil, []string{"Usage: tarty"}, true},
		{"help flag", []string{"-h"}, 0, []string{"Usage: tarty", "validate", "version"}, nil, false},
		{"help command", []string{"help"}, 0, []string{"Usage: tarty"}, nil, false},
		{"help of a command", []string{"help", "validate"}, 0, []string{"Usage: tarty validate", "-config"}, nil, false},
		{"help of unknown", []string{"help", "frob"}, 2, nil, []string{`unknown command "frob"`}, true},
		{"unknown command", []string{"frob"}, 2, nil, []string{`unknown command "frob"`, "Usage: tarty"}, true},
		{"unknown global flag", []string{"--frob", "validate"}, 2, nil, []string{"flag provided but not defined"}, true},
		{"unknown command flag", []string{"validate", "--frob"}, 2, nil, []string{"flag provided but not defined", "Usage: tarty validate"}, true},
		{"stray argument", []string{"validate", "extra"}, 2, nil, []string{`unexpected argument "extra"`}, true},
		{"version", []string{"version"}, 0, []string{"tarty ", "commit ", "go1."}, nil, false},
		{"validate, --config first", []string{"--config", good, "validate"}, 0, []string{"config OK", "organisation acme"}, nil, false},
		{"validate, --config after", []string{"validate", "--config", good}, 0, []string{"config OK"}, nil, false},
		{"validate, --config=", []string{"validate", "--config=" + good}, 0, []string{"config OK"}, nil, false},
		{"validate, problems", []string{"validate", "--config", bad}, 2, nil,
			[]string{"github.orgnization", "github.organization", "rebuild.hour"}, true},
		{"validate, missing file", []string{"validate", "--config", "nope.yaml"}, 2, nil,
			[]string{"nope.yaml", "not found", "TARTY_CONFIG"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if tt.noStdout && stdout != "" {
				t.Errorf("unexpected stdout: %s", stdout)
			}
		})
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	setSecrets(t)
	t.Setenv("TARTY_CONFIG", "../../config/testdata/minimal.yaml")
	if code, _, stderr := runCLI(t, "validate"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// --config beats $TARTY_CONFIG.
	if code, _, _ := runCLI(t, "validate", "--config", "../../config/testdata/issue-example.yaml"); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}

func TestDefaultConfigPath(t *testing.T) {
	setSecrets(t)
	t.Setenv("TARTY_CONFIG", "")
	dir := t.TempDir()
	data, err := os.ReadFile("../../config/testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tarty.yaml"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	if code, stdout, stderr := runCLI(t, "validate"); code != 0 || !strings.Contains(stdout, "./tarty.yaml") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
}

// The example must always validate, so it cannot drift from the code.
func TestExampleConfigValidates(t *testing.T) {
	setSecrets(t)
	code, stdout, stderr := runCLI(t, "validate", "--config", "../../tarty.yaml.example")
	if code != 0 {
		t.Fatalf("tarty.yaml.example: exit %d\n%s%s", code, stdout, stderr)
	}
	if stderr != "" {
		t.Errorf("warnings for the example: %s", stderr)
	}
}

func TestSecretsNotPrinted(t *testing.T) {
	setSecrets(t)
	_, stdout, stderr := runCLI(t, "validate", "--config", "../../tarty.yaml.example")
	for _, s := range []string{"ghp_cli_test_token_value", "cli-test-webhook-secret"} {
		if strings.Contains(stdout+stderr, s) {
			t.Errorf("output shows a secret: %s%s", stdout, stderr)
		}
	}
}
