package sshexec_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tartyci/tarty/internal/sshdtest"
	"github.com/tartyci/tarty/sshexec"
)

func TestForgetImageHostKey(t *testing.T) {
	for _, kind := range clientKinds {
		t.Run(kind, func(t *testing.T) {
			srv := sshdtest.Start(t)
			s := newSetup(t, srv, kind)
			c := s.client(t)
			ctx := ctxT(t, time.Minute)
			oldFP := srv.HostKey.Fingerprint()
			for _, im := range []string{image, "other-image"} {
				if err := c.Run(ctx, im, "127.0.0.1", "true", nil, nil, nil); err != nil {
					t.Fatalf("first use of %s: %v", im, err)
				}
			}

			got, err := sshexec.ForgetImageHostKey(s.opts.KnownHostsFile, image)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, []string{oldFP}) {
				t.Errorf("forgot %q, want [%s]", got, oldFP)
			}
			got, err = sshexec.ForgetImageHostKey(s.opts.KnownHostsFile, image)
			if err != nil || len(got) != 0 {
				t.Errorf("second time: %q, %v; want nothing", got, err)
			}

			// A re-pulled image presents a new key: the forgotten image trusts
			// it on first use, the other image still refuses it.
			srv.Stop()
			srv.RotateHostKey()
			srv.Start()
			if err := c.Run(ctx, image, "127.0.0.1", "true", nil, nil, nil); err != nil {
				t.Fatalf("after forgetting: %v", err)
			}
			var hk *sshexec.HostKeyError
			if err := c.Run(ctx, "other-image", "127.0.0.1", "true", nil, nil, nil); !errors.As(err, &hk) {
				t.Fatalf("other image after the key changed: %v, want a HostKeyError", err)
			}
		})
	}

	t.Run("invalid names", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "known_hosts")
		for _, name := range []string{"", "#runner", "-runner", "my runner", "run\nner"} {
			if _, err := sshexec.ForgetImageHostKey(file, name); err == nil {
				t.Errorf("%q accepted", name)
			}
		}
		if _, err := sshexec.ForgetImageHostKey("", "runner"); err == nil {
			t.Error("no known hosts file accepted")
		}
	})
}
