package tarty

import (
	"fmt"
	"net"
	"strings"
)

// RepositoryName reduces github.repository, given as "app" or "org/app", to
// the bare name, checking that it belongs to organization (compared
// case-insensitively, as GitHub logins are). An empty repository means the
// whole organisation and gives "". config, ghapi and webhook all accept both
// spellings through this one rule.
func RepositoryName(organization, repository string) (string, error) {
	repository = strings.TrimSpace(repository)
	if repository == "" {
		return "", nil
	}
	owner, name, hasOwner := strings.Cut(repository, "/")
	if !hasOwner {
		owner, name = organization, repository
	}
	switch {
	case name == "" || strings.Contains(name, "/"):
		return "", fmt.Errorf("repository %q must be NAME or %s/NAME", repository, organization)
	case !strings.EqualFold(owner, organization):
		return "", fmt.Errorf("repository %q is not in organization %q: it must be NAME or %s/NAME",
			repository, organization, organization)
	}
	return name, nil
}

// Owned reports whether name is one Tarty made under runners.name_prefix:
// "<prefix>-...". The dash keeps a prefix "tarty-mini" from owning the VMs of
// another Mac's "tarty-mini2". An empty prefix owns nothing.
func Owned(prefix, name string) bool {
	prefix = strings.TrimSuffix(prefix, "-")
	return prefix != "" && strings.HasPrefix(name, prefix+"-")
}

// LoopbackAddr reports whether the listen address host:port binds loopback
// only (localhost, 127.0.0.0/8 or ::1): the admin listener has no
// authentication, so config and the listener itself both hold it to that.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
