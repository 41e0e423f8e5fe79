package ghapi

import (
	"context"
	"strings"
	"testing"

	"github.com/tartyci/tarty/ghapi/fakegithub"
)

func TestCheckAccess(t *testing.T) {
	tests := []struct {
		name    string
		repo    string
		token   string // "" = the right one
		group   string
		org     string // "" = the fake's
		deny    []string
		want    []string // substrings of the error; none = success
		notWant []string
	}{
		{name: "all good, organisation"},
		{name: "all good, repository", repo: "app"},
		{name: "bad token", token: "ghp_nope", want: []string{"credentials were rejected", "401 Unauthorized", "Bad credentials"}},
		{name: "unknown organisation", org: "nobody", want: []string{`organization "nobody" is not visible`}},
		{name: "no runner permission, organisation", deny: []string{"/orgs/acme/actions/runners"},
			want:    []string{`"Self-hosted runners: read and write"`, "admin:org", "github: list runners: 403 Forbidden"},
			notWant: []string{"Actions: read"}},
		{name: "no runner permission, repository", repo: "app", deny: []string{"/repos/acme/app/actions/runners"},
			want: []string{`"Administration: read and write"`, "acme/app"}, notWant: []string{"Self-hosted"}},
		{name: "no actions permission", deny: []string{"/repos/acme/*/actions/runs"},
			want: []string{`"Actions: read"`, "workflow runs of acme/app"}, notWant: []string{"Self-hosted"}},
		{name: "neither", deny: []string{"/orgs/acme/actions/runners", "/repos/acme/*/actions/runs"},
			want: []string{"Self-hosted runners", "Actions: read"}},
		{name: "repository not visible", repo: "app", deny: []string{"/repos/acme/app"},
			want: []string{"repository acme/app is not visible", "Metadata: read"}},
		{name: "no such runner group", group: "macs",
			want: []string{"no such runner group (it has: Default)", "github.runner_group"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, fakegithub.Config{})
			s.AddRepo("app")
			s.AddRepo("lib")
			for _, p := range tt.deny {
				s.Inject(fakegithub.Fault{Path: p, Kind: fakegithub.Forbidden, Times: -1})
			}
			c := newTestClient(t, s, func(o *Options) {
				o.Repository, o.RunnerGroup = tt.repo, tt.group
				if tt.token != "" {
					o.Token = tt.token
				}
				if tt.org != "" {
					o.Organization = tt.org
				}
			})
			err := c.CheckAccess(context.Background())
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("CheckAccess: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckAccess passed")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error has %q:\n%v", w, err)
				}
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("token in error: %v", err)
			}
		})
	}
}
