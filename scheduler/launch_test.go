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
