package ghapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/ghapi/fakegithub"
)

func TestJITConfig(t *testing.T) {
	wantLabels := []string{"self-hosted", "macOS", "ARM64", "tarty", "m2"}
	tests := []struct {
		name       string
		repository string
		group      string // RunnerGroup option; the fake also gets a group "Mac Minis"
		wantScope  string
		wantGroup  func(macGroup int64) int64
		wantPath   string
	}{
		{"org default group", "", "", "", func(int64) int64 { return 1 }, "/orgs/acme/actions/runners/generate-jitconfig"},
		{"org group by name", "", "mac minis", "", func(g int64) int64 { return g }, "/orgs/acme/actions/runners/generate-jitconfig"},
		{"repo short name", "app", "", "acme/app", func(int64) int64 { return 1 }, "/repos/acme/app/actions/runners/generate-jitconfig"},
		{"repo full name", "acme/app", "mac minis", "acme/app", func(int64) int64 { return 1 }, "/repos/acme/app/actions/runners/generate-jitconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, fakegithub.Config{})
			s.AddRepo("app")
			macGroup := s.AddRunnerGroup("Mac Minis")
			c := newTestClient(t, s, func(o *Options) {
				o.Repository, o.RunnerGroup, o.Labels = tt.repository, tt.group, []string{"tarty", "m2", "TARTY"}
			})
			ctx := context.Background()

			id, enc, err := c.JITConfig(ctx, "tarty-mac-1a2b3c4d")
			if err != nil {
				t.Fatal(err)
			}
			reqs := s.JITRequests()
			if len(reqs) != 1 {
				t.Fatalf("JIT requests = %+v", reqs)
			}
			r := reqs[0]
			if id != r.RunnerID || enc != r.Encoded || enc == "" {
				t.Errorf("got id %d, config %d bytes; fake issued %d", id, len(enc), r.RunnerID)
			}
			if r.Scope != tt.wantScope || r.Name != "tarty-mac-1a2b3c4d" || r.WorkFolder != "_work" {
				t.Errorf("request scope %q name %q work %q", r.Scope, r.Name, r.WorkFolder)
			}
			if !slices.Equal(r.Labels, wantLabels) {
				t.Errorf("labels sent = %v, want %v", r.Labels, wantLabels)
			}
			if want := tt.wantGroup(macGroup); r.RunnerGroupID != want {
				t.Errorf("runner group = %d, want %d", r.RunnerGroupID, want)
			}
			if s.Calls("POST", tt.wantPath) != 1 {
				t.Errorf("calls: %v", s.CallLog())
			}

			// The group is resolved once; a second registration reuses it.
			if _, _, err := c.JITConfig(ctx, "tarty-mac-5e6f7a8b"); err != nil {
				t.Fatal(err)
			}
			wantGroupCalls := 1
			if tt.repository != "" {
				wantGroupCalls = 0
			}
			if n := s.Calls("GET", "/orgs/acme/actions/runner-groups"); n != wantGroupCalls {
				t.Errorf("runner-group lookups = %d, want %d", n, wantGroupCalls)
			}

			// A taken name is a typed 409 that names the operation and request.
			_, enc2, err := c.JITConfig(ctx, "tarty-mac-1a2b3c4d")
			if err == nil || enc2 != "" {
				t.Fatalf("duplicate name: err %v", err)
			}
			var nt interface{ NameTaken() bool }
			if !errors.As(err, &nt) || !nt.NameTaken() || !errors.Is(err, ErrRunnerNameTaken) {
				t.Fatalf("duplicate name: %T %v is not NameTaken", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "github: generate JIT config for tarty-mac-1a2b3c4d: 409 Conflict") ||
				!strings.Contains(msg, "(request ") {
				t.Errorf("error = %q", msg)
			}
			if strings.Contains(msg, enc) || strings.Contains(msg, s.Token()) {
				t.Errorf("error leaks a secret: %q", msg)
			}
			if tarty.IsBusy(err) {
				t.Error("409 must not look busy")
			}
		})
	}
}

