package tartvm_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tartyci/tarty/tartvm"
)

func TestParseDHCPLeaseTime(t *testing.T) {
	tests := []struct {
		name  string
		out   string
		lease time.Duration
		set   bool
		err   bool
	}{
		{"set", "{\n    DHCPLeaseTimeSecs = 600;\n}\n", 10 * time.Minute, true, false},
		{"among others", "{\n    DHCPDomainName = local;\n    DHCPLeaseTimeSecs = 86400;\n    Foo = 1;\n}\n", 24 * time.Hour, true, false},
		{"written as a string", "{\n    \"DHCPLeaseTimeSecs\" = \"3600\";\n}\n", time.Hour, true, false},
		{"missing key", "{\n    DHCPDomainName = local;\n}\n", tartvm.DefaultDHCPLeaseTime, false, false},
		{"empty dictionary", "{\n}\n", tartvm.DefaultDHCPLeaseTime, false, false},
		{"not a number", "{\n    DHCPLeaseTimeSecs = soon;\n}\n", 0, true, true},
		{"zero", "{\n    DHCPLeaseTimeSecs = 0;\n}\n", 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lease, set, err := tartvm.ParseDHCPLeaseTime(tt.out)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err == nil && (lease != tt.lease || set != tt.set) {
				t.Errorf("= %v, %v; want %v, %v", lease, set, tt.lease, tt.set)
			}
		})
	}
}

func TestDHCPLeaseTime(t *testing.T) {
	var got []string
	answer := func(out string, err error) tartvm.CommandFunc {
		return func(_ context.Context, name string, args ...string) ([]byte, error) {
			got = append([]string{name}, args...)
			return []byte(out), err
		}
	}
	lease, set, err := tartvm.DHCPLeaseTime(context.Background(), answer("{\n    DHCPLeaseTimeSecs = 600;\n}\n", nil))
	if err != nil || !set || lease != 10*time.Minute {
		t.Fatalf("= %v, %v, %v", lease, set, err)
	}
	if want := []string{"defaults", "read", tartvm.InternetSharingPlist, "bootpd"}; !slices.Equal(got, want) {
		t.Errorf("ran %q, want %q", got, want)
	}

	missing := "\nThe domain/default pair of (" + tartvm.InternetSharingPlist + ", bootpd) does not exist\n"
	lease, set, err = tartvm.DHCPLeaseTime(context.Background(), answer(missing, errors.New("exit status 1")))
	if err != nil || set || lease != tartvm.DefaultDHCPLeaseTime {
		t.Fatalf("missing: = %v, %v, %v", lease, set, err)
	}

	_, _, err = tartvm.DHCPLeaseTime(context.Background(), answer("", errors.New(`exec: "defaults": executable file not found in $PATH`)))
	if err == nil {
		t.Fatal("no defaults binary: no error")
	}
}
