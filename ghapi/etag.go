package ghapi

import (
	"bytes"
	"container/list"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// etagCache is a RoundTripper that makes GETs conditional. It remembers the
// ETag and body of each successful GET by URL and sends If-None-Match next
// time; GitHub answers an unchanged resource with 304, which costs nothing
// against the rate limit, and the cache then hands go-github the remembered
// body as a 200 marked X-From-Cache (go-github keeps such answers out of its
// rate bookkeeping). Keys are the Accept header and the URL: credentials
// travel in the Authorization header, never in the key. It is bounded by
// entry count and total bytes, least recently used first out.
type etagCache struct {
	next       http.RoundTripper
	maxEntries int
	maxBytes   int
	maxEntry   int // larger bodies are passed through, not stored

	mu    sync.Mutex
	lru   *list.List // of *etagEntry, front = most recent
	byKey map[string]*list.Element
	bytes int
	hits  int
}

type etagEntry struct {
	key    string
	etag   string
	header http.Header
	body   []byte
}

func newETagCache(next http.RoundTripper, maxEntries, maxBytes int) *etagCache {
	return &etagCache{
		next:       next,
		maxEntries: maxEntries,
		maxBytes:   maxBytes,
		maxEntry:   maxBytes / 4,
		lru:        list.New(),
		byKey:      map[string]*list.Element{},
	}
}

// cacheKey returns "" for requests that must not be cached: anything but a
// plain GET, requests the caller made conditional itself, and URLs that carry
// credentials (user info or token-like query parameters).
func cacheKey(req *http.Request) string {
	if req.Method != http.MethodGet || req.Header.Get("If-None-Match") != "" ||
		req.Header.Get("If-Modified-Since") != "" || req.Header.Get("Range") != "" || req.URL.User != nil {
		return ""
	}
	for k := range req.URL.Query() {
		switch strings.ToLower(k) {
		case "access_token", "token", "client_secret", "client_id", "jwt":
			return ""
		}
	}
	return req.Header.Get("Accept") + " " + req.URL.String()
}

func (c *etagCache) RoundTrip(req *http.Request) (*http.Response, error) {
	key := cacheKey(req)
	if key == "" {
		return c.next.RoundTrip(req)
	}
	cached := c.get(key)
	if cached != nil {
		req = req.Clone(req.Context())
		req.Header.Set("If-None-Match", cached.etag)
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && cached != nil:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		c.mu.Lock()
		c.hits++
		c.mu.Unlock()
		return fromCache(resp, cached), nil
	case resp.StatusCode == http.StatusOK && resp.Header.Get("ETag") != "":
		return c.store(key, resp)
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound:
		c.drop(key) // the resource changed shape or went away
	}
	return resp, nil
}

// fromCache builds the 200 go-github will decode: the remembered headers and
// body, overlaid with the 304's fresh headers (rate limit, request ID).
func fromCache(notModified *http.Response, e *etagEntry) *http.Response {
	h := e.header.Clone()
	for k, v := range notModified.Header {
		h[k] = append([]string(nil), v...)
	}
	h.Set("X-From-Cache", "1")
	h.Set("Content-Length", strconv.Itoa(len(e.body)))
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         notModified.Proto,
		ProtoMajor:    notModified.ProtoMajor,
		ProtoMinor:    notModified.ProtoMinor,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(e.body)),
		ContentLength: int64(len(e.body)),
		Request:       notModified.Request,
		TLS:           notModified.TLS,
	}
}

func (c *etagCache) store(key string, resp *http.Response) (*http.Response, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.maxEntry)+1))
	if err != nil {
		_ = resp.Body.Close()
		return nil, err
	}
	if len(body) > c.maxEntry {
		// Too big to keep: hand it on whole without storing.
		c.drop(key)
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return resp, nil
	}
	_ = resp.Body.Close()
	h := resp.Header.Clone()
	// Per-answer headers come fresh from each 304; keeping stale ones would mislead.
	for _, k := range []string{"X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Used", "X-Ratelimit-Reset",
		"X-Ratelimit-Resource", "X-Github-Request-Id", "Date", "Set-Cookie"} {
		h.Del(k)
	}
	c.put(&etagEntry{key: key, etag: resp.Header.Get("ETag"), header: h, body: body})
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func (c *etagCache) get(key string) *etagEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*etagEntry)
}

func (c *etagCache) put(e *etagEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[e.key]; ok {
		c.remove(el)
	}
	c.byKey[e.key] = c.lru.PushFront(e)
	c.bytes += len(e.body)
	for c.lru.Len() > c.maxEntries || c.bytes > c.maxBytes {
		c.remove(c.lru.Back())
	}
}

func (c *etagCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		c.remove(el)
	}
}

// remove unlinks an element; the caller holds c.mu.
func (c *etagCache) remove(el *list.Element) {
	e := el.Value.(*etagEntry)
	c.lru.Remove(el)
	delete(c.byKey, e.key)
	c.bytes -= len(e.body)
}

// stats reports entries, bytes held and 304 hits, for tests and benchmarks.
func (c *etagCache) stats() (entries, size, hits int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes, c.hits
}