func TestJITConfigUnknownGroup(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	s.AddRunnerGroup("linux")
	c := newTestClient(t, s, func(o *Options) { o.RunnerGroup = "macs" })
	_, _, err := c.JITConfig(context.Background(), "tarty-x-1")
	if err == nil || !strings.Contains(err.Error(), `no such runner group (it has: Default, linux)`) {
		t.Fatalf("err = %v", err)
	}
	if len(s.JITRequests()) != 0 {
		t.Error("registered without a group")
	}
}

func TestListRunnersPages(t *testing.T) {
	for _, repo := range []string{"", "app"} {
		t.Run("repo="+repo, func(t *testing.T) {
			s := newFake(t, fakegithub.Config{})
			scope := ""
			if repo != "" {
				scope = s.AddRepo(repo)
			}
			want := map[string]tarty.Runner{}
			for i := 0; i < 250; i++ {
				name := fmt.Sprintf("tarty-mac-%03d", i)
				if i%5 == 0 {
					name = fmt.Sprintf("other-%03d", i)
				}
				r := s.AddRunner(scope, name, "self-hosted")
				sr := tarty.Runner{ID: r.ID, Name: name}
				switch i % 3 {
				case 1:
					_ = s.SetRunnerStatus(r.ID, "online")
					sr.Online = true
				case 2:
					_ = s.SetRunnerBusy(r.ID, true)
					sr.Online, sr.Busy = true, true
				}
				if strings.HasPrefix(name, "tarty-mac-") {
					want[name] = sr
				}
			}
			// Organisation scope: one more match; repository scope: another scope, not listed.
			if e := s.AddRunner("", "tarty-mac-elsewhere"); repo == "" {
				want[e.Name] = tarty.Runner{ID: e.ID, Name: e.Name}
			}
			c := newTestClient(t, s, func(o *Options) { o.Repository = repo })

			got, err := c.ListRunners(context.Background(), "tarty-mac-")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d runners, want %d", len(got), len(want))
			}
			for _, r := range got {
				if want[r.Name] != r {
					t.Errorf("runner %+v, want %+v", r, want[r.Name])
				}
			}
			path := "/orgs/acme/actions/runners"
			if repo != "" {
				path = "/repos/acme/app/actions/runners"
			}
			if n := s.Calls("GET", path); n != 3 {
				t.Errorf("pages fetched = %d, want 3", n)
			}
		})
	}
}

func TestRemoveRunner(t *testing.T) {
	tests := []struct {
		name     string
		repo     string
		setup    func(s *fakegithub.Server, scope string) int64
		wantBusy bool
		wantGone bool
	}{
		{"idle is removed (204)", "", func(s *fakegithub.Server, scope string) int64 {
			return s.AddRunner(scope, "tarty-1").ID
		}, false, true},
		{"already gone is success (404)", "", func(*fakegithub.Server, string) int64 { return 424242 }, false, true},
		{"busy is a retryable error (422)", "", func(s *fakegithub.Server, scope string) int64 {
			r := s.AddRunner(scope, "tarty-1")
			_ = s.SetRunnerBusy(r.ID, true)
			return r.ID
		}, true, false},
		{"repo idle", "app", func(s *fakegithub.Server, scope string) int64 {
			return s.AddRunner(scope, "tarty-1").ID
		}, false, true},
		{"repo busy", "app", func(s *fakegithub.Server, scope string) int64 {
			r := s.AddRunner(scope, "tarty-1")
			_ = s.SetRunnerBusy(r.ID, true)
			return r.ID
		}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, fakegithub.Config{})
			scope := ""
			if tt.repo != "" {
				scope = s.AddRepo(tt.repo)
			}
			id := tt.setup(s, scope)
			c := newTestClient(t, s, func(o *Options) { o.Repository = tt.repo })
			err := c.RemoveRunner(context.Background(), id)
			if tt.wantBusy {
				if !tarty.IsBusy(err) || !errors.Is(err, ErrRunnerBusy) {
					t.Fatalf("err = %v, want busy", err)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("github: remove runner %d: 422", id)) || !strings.Contains(err.Error(), "(request ") {
					t.Errorf("error = %q", err)
				}
			} else if err != nil {
				t.Fatalf("err = %v", err)
			}
			_, exists := s.RunnerByName("tarty-1")
			if exists == tt.wantGone {
				t.Errorf("runner exists = %v after remove", exists)
			}
		})
	}
}
