package sshexec_test

import (
	"testing"
	"time"

	"github.com/tartyci/tarty/internal/sshdtest"
)

// BenchmarkRun measures one Run of "true" against a local sshd: a whole
// connection (TCP, key exchange, auth, session) per call, as Tarty makes.
func BenchmarkRun(b *testing.B) {
	srv := sshdtest.Start(b)
	for _, kind := range clientKinds {
		b.Run(kind, func(b *testing.B) {
			c := newSetup(b, srv, kind).client(b)
			ctx := ctxT(b, 5*time.Minute)
			if err := c.Run(ctx, image, "127.0.0.1", "true", nil, nil, nil); err != nil {
				b.Fatal(err) // first use records the host key
			}
			for b.Loop() {
				if err := c.Run(ctx, image, "127.0.0.1", "true", nil, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
