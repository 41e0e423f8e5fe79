package tarty

import (
	"reflect"
	"testing"
)

func TestLabelMatcher(t *testing.T) {
	m := NewLabelMatcher([]string{"tarty", "xcode-16"})
	tests := []struct {
		name   string
		labels []string
		want   bool
	}{
		{"own label with defaults", []string{"self-hosted", "macOS", "tarty"}, true},
		{"own label alone", []string{"tarty"}, true},
		{"case-insensitive", []string{"Self-Hosted", "MACOS", "Tarty", "arm64"}, true},
		{"two own labels", []string{"tarty", "xcode-16"}, true},
		{"self-hosted only is not ours", []string{"self-hosted"}, false},
		{"defaults only are not ours", []string{"self-hosted", "macOS", "ARM64"}, false},
		{"unknown label", []string{"self-hosted", "tarty", "linux"}, false},
		{"hosted runner", []string{"ubuntu-latest"}, false},
		{"no labels", nil, false},
		{"blank label does not match", []string{"tarty", ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.Match(tt.labels); got != tt.want {
				t.Errorf("Match(%q) = %v, want %v", tt.labels, got, tt.want)
			}
		})
	}
	var zero LabelMatcher
	if zero.Match([]string{"self-hosted"}) {
		t.Error("zero matcher matched")
	}
}

func TestRunnerLabels(t *testing.T) {
	got := RunnerLabels([]string{"tarty", "macos", " Xcode "})
	want := []string{"self-hosted", "macOS", "ARM64", "tarty", "Xcode"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RunnerLabels = %q, want %q", got, want)
	}
}
