package tartvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestClassifiers(t *testing.T) {
	t.Parallel()
	type want struct{ notFound, notRunning, already, limit, noIP bool }
	cases := []struct {
		exit   int
		output string
		want   want
	}{
		{2, `the specified VM "x" does not exist`, want{notFound: true}},
		{1, `Error: the specified VM "x" does not exist`, want{notFound: true}},
		{1, `does not exist`, want{}}, // exit 1 without tart's wording is something else
		{64, `Error: failed to rename a non-existent local VM: x`, want{notFound: true}},
		{2, `VM "x" is not running`, want{notRunning: true}},
		{1, `VM "x" is not running`, want{}},
		{2, `VM "x" is already running!`, want{already: true}},
		{1, "There is already a running VM with the same MAC address!\nThe number of VMs exceeds the system limit (other running VMs: a, b)", want{limit: true}},
		{1, `Error Domain=VZErrorDomain Code=6 "The maximum supported number of active virtual machines has been reached."`, want{limit: true}},
		{1, `no IP address found, is your VM running?`, want{noIP: true}},
		{1, `Error Domain=VZErrorDomain Code=1 "The virtual machine failed to start."`, want{}},
	}
	for _, tc := range cases {
		e := &Error{Verb: "run", Name: "x", ExitCode: tc.exit, output: tc.output, Stderr: firstLine([]byte(tc.output))}
		got := want{e.NotFound(), e.NotRunning(), e.AlreadyRunning(), e.VMLimit(), e.NoIP()}
		if got != tc.want {
			t.Errorf("exit %d %q: %+v, want %+v", tc.exit, tc.output, got, tc.want)
		}
		wrapped := errors.Join(errors.New("launch"), e)
		if NotFound(wrapped) != tc.want.notFound || VMLimit(wrapped) != tc.want.limit {
			t.Errorf("package funcs do not look through wrapping for %q", tc.output)
		}
	}
	if NotFound(nil) || VMLimit(errors.New("The number of VMs exceeds the system limit")) {
		t.Error("classifiers must only accept *Error")
	}
}

func TestRaceClassifiers(t *testing.T) {
	t.Parallel()
	type want struct{ running, ipRetry, crashed, missing, fix bool }
	cases := []struct {
		verb   string
		exit   int
		output string
		want   want
	}{
		{"delete", 1, `VM "x" is running`, want{running: true}},
		{"delete", 2, `VM "x" is not running`, want{}},
		{"run", 2, `VM "x" is already running!`, want{}},
		{"ip", 1, "no IP address found", want{ipRetry: true}},
		{"ip", 1, `Error: Truncated(name: "truncated DHCPD leases file")`, want{ipRetry: true}},
		{"ip", 1, `Error: UnexpectedFormat(name: "unexpected DHCPD leases file format", message: "x", line: 3)`, want{ipRetry: true}},
		{"ip", 2, `the specified VM "x" does not exist`, want{}},
		{"ip", 1, "VM is missing some of its files (config.json, disk.img or nvram.bin)", want{missing: true}},
		{"get", 1, "no IP address found", want{}},
		{"run", 0, "guest has stopped the virtual machine due to error: Error Domain=VZErrorDomain Code=1", want{crashed: true}},
		{"run", 0, "virtual machine's network attachment <VZVirtioNetworkDevice> has been disconnected with error: x", want{crashed: true}},
		{"run", 0, "guest has stopped the virtual machine", want{}},
		{"run", 1, `Error Domain=VZErrorDomain Code=1 "The virtual machine failed to start." UserInfo={}`, want{fix: true}},
		{"run", 1, "Failed to generate keypair", want{fix: true}},
		{"run", 1, `Error Domain=VZErrorDomain Code=2 "Failed to lock auxiliary storage."`, want{}},
	}
	for _, tc := range cases {
		e := &Error{Verb: tc.verb, Name: "x", ExitCode: tc.exit, output: tc.output, Stderr: firstLine([]byte(tc.output))}
		got := want{e.VMRunning(), e.IPRetryable(), e.GuestCrashed(), e.MissingFiles(), e.HostFix() != ""}
		if got != tc.want {
			t.Errorf("%s exit %d %q: %+v, want %+v", tc.verb, tc.exit, tc.output, got, tc.want)
		}
		wrapped := fmt.Errorf("launch: %w", e)
		if VMRunning(wrapped) != tc.want.running || IPRetryable(wrapped) != tc.want.ipRetry || GuestCrashed(wrapped) != tc.want.crashed {
			t.Errorf("package funcs do not look through wrapping for %q", tc.output)
		}
	}
	cut := &Error{Verb: "ip", ExitCode: 1, output: "no IP address found", ctxErr: context.Canceled}
	if cut.IPRetryable() {
		t.Error("a cancelled ip is not worth retrying")
	}
}

func TestErrorLine(t *testing.T) {
	t.Parallel()
	in := "Failed to perform garbage collection: permission denied\nVM \"x\" is running\n"
	if got := errorLine([]byte(in)); got != `VM "x" is running` {
		t.Errorf("errorLine = %q", got)
	}
	if got := errorLine([]byte("Failed to perform garbage collection: x\n")); got != "Failed to perform garbage collection: x" {
		t.Errorf("errorLine of only the warning = %q", got)
	}
}

func TestLineWriter(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	w := &lineWriter{w: &out}
	// tart's interactive logger redraws the last line; CI mode prints lines.
	for _, chunk := range []string{"pulling manifest...\n0", "%\n\x1b[1A\r\x1b[J10%\n", "\r\n", "partial"} {
		w.Write([]byte(chunk))
	}
	if got := out.String(); got != "pulling manifest...\n0%\n10%\n" {
		t.Errorf("lines = %q", got)
	}
}

func TestExplainingLine(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"There is already a running VM with the same MAC address!\nResetting VM to assign a new MAC address...\nThe number of VMs exceeds the system limit\n": "The number of VMs exceeds the system limit",
		"Error: --vnc and --vnc-experimental are mutually exclusive\nUsage: tart run <name>\n  See 'tart run --help' for more information.\n":                 "Error: --vnc and --vnc-experimental are mutually exclusive",
		"\n\n": "",
	}
	for in, want := range cases {
		if got := explainingLine([]byte(in)); got != want {
			t.Errorf("explainingLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseGetSample(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("testdata", "get-2.32.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseGet(b)
	want := VMConfig{OS: "darwin", CPU: 4, Memory: 8192, Disk: 50, DiskFormat: "raw", Size: "22.871", Display: "1024x768", State: "stopped"}
	if err != nil || got != want {
		t.Errorf("parseGet = %+v, %v; want %+v", got, err, want)
	}
	// Older tart: no OS, DiskFormat or State.
	got, err = parseGet([]byte(`{"CPU":4,"Memory":8192,"Disk":50,"Size":"1.000","Display":"1024x768","Running":true}`))
	if err != nil || got.State != "running" || !got.Running || got.OS != "" {
		t.Errorf("parseGet(old) = %+v, %v", got, err)
	}
}
