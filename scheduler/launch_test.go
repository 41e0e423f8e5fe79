package scheduler

import "testing"

func TestRunnerCommand(t *testing.T) {
	tests := []struct{ workDir, want string }{
		{"~/actions-runner", `export TARTY_RUNNER_NAME='tp-1'; cd "$HOME"/'actions-runner' && ACTIONS_RUNNER_INPUT_JITCONFIG="$(cat)" ./run.sh; sudo -n shutdown -h now`},
		{"/opt/it's here", `export TARTY_RUNNER_NAME='tp-1'; cd '/opt/it'\''s here' && ACTIONS_RUNNER_INPUT_JITCONFIG="$(cat)" ./run.sh; sudo -n shutdown -h now`},
	}
	for _, tt := range tests {
		if got := runnerCommand("tp-1", tt.workDir, DefaultShutdownCommand); got != tt.want {
			t.Errorf("runnerCommand(%q) =\n  %s\nwant\n  %s", tt.workDir, got, tt.want)
		}
	}
}

func TestParseRunnerVersion(t *testing.T) {
	for out, want := range map[string]string{"2.329.0\n": "2.329.0", "v2.330.1": "2.330.1", "Runner 2.331.0 (x)": "2.331.0"} {
		if got, err := parseRunnerVersion(out); err != nil || got != want {
			t.Errorf("parseRunnerVersion(%q) = %q, %v", out, got, err)
		}
	}
	for _, out := range []string{"", "command not found", "1.2"} {
		if _, err := parseRunnerVersion(out); err == nil {
			t.Errorf("parseRunnerVersion(%q) found a version", out)
		}
	}
}
