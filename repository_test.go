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
