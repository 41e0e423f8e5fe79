package tartvm_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/tartyci/tarty/tartvm"
	"github.com/tartyci/tarty/tartvm/faketart"
	"github.com/tartyci/tarty/tartvm/faketart/tarttest"
)

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseListSamples(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file string
		want []tartvm.VM
	}{
		{"list-2.30.json", []tartvm.VM{
			{Source: "local", Name: "tarty-mini-0a1b2c3d", Disk: 50, Size: 50, SizeOnDisk: 21, Running: true, State: "running"},
			{Source: "local", Name: "tarty-runner", Disk: 50, Size: 50, SizeOnDisk: 23, State: "stopped"},
			{Source: "OCI", Name: "ghcr.io/cirruslabs/macos-sequoia-base:latest", Disk: 50, Size: 50, SizeOnDisk: 23, State: "stopped"},
		}},
		{"list-2.32.json", []tartvm.VM{
			{Source: "local", Name: "tarty-mini-0a1b2c3d", Disk: 50, Size: 21, Accessed: date("2026-05-12T09:14:03Z"), Running: true, State: "running"},
			{Source: "local", Name: "tarty-mini-build-20260512T020000", Disk: 60, Size: 22, Accessed: date("2026-05-11T18:02:44Z"), State: "suspended"},
			{Source: "local", Name: "tarty-runner", Disk: 50, Size: 23, Accessed: date("2026-05-12T02:41:17Z"), State: "stopped"},
			{Source: "OCI", Name: "ghcr.io/cirruslabs/macos-tahoe-base:latest", Disk: 50, Size: 23, Accessed: date("2026-05-11T22:00:00Z"), State: "stopped"},
			{Source: "OCI", Name: "ghcr.io/cirruslabs/macos-tahoe-base@sha256:6f1c0e8b2a4d9e7f3c5b1a0d8e6f4c2b0a9d7e5f3c1b9a8d6e4f2c0b8a6d4e2f", Disk: 50, Size: 23, Accessed: date("2026-05-11T22:00:00Z"), State: "stopped"},
		}},
		{"list-running-only.json", []tartvm.VM{
			{Source: "local", Name: "old-a", Disk: 50, Size: 20, Running: true, State: "running"},
			{Source: "local", Name: "old-b", Disk: 50, Size: 20, State: "stopped"},
		}},
		{"list-empty.json", []tartvm.VM{}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := tartvm.ParseList(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseList(%s) =\n%+v\nwant\n%+v", tc.file, got, tc.want)
			}
		})
	}
}

func TestParseListTolerance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		want     []tartvm.VM
		err      bool
	}{
		{"no output", "", nil, false},
		{"compact and lower-case state", `[{"Name":"x","Source":"local","State":"Running"}]`,
			[]tartvm.VM{{Source: "local", Name: "x", Running: true, State: "running"}}, false},
		{"float and string sizes, unknown keys", `[{"Name":"x","Disk":50.0,"Size":"21","Future":{"a":1}}]`,
			[]tartvm.VM{{Name: "x", Disk: 50, Size: 21, State: "stopped"}}, false},
		{"bad date is ignored", `[{"Name":"x","Accessed":"yesterday","State":"stopped"}]`,
			[]tartvm.VM{{Name: "x", State: "stopped"}}, false},
		{"not JSON", "Name Disk Size\nx 50 20\n", nil, true},
		{"no name", `[{"Disk":50}]`, nil, true},
	}
	for _, tc := range cases {
		got, err := tartvm.ParseList([]byte(tc.in))
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: ParseList = %+v, %v; want %+v, err %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func BenchmarkParseList(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "list-2.32.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tartvm.ParseList(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListFake is a whole `tart list` round trip against the fake: the
// process start dominates.
func BenchmarkListFake(b *testing.B) {
	env := tarttest.New(b)
	for _, n := range []string{"a", "b", "c"} {
		if err := faketart.SeedVM(env.Home, n, faketart.VMOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	c := tartvm.New(tartvm.Options{Path: env.Bin, Home: env.Home})
	ctx := context.Background()
	for b.Loop() {
		if vms, err := c.List(ctx); err != nil || len(vms) != 3 {
			b.Fatal(vms, err)
		}
	}
}
