package sshdtest

import (
	"fmt"
	"strings"
	"testing"
)

// recorder stands in for a test to observe Require's skip or failure.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()               {}
func (r *recorder) Skip(args ...any)      { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatal(args ...any)     { r.failed = fmt.Sprint(args...) }
func (r *recorder) Fatalf(string, ...any) { r.failed = "fatalf" }

func TestRequireMissingBinary(t *testing.T) {
	t.Setenv("TARTY_REQUIRE_SSHD", "")
	r := &recorder{TB: t}
	Require(r, "no-such-sshd-tarty", "/nonexistent/sshd")
	if r.failed != "" || !strings.Contains(r.skipped, "no-such-sshd-tarty not found") {
		t.Errorf("without TARTY_REQUIRE_SSHD: skipped %q, failed %q; want a skip", r.skipped, r.failed)
	}
	t.Setenv("TARTY_REQUIRE_SSHD", "1")
	r = &recorder{TB: t}
	Require(r, "no-such-sshd-tarty")
	if !strings.Contains(r.failed, "TARTY_REQUIRE_SSHD=1") {
		t.Errorf("with TARTY_REQUIRE_SSHD=1: failed %q; want a failure", r.failed)
	}
}
