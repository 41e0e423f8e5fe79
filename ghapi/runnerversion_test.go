package ghapi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty/ghapi/fakegithub"
)

func TestCompareRunnerVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"2.336.0", "2.336.0", 0},
		{"2.336.0", "2.337.0", -1},
		{"2.337.0", "2.336.9", 1},
		{"2.99.0", "2.100.0", -1}, // numbers, not strings
		{"v2.330.1", "2.330.1", 0},
		{"3.0.0", "2.999.999", 1},
		{"garbage", "2.0.0", -1},
		{"2.0.0", "2.0", 1},
		{"+2.0.0", "2.0.0", -1},
	}
	for _, tt := range tests {
		if got := CompareRunnerVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	for v, ok := range map[string]bool{"2.336.0": true, "v2.336.0": true, "2.336": false, "2.336.0-beta": false, "": false, "2..0": false} {
		if IsRunnerVersion(v) != ok {
			t.Errorf("IsRunnerVersion(%q) = %v", v, !ok)
		}
	}
}

func TestRunnerReleases(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	day := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	s.SetRunnerReleases(
		fakegithub.RunnerRelease{Version: "2.335.0", PublishedAt: day},
		fakegithub.RunnerRelease{Version: "2.336.0", PublishedAt: day.Add(20 * 24 * time.Hour)},
		fakegithub.RunnerRelease{Version: "2.337.0", PublishedAt: day.Add(45 * 24 * time.Hour)},
		fakegithub.RunnerRelease{Version: "2.338.0", PublishedAt: day.Add(50 * 24 * time.Hour), Prerelease: true},
		fakegithub.RunnerRelease{Version: "2.339.0", PublishedAt: day.Add(51 * 24 * time.Hour), Draft: true},
		fakegithub.RunnerRelease{Version: "nightly", PublishedAt: day.Add(52 * 24 * time.Hour)},
	)
	c := newTestClient(t, s, func(o *Options) { o.BaseURL = s.URL() })
	rels, err := c.RunnerReleases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rels {
		got = append(got, r.Version)
	}
	if strings.Join(got, " ") != "2.337.0 2.336.0 2.335.0" || !rels[2].PublishedAt.Equal(day) {
		t.Errorf("releases = %v (%+v)", got, rels)
	}
	if n := s.Calls("GET", "/repos/actions/runner/releases"); n != 1 {
		t.Errorf("%d calls", n)
	}

	// A server without the repository (GitHub Enterprise Server) answers 404.
	s.Inject(fakegithub.Fault{Path: "/repos/actions/runner/releases", Kind: fakegithub.NotFound})
	_, err = c.RunnerReleases(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || !ae.NotFound() {
		t.Errorf("404: %v", err)
	}
	s.Inject(fakegithub.Fault{Path: "/repos/actions/runner/releases", Kind: fakegithub.ServerError})
	if _, err := c.RunnerReleases(context.Background()); !errors.As(err, &ae) || !ae.Temporary() {
		t.Errorf("502: %v", err)
	}
}

func TestOfferedRunnerVersion(t *testing.T) {
	for _, repo := range []string{"", "app"} {
		s := newFake(t, fakegithub.Config{EnterpriseVersion: "3.14.2"})
		s.AddRepo("app")
		c := newTestClient(t, s, func(o *Options) { o.Repository = repo })
		ctx := context.Background()
		v, err := c.OfferedRunnerVersion(ctx)
		if err != nil || v != fakegithub.DefaultRunnerVersion {
			t.Fatalf("repo %q: %q, %v", repo, v, err)
		}
		s.SetOfferedRunnerVersion("2.317.0")
		if v, _ := c.OfferedRunnerVersion(ctx); v != "2.317.0" {
			t.Errorf("repo %q: offered %q after the server changed", repo, v)
		}
		path := "/orgs/acme/actions/runners/downloads"
		if repo != "" {
			path = "/repos/acme/app/actions/runners/downloads"
		}
		if s.Calls("GET", path) != 2 {
			t.Errorf("repo %q: calls %v", repo, s.CallLog())
		}
		s.SetOfferedRunnerVersion("")
		if _, err := c.OfferedRunnerVersion(ctx); err == nil || !strings.Contains(err.Error(), "no osx-arm64 runner") {
			t.Errorf("repo %q: none offered: %v", repo, err)
		}
		s.Inject(fakegithub.Fault{Path: path, Kind: fakegithub.Forbidden})
		_, err = c.OfferedRunnerVersion(ctx)
		var ae *APIError
		if !errors.As(err, &ae) || !ae.Permanent() || !strings.Contains(ae.Fix, "read and write") {
			t.Errorf("repo %q: 403: %v", repo, err)
		}
	}
}
