package orchard_test

import (
	"context"
	"testing"

	"github.com/tartyci/tarty/orchard"
	"github.com/tartyci/tarty/orchard/fakeorchard"
)

func TestCanCreateVMs(t *testing.T) {
	for _, tt := range []struct {
		name  string
		roles []string
		want  bool
	}{
		{"read and write", []string{fakeorchard.RoleComputeRead, fakeorchard.RoleComputeWrite}, true},
		{"read only", []string{fakeorchard.RoleComputeRead}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := fakeorchard.New(fakeorchard.Config{})
			t.Cleanup(f.Close)
			f.AddAccount("probe", "probe-token-0123456789", tt.roles...)
			c := newClient(t, f, func(o *orchard.Options) { o.ServiceAccount, o.Token = "probe", "probe-token-0123456789" })
			got, err := c.CanCreateVMs(context.Background())
			if err != nil || got != tt.want {
				t.Fatalf("CanCreateVMs = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
