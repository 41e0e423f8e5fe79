package tarty

import (
	"strings"
	"testing"
)

func TestRepositoryName(t *testing.T) {
	tests := []struct {
		repo, want, err string
	}{
		{"", "", ""},
		{"app", "app", ""},
		{" app ", "app", ""},
		{"acme/app", "app", ""},
		{"ACME/app", "app", ""},
		{"other/app", "", `not in organization "acme"`},
		{"acme/app/x", "", "must be NAME or acme/NAME"},
		{"acme/", "", "must be NAME"},
	}
	for _, tt := range tests {
		got, err := RepositoryName("acme", tt.repo)
		if got != tt.want || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("RepositoryName(acme, %q) = %q, %v; want %q, error containing %q", tt.repo, got, err, tt.want, tt.err)
		}
	}
}

func TestOwned(t *testing.T) {
	for _, tt := range []struct {
		prefix, name string
		want         bool
	}{
		{"tarty-mini", "tarty-mini-1a2b3c4d", true},
		{"tarty-mini-", "tarty-mini-1a2b3c4d", true},
		{"tarty-mini", "tarty-mini2-1a2b3c4d", false},
		{"tarty-mini", "tarty-mini", false},
		{"", "anything", false},
	} {
		if got := Owned(tt.prefix, tt.name); got != tt.want {
			t.Errorf("Owned(%q, %q) = %v", tt.prefix, tt.name, got)
		}
	}
}
