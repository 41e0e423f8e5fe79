package fakegithub

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// get does an authenticated request and decodes the JSON answer into out.
func get(t *testing.T, s *Server, method, url string, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, body)
		}
	}
	return resp
}

func TestRunnerReleasesAndDownloads(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	day := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	s.SetRunnerReleases(
		RunnerRelease{Version: "2.336.0", PublishedAt: day},
		RunnerRelease{Version: "2.338.0", PublishedAt: day.Add(40 * 24 * time.Hour), Prerelease: true},
		RunnerRelease{Version: "2.337.0", PublishedAt: day.Add(25 * 24 * time.Hour)},
	)
	var rels []struct {
		TagName     string    `json:"tag_name"`
		Prerelease  bool      `json:"prerelease"`
		PublishedAt time.Time `json:"published_at"`
	}
	if resp := get(t, s, "GET", s.URL()+"repos/actions/runner/releases", &rels); resp.StatusCode != 200 {
		t.Fatalf("releases: %d", resp.StatusCode)
	}
	if len(rels) != 3 || rels[0].TagName != "v2.338.0" || !rels[0].Prerelease || rels[2].TagName != "v2.336.0" || !rels[2].PublishedAt.Equal(day) {
		t.Errorf("releases newest first: %+v", rels)
	}
	if resp := get(t, s, "GET", s.URL()+"repos/acme/app/releases", nil); resp.StatusCode != 404 {
		t.Errorf("another repository's releases: %d", resp.StatusCode)
	}

	var apps []struct{ OS, Architecture, Filename string }
	get(t, s, "GET", s.EnterpriseURL()+"orgs/acme/actions/runners/downloads", &apps)
	found := ""
	for _, a := range apps {
		if a.OS == "osx" && a.Architecture == "arm64" {
			found = a.Filename
		}
	}
	if found != "actions-runner-osx-arm64-"+DefaultRunnerVersion+".tar.gz" {
		t.Errorf("osx-arm64 download %q in %+v", found, apps)
	}
	s.SetOfferedRunnerVersion("2.337.0")
	s.AddRepo("app")
	apps = nil
	get(t, s, "GET", s.URL()+"repos/acme/app/actions/runners/downloads", &apps)
	if !strings.Contains(apps[1].Filename, "2.337.0") {
		t.Errorf("after SetOfferedRunnerVersion: %+v", apps)
	}
}

