package ghapi

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v62/github"
)

// RunnerRelease is a published release of the GitHub Actions runner
// (actions/runner).
type RunnerRelease struct {
	Version     string // "2.337.0", without the tag's "v"
	PublishedAt time.Time
}

// The runner's repository on github.com, and the runner build Tarty's
// guests run.
const (
	runnerOwner = "actions"
	runnerRepo  = "runner"
	runnerOS    = "osx"
	runnerArch  = "arm64"
)

// RunnerReleases lists the runner's releases on the server the client talks
// to (GET /repos/actions/runner/releases: github.com has them; a GitHub
// Enterprise Server normally does not, and answers 404), newest first, one
// page of 100 (about three years of releases). Drafts, prereleases and tags
// that are not MAJOR.MINOR.PATCH are left out.
func (c *Client) RunnerReleases(ctx context.Context) ([]RunnerRelease, error) {
	op := "list releases of actions/runner"
	if err := c.blocked(op); err != nil {
		return nil, err
	}
	rels, resp, err := c.gh.Repositories.ListReleases(ctx, runnerOwner, runnerRepo, &github.ListOptions{PerPage: perPage})
	if err := c.check(op, resp, err, kindOther); err != nil {
		return nil, err
	}
	var out []RunnerRelease
	for _, r := range rels {
		v := strings.TrimPrefix(strings.TrimSpace(r.GetTagName()), "v")
		if r.GetDraft() || r.GetPrerelease() || r.PublishedAt == nil || !IsRunnerVersion(v) {
			continue
		}
		out = append(out, RunnerRelease{Version: v, PublishedAt: r.GetPublishedAt().Time})
	}
	sort.SliceStable(out, func(i, j int) bool { return CompareRunnerVersions(out[i].Version, out[j].Version) > 0 })
	return out, nil
}

// runnerFileVersion finds the version in a runner tarball's name
// ("actions-runner-osx-arm64-2.337.0.tar.gz").
var runnerFileVersion = regexp.MustCompile(`(\d+\.\d+\.\d+)`)

// OfferedRunnerVersion is the version of the macOS arm64 runner the server
// offers (GET /orgs/{org}/actions/runners/downloads, or the repository's
// with github.repository), read from the tarball's file name. It is the
// version a runner updates itself to when it starts, so on GitHub
// Enterprise Server it is the version the server asks for. Reading it needs
// the permission that manages the runners, which Tarty has.
func (c *Client) OfferedRunnerVersion(ctx context.Context) (string, error) {
	op := "list runner applications"
	if err := c.blocked(op); err != nil {
		return "", err
	}
	var (
		apps []*github.RunnerApplicationDownload
		resp *github.Response
		err  error
	)
	if c.repo != "" {
		apps, resp, err = c.gh.Actions.ListRunnerApplicationDownloads(ctx, c.org, c.repo)
	} else {
		apps, resp, err = c.gh.Actions.ListOrganizationRunnerApplicationDownloads(ctx, c.org)
	}
	if err := c.check(op, resp, err, kindOther); err != nil {
		return "", withSetupFix(err, c.runnerPermissionFix())
	}
	for _, a := range apps {
		if a.GetOS() != runnerOS || a.GetArchitecture() != runnerArch {
			continue
		}
		if v := runnerFileVersion.FindString(a.GetFilename()); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("github: %s: no version in file name %q", op, a.GetFilename())
	}
	return "", fmt.Errorf("github: %s: no %s-%s runner offered", op, runnerOS, runnerArch)
}

// IsRunnerVersion reports whether v is MAJOR.MINOR.PATCH.
func IsRunnerVersion(v string) bool {
	_, ok := parseRunnerVersion(v)
	return ok
}

// CompareRunnerVersions compares two MAJOR.MINOR.PATCH versions: -1 when a
// is older than b, 0 when equal, +1 when newer. An unreadable version is
// older than any readable one.
func CompareRunnerVersions(a, b string) int {
	pa, oka := parseRunnerVersion(a)
	pb, okb := parseRunnerVersion(b)
	switch {
	case !oka && !okb:
		return strings.Compare(a, b)
	case !oka:
		return -1
	case !okb:
		return 1
	}
	for i := range pa {
		if pa[i] != pb[i] {
			if pa[i] < pb[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func parseRunnerVersion(v string) ([3]int, bool) {
	var out [3]int
	parts := strings.Split(strings.TrimPrefix(strings.TrimSpace(v), "v"), ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return out, false
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return out, false
		}
		out[i] = n
	}
	return out, true
}
