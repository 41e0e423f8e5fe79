package upkeep

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty/internal/atomicfile"
)

// StateFile is the name of the upkeep's memory in state_dir.
const StateFile = "upkeep.json"

// Store is what the upkeep remembers across restarts, in one small JSON file
// (mode 0600, replaced atomically: written beside it, synced, renamed): the
// runner version last found in each image, when the early rebuild last ran,
// and how far the redelivery got. It is safe for concurrent use.
type Store struct {
	path string
	mu   sync.Mutex
	st   stateFile
}

type stateFile struct {
	// Images maps an image name to the actions runner found in it.
	Images map[string]ImageRunner `json:"images,omitempty"`
	// EarlyRebuildAt is when the guard last asked for a rebuild because the
	// runner was too old; EarlyRebuildFrom the image's version then.
	EarlyRebuildAt   time.Time      `json:"early_rebuild_at,omitzero"`
	EarlyRebuildFrom string         `json:"early_rebuild_from,omitempty"`
	Redeliver        redeliverState `json:"redeliver"`
}

// ImageRunner is the actions runner found in an image.
type ImageRunner struct {
	Version  string    `json:"version"`
	LearntAt time.Time `json:"learnt_at"`
	// BehindSince is when Tarty first saw a newer runner than Version (the
	// age's fallback when release dates are unknown); zero while current.
	BehindSince time.Time `json:"behind_since,omitzero"`
}

type redeliverState struct {
	HookID int64 `json:"hook_id,omitempty"`
	// LastDeliveryID is the newest delivery examined: the next sweep lists
	// only newer ones (delivery IDs grow with time).
	LastDeliveryID int64     `json:"last_delivery_id,omitempty"`
	LastSweepAt    time.Time `json:"last_sweep_at,omitzero"`
	// Attempted maps a delivery GUID to Tarty's redelivery request: never
	// asked twice, whatever happens to it.
	Attempted map[string]attempt `json:"attempted,omitempty"`
}

type attempt struct {
	DeliveryID int64     `json:"delivery_id"`
	At         time.Time `json:"at"`
	// AfterID is the newest delivery listed when it was asked: the attempt
	// shows in the list as a newer one with the same GUID.
	AfterID int64 `json:"after_id"`
	// Outcome is "" until known: delivered, failed_again, or refused (GitHub
	// did not accept the request).
	Outcome string `json:"outcome,omitempty"`
}

// OpenStore reads the file at path, if there is one. A file that cannot be
// parsed is logged and replaced by the next write: losing it costs one
// early rebuild check and one redelivery sweep, nothing more.
func OpenStore(path string, log zerolog.Logger) (*Store, error) {
	s := &Store{path: path}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("upkeep state: %w", err)
	default:
		if err := json.Unmarshal(data, &s.st); err != nil {
			log.Warn().Err(err).Str("file", path).Msg("upkeep state unreadable: starting afresh")
			s.st = stateFile{}
		}
	}
	return s, nil
}

// ImageRunner returns what is known of the runner in image.
func (s *Store) ImageRunner(image string) (ImageRunner, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.Images[image]
	return r, ok
}

// update changes the state under the lock and writes it.
func (s *Store) update(change func(*stateFile)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	change(&s.st)
	return s.writeLocked()
}

func (s *Store) writeLocked() error {
	data, err := json.MarshalIndent(s.st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.path, append(data, '\n')); err != nil {
		return fmt.Errorf("upkeep state: %w", err)
	}
	return nil
}

// setImageVersion records the runner found in image at now; a new version
// starts a new age.
func (s *Store) setImageVersion(image, version string, now time.Time) error {
	return s.update(func(st *stateFile) {
		if st.Images == nil {
			st.Images = map[string]ImageRunner{}
		}
		r := st.Images[image]
		if r.Version != version {
			r = ImageRunner{Version: version}
		}
		r.LearntAt = now
		st.Images[image] = r
	})
}

// setBehindSince records (or, with a zero time, clears) when the image's
// runner was first seen behind; no write when nothing changes.
func (s *Store) setBehindSince(image string, since time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.Images[image]
	if !ok || r.BehindSince.Equal(since) {
		return nil
	}
	r.BehindSince = since
	s.st.Images[image] = r
	return s.writeLocked()
}

func (s *Store) earlyRebuild() (time.Time, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.EarlyRebuildAt, s.st.EarlyRebuildFrom
}

func (s *Store) setEarlyRebuild(at time.Time, from string) error {
	return s.update(func(st *stateFile) { st.EarlyRebuildAt, st.EarlyRebuildFrom = at, from })
}

// redeliver returns a copy of the redelivery state.
func (s *Store) redeliver() redeliverState {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.st.Redeliver
	r.Attempted = make(map[string]attempt, len(s.st.Redeliver.Attempted))
	for k, v := range s.st.Redeliver.Attempted {
		r.Attempted[k] = v
	}
	return r
}

func (s *Store) setRedeliver(r redeliverState) error {
	return s.update(func(st *stateFile) { st.Redeliver = r })
}