func TestHooksDeliveriesAndRedelivery(t *testing.T) {
	rc := newReceiver(t)
	s := New(Config{WebhookURL: rc.srv.URL + "/github/webhook", WebhookSecret: hookSecret, WebhookHookID: 77})
	defer s.Close()
	other := s.AddHook(Hook{URL: "https://ci.example.com/other", Active: true, Events: []string{"push"}})

	var hooks []struct {
		ID     int64    `json:"id"`
		Type   string   `json:"type"`
		Active bool     `json:"active"`
		Events []string `json:"events"`
		Config struct {
			URL string `json:"url"`
		} `json:"config"`
	}
	get(t, s, "GET", s.URL()+"orgs/acme/hooks", &hooks)
	if len(hooks) != 2 || hooks[0].ID != 77 || hooks[0].Config.URL != rc.srv.URL+"/github/webhook" || hooks[0].Type != "Organization" ||
		hooks[1].ID != other || hooks[1].Events[0] != "push" {
		t.Fatalf("hooks: %+v", hooks)
	}

	// 5 deliveries fail (the receiver is down), then 3 succeed.
	rc.mu.Lock()
	rc.answer = http.StatusBadGateway
	rc.mu.Unlock()
	for range 5 {
		s.QueueJob("app", "tarty")
	}
	waitHooks(t, s)
	rc.mu.Lock()
	rc.answer = http.StatusAccepted
	rc.mu.Unlock()
	for range 3 {
		s.QueueJob("app", "tarty")
	}
	waitHooks(t, s)

	type delivery struct {
		ID         int64  `json:"id"`
		GUID       string `json:"guid"`
		Status     string `json:"status"`
		StatusCode int    `json:"status_code"`
		Event      string `json:"event"`
		Action     string `json:"action"`
		Redelivery bool   `json:"redelivery"`
	}
	var all []delivery
	url := s.URL() + "repos/acme/app/hooks/77/deliveries?per_page=3"
	s.AddRepo("app")
	if resp := get(t, s, "GET", url, nil); resp.StatusCode != 404 {
		t.Errorf("the webhook is not the repository's: %d", resp.StatusCode)
	}
	url = s.URL() + "orgs/acme/hooks/77/deliveries?per_page=3"
	pages := 0
	for url != "" {
		var page []delivery
		resp := get(t, s, "GET", url, &page)
		pages++
		all = append(all, page...)
		url = ""
		if l := resp.Header.Get("Link"); l != "" {
			if !strings.Contains(l, `rel="next"`) || !strings.Contains(l, "cursor=v1_") {
				t.Fatalf("Link %q", l)
			}
			url = l[1:strings.Index(l, ">")]
		}
	}
	if pages != 3 || len(all) != 8 {
		t.Fatalf("%d pages, %d deliveries: %+v", pages, len(all), all)
	}
	for i, d := range all {
		if i > 0 && d.ID >= all[i-1].ID {
			t.Errorf("not newest first: %+v", all)
		}
		failed := i >= 3
		if failed != (d.Status == "Invalid HTTP Response: 502") || d.Event != "workflow_job" || d.Action != "queued" ||
			(failed && d.StatusCode != 502) || (!failed && (d.Status != "OK" || d.StatusCode != 202)) {
			t.Errorf("delivery %d: %+v", i, d)
		}
	}

	// Redelivering the oldest failed one: 202, then it arrives signed with its GUID.
	oldest := all[len(all)-1]
	if resp := get(t, s, "POST", s.URL()+"orgs/acme/hooks/77/deliveries/"+strconv.FormatInt(oldest.ID, 10)+"/attempts", nil); resp.StatusCode != 202 {
		t.Fatalf("redeliver: %d", resp.StatusCode)
	}
	if resp := get(t, s, "POST", s.URL()+"orgs/acme/hooks/77/deliveries/1/attempts", nil); resp.StatusCode != 404 {
		t.Errorf("unknown delivery: %d", resp.StatusCode)
	}
	waitHooks(t, s)
	got := rc.all()
	if last := got[len(got)-1]; last.guid != oldest.GUID {
		t.Errorf("redelivery arrived with GUID %q, want %q", last.guid, oldest.GUID)
	}
	var first []delivery
	get(t, s, "GET", s.URL()+"orgs/acme/hooks/77/deliveries?per_page=1", &first)
	if len(first) != 1 || !first[0].Redelivery || first[0].GUID != oldest.GUID || first[0].Status != "OK" {
		t.Errorf("the attempt in the list: %+v", first)
	}
	if r := s.RedeliveryRequests(); len(r) != 1 || r[0] != oldest.ID {
		t.Errorf("RedeliveryRequests = %v", r)
	}

	// The webhook moved to a repository; and without the permission.
	s.SetWebhookRepository("acme/app")
	hooks = nil
	get(t, s, "GET", s.URL()+"repos/acme/app/hooks", &hooks)
	if len(hooks) != 1 || hooks[0].ID != 77 || hooks[0].Type != "Repository" {
		t.Errorf("repository hooks: %+v", hooks)
	}
	for _, st := range []int{403, 404} {
		s.DenyHooks(st)
		for _, u := range []string{"orgs/acme/hooks", "repos/acme/app/hooks/77/deliveries", "orgs/acme/hooks/77"} {
			if resp := get(t, s, "GET", s.URL()+u, nil); resp.StatusCode != st {
				t.Errorf("denied %d: %s answered %d", st, u, resp.StatusCode)
			}
		}
	}
}
