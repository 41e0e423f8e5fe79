package config

import (
	"slices"
	"testing"
	"time"
)

// rebuild.runner_max_age: 21 days by default, a duration of at least a day.
func TestRunnerMaxAge(t *testing.T) {
	tests := []struct {
		name    string
		rebuild string
		want    time.Duration
		problem bool
	}{
		{"default", "rebuild: {command: x}\n", 21 * 24 * time.Hour, false},
		{"set", "rebuild: {command: x, runner_max_age: 240h}\n", 10 * 24 * time.Hour, false},
		{"a day", "rebuild: {command: x, runner_max_age: 24h}\n", 24 * time.Hour, false},
		{"too short", "rebuild: {command: x, runner_max_age: 23h}\n", 0, true},
		{"zero", "rebuild: {command: x, runner_max_age: 0s}\n", 0, true},
		{"not a duration", "rebuild: {command: x, runner_max_age: 21d}\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, problems := parseWith(t, configWith("", "", tt.rebuild), secretsEnv())
			if tt.problem {
				if !slices.Contains(problems, "rebuild.runner_max_age") {
					t.Errorf("problems %q, want rebuild.runner_max_age", problems)
				}
				return
			}
			if problems != nil {
				t.Fatalf("problems %q", problems)
			}
			if cfg.Rebuild.RunnerMaxAge != tt.want {
				t.Errorf("runner_max_age = %s, want %s", cfg.Rebuild.RunnerMaxAge, tt.want)
			}
		})
	}
}
