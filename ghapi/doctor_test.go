package ghapi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tartyci/tarty/ghapi/fakegithub"
)

func TestRunnerGroupAccess(t *testing.T) {
	ctx := context.Background()

	t.Run("default group", func(t *testing.T) {
		s := newFake(t, fakegithub.Config{})
		a, ok, err := newTestClient(t, s, nil).RunnerGroupAccess(ctx)
		if err != nil || !ok {
			t.Fatalf("= %+v, %v, %v", a, ok, err)
		}
		if a.ID != 1 || a.Name != "Default" || a.Visibility != "all" || a.AllowsPublicRepositories || a.Repositories != nil {
			t.Errorf("got %+v", a)
		}
	})

	t.Run("selected repositories", func(t *testing.T) {
		s := newFake(t, fakegithub.Config{})
		s.AddRepo("app")
		s.AddRepo("lib")
		s.AddRepo("web")
		id := s.AddRunnerGroupWith(fakegithub.RunnerGroup{Name: "macs", Visibility: "selected",
			AllowsPublicRepositories: true, Repositories: []string{"web", "app"}})
		a, ok, err := newTestClient(t, s, func(o *Options) { o.RunnerGroup = "Macs" }).RunnerGroupAccess(ctx)
		if err != nil || !ok {
			t.Fatalf("= %+v, %v, %v", a, ok, err)
		}
		if a.ID != id || a.Name != "macs" || a.Visibility != "selected" || !a.AllowsPublicRepositories ||
			!slices.Equal(a.Repositories, []string{"acme/app", "acme/web"}) {
			t.Errorf("got %+v", a)
		}
	})

	t.Run("missing group", func(t *testing.T) {
		s := newFake(t, fakegithub.Config{})
		_, ok, err := newTestClient(t, s, func(o *Options) { o.RunnerGroup = "macs" }).RunnerGroupAccess(ctx)
		if !ok || !errors.Is(err, ErrRunnerGroup) || !strings.Contains(err.Error(), "it has: Default") {
			t.Fatalf("ok %v, err %v", ok, err)
		}
	})

	t.Run("selected repositories not readable", func(t *testing.T) {
		s := newFake(t, fakegithub.Config{})
		id := s.AddRunnerGroupWith(fakegithub.RunnerGroup{Name: "macs", Visibility: "selected"})
		s.Inject(fakegithub.Fault{Path: "/orgs/acme/actions/runner-groups/*/repositories", Kind: fakegithub.Forbidden, Times: -1})
		_, _, err := newTestClient(t, s, func(o *Options) { o.RunnerGroup = "macs" }).RunnerGroupAccess(ctx)
		var ae *APIError
		if !errors.As(err, &ae) || !ae.Permanent() || !strings.Contains(ae.Fix, "Self-hosted runners: read and write") {
			t.Fatalf("err %v (group %d)", err, id)
		}
	})

	t.Run("repository runners", func(t *testing.T) {
		s := newFake(t, fakegithub.Config{})
		s.AddRepo("app")
		a, ok, err := newTestClient(t, s, func(o *Options) { o.Repository = "app" }).RunnerGroupAccess(ctx)
		if ok || err != nil || a.Name != "" {
			t.Fatalf("= %+v, %v, %v", a, ok, err)
		}
	})
}

func TestEnterpriseVersion(t *testing.T) {
	ctx := context.Background()
	for _, want := range []string{"", "3.9.2", "3.14.0"} {
		s := newFake(t, fakegithub.Config{EnterpriseVersion: want})
		before := s.RateRemaining()
		got, err := newTestClient(t, s, nil).EnterpriseVersion(ctx)
		if err != nil || got != want {
			t.Errorf("EnterpriseVersion = %q, %v; want %q", got, err, want)
		}
		if s.RateRemaining() != before {
			t.Errorf("cost %d requests of the rate limit", before-s.RateRemaining())
		}
	}

	s := newFake(t, fakegithub.Config{})
	_, err := newTestClient(t, s, func(o *Options) { o.Token = "ghp_wrong" }).EnterpriseVersion(ctx)
	if err == nil || !strings.Contains(err.Error(), "credentials were rejected") || strings.Contains(err.Error(), "ghp_wrong") {
		t.Fatalf("bad token: %v", err)
	}
}
