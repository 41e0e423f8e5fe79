package tarty

import "strings"

// DefaultRunnerLabels are the labels config.sh would add to a macOS arm64 runner.
// JIT registration adds none, so Tarty always sends them itself.
var DefaultRunnerLabels = []string{"self-hosted", "macOS", "ARM64"}

// LabelMatcher decides whether a job's runs-on labels are Tarty's demand.
// The zero value matches nothing.
type LabelMatcher struct {
	runner map[string]bool // every label a Tarty runner carries, lower-cased
	own    map[string]bool // the configured labels, lower-cased
}

// NewLabelMatcher returns a matcher for runners carrying DefaultRunnerLabels plus own.
func NewLabelMatcher(own []string) LabelMatcher {
	m := LabelMatcher{runner: map[string]bool{}, own: map[string]bool{}}
	for _, l := range DefaultRunnerLabels {
		m.runner[strings.ToLower(l)] = true
	}
	for _, l := range own {
		l = strings.ToLower(strings.TrimSpace(l))
		if l == "" {
			continue
		}
		m.runner[l] = true
		m.own[l] = true
	}
	return m
}

// Match reports whether every job label, compared case-insensitively, is one of
// the runner's labels and at least one of them is a configured label. The second
// rule keeps `runs-on: self-hosted` jobs of unrelated workflows from launching VMs.
func (m LabelMatcher) Match(jobLabels []string) bool {
	ownSeen := false
	for _, l := range jobLabels {
		l = strings.ToLower(strings.TrimSpace(l))
		if !m.runner[l] {
			return false
		}
		if m.own[l] {
			ownSeen = true
		}
	}
	return ownSeen
}

// RunnerLabels returns the labels to register a runner with: the defaults, then
// the configured ones, without duplicates (compared case-insensitively).
func RunnerLabels(own []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range append(append([]string{}, DefaultRunnerLabels...), own...) {
		k := strings.ToLower(strings.TrimSpace(l))
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, strings.TrimSpace(l))
	}
	return out
}
