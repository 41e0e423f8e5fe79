package fakegithub

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// What Tarty's upkeep reads (package upkeep): the actions runner's releases
// and the runner application the server offers, for the runner version
// guard; the organisation's and repositories' webhooks, their deliveries and
// redelivery attempts, for redelivering what failed while Tarty was down.

// DefaultRunnerVersion is the runner application the server offers until
// SetOfferedRunnerVersion changes it; the fake runner claims the same
// version (fakerunner.Version).
const DefaultRunnerVersion = "2.336.0"

// RunnerRelease is a release of actions/runner, as GET
// /repos/actions/runner/releases lists it.
type RunnerRelease struct {
	Version     string // "2.337.0"; the tag is "v" + Version
	PublishedAt time.Time
	Prerelease  bool
	Draft       bool
}

// Hook is a webhook of the organisation (Repository "") or of a repository
// ("owner/name"), as GET /orgs/{org}/hooks lists it. The server's own
// webhook (Config.WebhookURL) is hook Config.WebhookHookID of the
// organisation, unless SetWebhookRepository moves it; only it has
// deliveries.
type Hook struct {
	ID         int64
	Repository string
	URL        string
	Events     []string // default ["workflow_job"]
	Active     bool
}

// upkeepState is the fake's part for upkeep; guarded by Server.mu.
type upkeepState struct {
	releases    []RunnerRelease
	offered     string // "" = DefaultRunnerVersion
	noOffer     bool   // the downloads list has no osx-arm64 entry
	hooks       []Hook
	webhookRepo string // the server's webhook lives on this repository, not the organisation
	hooksDenied int    // every hook endpoint answers this status (403, 404); 0 = allowed
	redelivered []int64
}

func (s *Server) upkeepRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /repos/{owner}/{repo}/releases", s.listReleases)
	m.HandleFunc("GET /orgs/{org}/actions/runners/downloads", s.listRunnerDownloads)
	m.HandleFunc("GET /repos/{owner}/{repo}/actions/runners/downloads", s.listRunnerDownloads)
	m.HandleFunc("GET /orgs/{org}/hooks", s.listHooks)
	m.HandleFunc("GET /repos/{owner}/{repo}/hooks", s.listHooks)
	m.HandleFunc("GET /orgs/{org}/hooks/{id}", s.getHook)
	m.HandleFunc("GET /repos/{owner}/{repo}/hooks/{id}", s.getHook)
	m.HandleFunc("GET /orgs/{org}/hooks/{id}/deliveries", s.listHookDeliveries)
	m.HandleFunc("GET /repos/{owner}/{repo}/hooks/{id}/deliveries", s.listHookDeliveries)
	m.HandleFunc("POST /orgs/{org}/hooks/{id}/deliveries/{delivery}/attempts", s.postRedelivery)
	m.HandleFunc("POST /repos/{owner}/{repo}/hooks/{id}/deliveries/{delivery}/attempts", s.postRedelivery)
}

// SetRunnerReleases replaces the releases of actions/runner (default none),
// in any order; the API lists them newest first.
func (s *Server) SetRunnerReleases(rels ...RunnerRelease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up.releases = append([]RunnerRelease(nil), rels...)
}

// SetOfferedRunnerVersion sets the runner application the downloads
// endpoint offers (default DefaultRunnerVersion); "" offers no osx-arm64
// build at all.
func (s *Server) SetOfferedRunnerVersion(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up.offered, s.up.noOffer = v, v == ""
}

// AddHook adds a webhook (one without deliveries) and returns its ID.
func (s *Server) AddHook(h Hook) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.ID == 0 {
		h.ID = 500000 + int64(len(s.up.hooks)) + 1
	}
	if len(h.Events) == 0 {
		h.Events = []string{"workflow_job"}
	}
	s.up.hooks = append(s.up.hooks, h)
	return h.ID
}

// SetWebhookRepository makes the server's own webhook a hook of repository
// fullName instead of the organisation's ("" moves it back).
func (s *Server) SetWebhookRepository(fullName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up.webhookRepo = fullName
}

// DenyHooks makes every webhook endpoint answer status: 404 (a classic
// token without admin:org_hook: GitHub hides the hooks) or 403 (a
// fine-grained token or App without the webhooks permission); 0 allows
// them again.
func (s *Server) DenyHooks(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up.hooksDenied = status
}

