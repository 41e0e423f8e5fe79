package ghapi

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tartyci/tarty/ghapi/fakegithub"
)

func newAppKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func TestAppAuthentication(t *testing.T) {
	key, keyPEM := newAppKey(t)
	_, otherPEM := newAppKey(t)
	const appID, instID = 123456, 987654
	tokenPath := "/app/installations/987654/access_tokens"

	tests := []struct {
		name       string
		app        App
		wantStatus int // 0 = works
	}{
		{"right key", App{ID: appID, InstallationID: instID, PrivateKey: keyPEM}, 0},
		{"wrong key", App{ID: appID, InstallationID: instID, PrivateKey: otherPEM}, http.StatusUnauthorized},
		{"wrong app id", App{ID: appID + 1, InstallationID: instID, PrivateKey: keyPEM}, http.StatusUnauthorized},
		{"wrong installation", App{ID: appID, InstallationID: 1, PrivateKey: keyPEM}, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, fakegithub.Config{App: &fakegithub.App{ID: appID, InstallationID: instID, PublicKey: &key.PublicKey}})
			if s.Token() != "" {
				t.Fatal("the fake must accept only App tokens here")
			}
			s.AddRunner("", "tarty-mac-1")
			// Both layouts: the token exchange must use the same API root.
			for i, base := range []string{s.EnterpriseURL(), "http://api.github.test/"} {
				app := tt.app
				c := newTestClient(t, s, func(o *Options) {
					o.Token, o.App, o.BaseURL, o.Transport = "", &app, base, dialTo(t, s.Addr())
				})
				ctx := context.Background()
				runners, err := c.ListRunners(ctx, "tarty-")
				if tt.wantStatus != 0 {
					var ae *APIError
					if !errors.As(err, &ae) || ae.StatusCode != tt.wantStatus {
						t.Fatalf("err = %T %v, want status %d", err, err, tt.wantStatus)
					}
					if !strings.Contains(err.Error(), "github: list runners: installation token: ") || strings.Contains(err.Error(), "PRIVATE KEY") ||
						!requestIDRe.MatchString(err.Error()) {
						t.Errorf("error = %q", err)
					}
					continue
				}
				if err != nil || len(runners) != 1 {
					t.Fatalf("ListRunners = %v, %v", runners, err)
				}
				if _, _, err := c.JITConfig(ctx, fmt.Sprintf("jit-%d", i)); err != nil {
					t.Fatal(err)
				}
				// An error after authentication carries no installation token.
				s.Inject(fakegithub.Fault{Kind: fakegithub.ServerError})
				_, err = c.ListRunners(ctx, "")
				if err == nil || strings.Contains(err.Error(), "ghs_") {
					t.Fatalf("err = %v", err)
				}
			}
			if tt.wantStatus == 0 {
				// One token per client (two clients), reused for every call.
				if n := s.Calls("POST", tokenPath); n != 2 {
					t.Errorf("token exchanges = %d, want 2 (%v)", n, s.CallLog())
				}
			}
		})
	}
}
