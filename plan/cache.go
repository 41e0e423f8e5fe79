package plan

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/internal/atomicfile"
)

// cacheVersion changes when the file's shape does; an older file is ignored.
const cacheVersion = 1

// Cache keeps, between two `tarty plan`s, what GitHub will not change: the
// jobs of completed runs, by repository, run and attempt (a re-run is a new
// attempt, so a new key), and the ETag cache's answers (the lists of runs and
// repositories), so that unchanged ones come back as free 304s. It lives in
// one file under state_dir, readable by its owner only.
type Cache struct {
	path string
	// Note says why an existing file was not used ("" when it was, or when
	// there was none).
	Note string

	mu      sync.Mutex
	runs    map[string]cachedRun
	answers []ghapi.CachedAnswer
}

type cachedRun struct {
	Created time.Time
	Jobs    []Job
}

type cacheFile struct {
	Version int
	Runs    map[string]cachedRun
	Answers []ghapi.CachedAnswer
}

// CachePath is the cache file under dir for an API base URL and organisation.
func CachePath(dir, apiURL, org string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(apiURL))))
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, strings.ToLower(org))
	return filepath.Join(dir, "history-"+safe+"-"+hex.EncodeToString(sum[:4])+".gob.gz")
}

// OpenCache reads the cache at path; a missing file is an empty cache, and
// so is one that cannot be decoded (Note says why).
func OpenCache(path string) (*Cache, error) {
	c := &Cache{path: path, runs: map[string]cachedRun{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("plan cache: %w", err)
	}
	defer f.Close()
	var file cacheFile
	zr, err := gzip.NewReader(f)
	if err == nil {
		err = gob.NewDecoder(zr).Decode(&file)
	}
	switch {
	case err != nil:
		c.Note = fmt.Sprintf("the cache %s could not be read (%v): starting afresh", path, err)
	case file.Version != cacheVersion:
		c.Note = fmt.Sprintf("the cache %s is of another version: starting afresh", path)
	default:
		if file.Runs != nil {
			c.runs = file.Runs
		}
		c.answers = file.Answers
	}
	return c, nil
}

// Path is the cache's file.
func (c *Cache) Path() string { return c.path }

// Answers are the kept answers of the ETag cache, for the client.
func (c *Cache) Answers() []ghapi.CachedAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answers
}

// Runs is how many runs the cache holds.
func (c *Cache) Runs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.runs)
}

func (c *Cache) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.runs[key]
	return ok
}

func (c *Cache) get(key string) []Job {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[key].Jobs
}

func (c *Cache) put(key string, created time.Time, jobs []Job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[key] = cachedRun{Created: created.UTC(), Jobs: jobs}
}

// countBefore counts the cached runs whose key starts with prefix created in
// [from, before), at most limit.
func (c *Cache) countBefore(prefix string, from, before time.Time, limit int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, r := range c.runs {
		if n >= limit {
			break
		}
		if strings.HasPrefix(k, prefix) && !r.Created.Before(from) && r.Created.Before(before) {
			n++
		}
	}
	return n
}

// Save writes the cache with answers as the ETag cache's answers to keep,
// forgetting runs created before forgetBefore. The file is replaced whole
// (written beside it, then renamed), with mode 0600 in a 0700 directory.
func (c *Cache) Save(answers []ghapi.CachedAnswer, forgetBefore time.Time) error {
	c.mu.Lock()
	for k, r := range c.runs {
		if r.Created.Before(forgetBefore) {
			delete(c.runs, k)
		}
	}
	c.answers = answers
	file := cacheFile{Version: cacheVersion, Runs: c.runs, Answers: answers}
	defer c.mu.Unlock()

	err := atomicfile.WriteWith(c.path, func(w io.Writer) error {
		zw := gzip.NewWriter(w)
		err := gob.NewEncoder(zw).Encode(&file)
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("plan cache: %w", err)
	}
	return nil
}