// RedeliveryRequests lists the delivery IDs whose redelivery was requested
// (POST .../deliveries/{id}/attempts), in order.
func (s *Server) RedeliveryRequests() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.up.redelivered...)
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.PathValue("owner"), "actions") || !strings.EqualFold(r.PathValue("repo"), "runner") {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.mu.Lock()
	rels := append([]RunnerRelease(nil), s.up.releases...)
	s.mu.Unlock()
	sort.SliceStable(rels, func(i, j int) bool { return rels[i].PublishedAt.After(rels[j].PublishedAt) })
	lo, hi := page(w, r, len(rels))
	out := make([]map[string]any, 0, hi-lo)
	for i, rel := range rels[lo:hi] {
		tag := "v" + rel.Version
		out = append(out, map[string]any{
			"id": 100000 + lo + i, "tag_name": tag, "name": tag, "draft": rel.Draft, "prerelease": rel.Prerelease,
			"created_at":   rel.PublishedAt.Add(-time.Hour).UTC().Format(time.RFC3339),
			"published_at": rel.PublishedAt.UTC().Format(time.RFC3339),
			"html_url":     "https://github.com/actions/runner/releases/tag/" + tag,
			"url":          s.apiURL("repos/actions/runner/releases/" + strconv.Itoa(100000+lo+i)),
			"assets":       []any{},
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listRunnerDownloads(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, ok := s.scope(r)
	v, none := s.up.offered, s.up.noOffer
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	if v == "" {
		v = DefaultRunnerVersion
	}
	var out []map[string]any
	for _, p := range [][2]string{{"osx", "x64"}, {"osx", "arm64"}, {"linux", "x64"}, {"linux", "arm64"}, {"win", "x64"}} {
		if none && p[0] == "osx" && p[1] == "arm64" {
			continue
		}
		ext := ".tar.gz"
		if p[0] == "win" {
			ext = ".zip"
		}
		name := fmt.Sprintf("actions-runner-%s-%s-%s%s", p[0], p[1], v, ext)
		out = append(out, map[string]any{
			"os": p[0], "architecture": p[1], "filename": name,
			"download_url":    "https://github.com/actions/runner/releases/download/v" + v + "/" + name,
			"sha256_checksum": "0000000000000000000000000000000000000000000000000000000000000000",
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// hookDenied answers a denied hook request; the caller does not hold s.mu.
func (s *Server) hookDenied(w http.ResponseWriter) bool {
	s.mu.Lock()
	st := s.up.hooksDenied
	s.mu.Unlock()
	switch st {
	case 0:
		return false
	case http.StatusForbidden:
		writeError(w, st, "Resource not accessible by personal access token")
	default:
		writeError(w, st, "Not Found")
	}
	return true
}

// hooksIn lists the hooks of the path's scope; ok is false for an unknown
// scope. The caller holds s.mu.
func (s *Server) hooksIn(r *http.Request) (hooks []Hook, ok bool) {
	scope, ok := s.scope(r)
	if !ok {
		return nil, false
	}
	if s.hooks != nil && strings.EqualFold(s.up.webhookRepo, scope) {
		hooks = append(hooks, Hook{ID: s.hooks.hookID, Repository: scope, URL: s.hooks.url,
			Events: []string{"workflow_job"}, Active: true})
	}
	for _, h := range s.up.hooks {
		if strings.EqualFold(h.Repository, scope) {
			hooks = append(hooks, h)
		}
	}
	sort.Slice(hooks, func(i, j int) bool { return hooks[i].ID < hooks[j].ID })
	return hooks, true
}

func (s *Server) hookJSON(h Hook) map[string]any {
	base, typ := "orgs/"+s.org, "Organization"
	if h.Repository != "" {
		base, typ = "repos/"+h.Repository, "Repository"
	}
	self := s.apiURL(base + "/hooks/" + strconv.FormatInt(h.ID, 10))
	return map[string]any{
		"id": h.ID, "type": typ, "name": "web", "active": h.Active, "events": h.Events,
		"config":         map[string]any{"url": h.URL, "content_type": "json", "insecure_ssl": "0", "secret": "********"},
		"url":            self,
		"ping_url":       self + "/pings",
		"deliveries_url": self + "/deliveries",
		"created_at":     "2026-01-05T10:00:00Z",
		"updated_at":     "2026-01-05T10:00:00Z",
	}
}

func (s *Server) listHooks(w http.ResponseWriter, r *http.Request) {
	if s.hookDenied(w) {
		return
	}
	s.mu.Lock()
	hooks, ok := s.hooksIn(r)
	var out []map[string]any
	if ok {
		lo, hi := page(w, r, len(hooks))
		out = make([]map[string]any, 0, hi-lo)
		for _, h := range hooks[lo:hi] {
			out = append(out, s.hookJSON(h))
		}
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// hookOf finds the path's hook; the caller holds s.mu.
func (s *Server) hookOf(r *http.Request) (Hook, bool) {
	hooks, ok := s.hooksIn(r)
	if !ok {
		return Hook{}, false
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return Hook{}, false
	}
	for _, h := range hooks {
		if h.ID == id {
			return h, true
		}
	}
	return Hook{}, false
}

func (s *Server) getHook(w http.ResponseWriter, r *http.Request) {
	if s.hookDenied(w) {
		return
	}
	s.mu.Lock()
	var out map[string]any
	if h, ok := s.hookOf(r); ok {
		out = s.hookJSON(h)
	}
	s.mu.Unlock()
	writeFound(w, out)
}

// isWebhook reports whether h is the server's own webhook, the one with
// deliveries.
func (s *Server) isWebhook(h Hook) bool {
	return s.hooks != nil && h.ID == s.hooks.hookID && h.URL == s.hooks.url
}

// deliveryStatus is the "status" GitHub's deliveries list shows.
func deliveryStatus(d Delivery) string {
	switch {
	case d.OK():
		return "OK"
	case d.StatusCode != 0:
		return "Invalid HTTP Response: " + strconv.Itoa(d.StatusCode)
	case strings.Contains(d.Err, "timeout") || strings.Contains(d.Err, "deadline"):
		return "timed out"
	}
	return "failed to connect to host"
}

// listHookDeliveries lists the webhook's deliveries newest first, with
// GitHub's cursor paging: a Link rel="next" whose cursor continues after
// the last delivery of the page.
func (s *Server) listHookDeliveries(w http.ResponseWriter, r *http.Request) {
	if s.hookDenied(w) {
		return
	}
	s.mu.Lock()
	h, ok := s.hookOf(r)
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	var all []Delivery
	if s.isWebhook(h) {
		s.hooks.mu.Lock()
		all = append(all, s.hooks.records...)
		s.hooks.mu.Unlock()
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID > all[j].ID })
	q := r.URL.Query()
	per, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || per <= 0 {
		per = 30
	}
	per = min(per, 100)
	if c := q.Get("cursor"); c != "" {
		before, err := strconv.ParseInt(strings.TrimPrefix(c, "v1_"), 10, 64)
		if err != nil || !strings.HasPrefix(c, "v1_") {
			writeError(w, http.StatusUnprocessableEntity, "Invalid cursor")
			return
		}
		i := sort.Search(len(all), func(i int) bool { return all[i].ID < before })
		all = all[i:]
	}
	pageOf := all[:min(per, len(all))]
	if len(all) > per {
		prefix, _ := r.Context().Value(prefixKey).(string)
		u := url.URL{Scheme: "http", Host: r.Host, Path: prefix + r.URL.Path}
		v := url.Values{}
		v.Set("per_page", strconv.Itoa(per))
		v.Set("cursor", "v1_"+strconv.FormatInt(pageOf[len(pageOf)-1].ID, 10))
		u.RawQuery = v.Encode()
		w.Header().Set("Link", `<`+u.String()+`>; rel="next"`)
	}
	out := make([]map[string]any, 0, len(pageOf))
	for _, d := range pageOf {
		out = append(out, map[string]any{
			"id": d.ID, "guid": d.GUID, "delivered_at": d.DeliveredAt.UTC().Format(time.RFC3339),
			"redelivery": d.Redelivery, "duration": 0.05, "status": deliveryStatus(d), "status_code": d.StatusCode,
			"event": d.Event, "action": d.Action, "installation_id": nil, "repository_id": nil,
			"throttled_at": nil,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// postRedelivery asks for a delivery to be sent again: 202, and the
// attempt reaches the webhook with the original's GUID and body, signed
// alike; it then shows in the list as a new delivery with redelivery true.
func (s *Server) postRedelivery(w http.ResponseWriter, r *http.Request) {
	if s.hookDenied(w) {
		return
	}
	s.mu.Lock()
	h, ok := s.hookOf(r)
	s.mu.Unlock()
	id, err := strconv.ParseInt(r.PathValue("delivery"), 10, 64)
	if !ok || err != nil || !s.isWebhook(h) {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	if err := s.Redeliver(id); err != nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.mu.Lock()
	s.up.redelivered = append(s.up.redelivered, id)
	s.mu.Unlock()
	writeJSON(w, http.StatusAccepted, map[string]any{})
}
