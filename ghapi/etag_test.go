package ghapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tartyci/tarty/ghapi/fakegithub"
)

// etagOrigin serves /n with a body of n bytes and an ETag, honouring
// If-None-Match; it counts full answers.
func etagOrigin(t *testing.T, full *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Path, "/%d", &n)
		etag := fmt.Sprintf(`"v%d"`, n)
		w.Header().Set("X-RateLimit-Remaining", "42")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, strings.Repeat("x", n))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, rt http.RoundTripper, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestETagCache(t *testing.T) {
	var full atomic.Int64
	srv := etagOrigin(t, &full)
	c := newETagCache(http.DefaultTransport, 3, 400) // entries ≤ 100 bytes

	resp, body := get(t, c, srv.URL+"/10")
	if resp.StatusCode != 200 || body != strings.Repeat("x", 10) || resp.Header.Get("X-From-Cache") != "" {
		t.Fatalf("first answer %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, c, srv.URL+"/10")
	if resp.StatusCode != 200 || body != strings.Repeat("x", 10) || resp.Header.Get("X-From-Cache") != "1" ||
		resp.Header.Get("X-RateLimit-Remaining") != "42" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("cached answer %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if full.Load() != 1 {
		t.Fatalf("origin sent %d full answers, want 1", full.Load())
	}

	// Bounded by entries: the least recently used goes first.
	for _, n := range []int{11, 12, 13} {
		get(t, c, fmt.Sprintf("%s/%d", srv.URL, n))
	}
	if entries, _, _ := c.stats(); entries != 3 {
		t.Errorf("entries = %d, want 3", entries)
	}
	if c.get(" "+srv.URL+"/10") != nil {
		t.Error("the oldest entry was not evicted")
	}
	// Too big to keep: passed through whole, not stored.
	_, body = get(t, c, srv.URL+"/150")
	if len(body) != 150 || c.get(" "+srv.URL+"/150") != nil {
		t.Errorf("big body %d bytes, stored %v", len(body), c.get(" "+srv.URL+"/150") != nil)
	}
	// Bounded by bytes.
	for _, n := range []int{90, 91, 92, 93} {
		get(t, c, fmt.Sprintf("%s/%d", srv.URL, n))
	}
	if _, size, _ := c.stats(); size > 400 {
		t.Errorf("cache holds %d bytes, limit 400", size)
	}

	// Not cached: credentials in the URL, non-GET, caller's own conditionals.
	before := full.Load()
	for i := 0; i < 2; i++ {
		get(t, c, srv.URL+"/5?access_token=secret")
		get(t, c, srv.URL+"/6", "If-None-Match", `"other"`)
	}
	if full.Load()-before != 4 {
		t.Errorf("uncacheable requests answered from cache")
	}
	for e := c.lru.Front(); e != nil; e = e.Next() {
		if strings.Contains(e.Value.(*etagEntry).key, "secret") {
			t.Errorf("key %q holds a secret", e.Value.(*etagEntry).key)
		}
	}
}

// The client's cache keys never hold the token (it travels in a header).
func TestETagKeysHoldNoToken(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	s.AddRun("app", "queued", time.Time{}, fakegithub.JobSpec{Labels: []string{"tarty"}})
	c := newTestClient(t, s, nil)
	if _, err := c.QueuedJobs(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, _, _ := c.cache.stats()
	if entries == 0 {
		t.Fatal("nothing cached")
	}
	c.cache.mu.Lock()
	defer c.cache.mu.Unlock()
	for k, el := range c.cache.byKey {
		e := el.Value.(*etagEntry)
		if strings.Contains(k, s.Token()) || strings.Contains(fmt.Sprint(e.header), s.Token()) {
			t.Errorf("cache entry %q holds the token", k)
		}
	}
}
