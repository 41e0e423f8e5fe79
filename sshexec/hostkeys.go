package sshexec

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"

	"github.com/tartyci/tarty/internal/atomicfile"
)

// hostKeyStore is the native client's trust-on-first-use store: one host key
// per image, because every clone of an image presents the image's key. The
// file holds one line per image, "<image> <key type> <base64 key>", and is
// rewritten atomically (temp file + rename) with mode 0600.
//
// Every read-change-write runs under an flock on "<file>.lock" beside it, so
// the daemon and a CLI command (tarty forget-host-key) sharing the file
// cannot lose each other's changes; the mutex only saves a file lock within
// this process. Plain reads need no lock: the file is replaced atomically.
type hostKeyStore struct {
	path string
	mu   *sync.Mutex // shared by every store of the same file in this process
	log  zerolog.Logger
}

var storeLocks sync.Map // absolute path -> *sync.Mutex

func newHostKeyStore(path string, log zerolog.Logger) *hostKeyStore {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	mu, _ := storeLocks.LoadOrStore(abs, new(sync.Mutex))
	return &hostKeyStore{path: abs, mu: mu.(*sync.Mutex), log: log}
}

// lock takes the store's in-process mutex and its cross-process file lock,
// creating the directory (0700) that holds both files.
func (s *hostKeyStore) lock() (unlock func(), err error) {
	s.mu.Lock()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("known hosts: %w", err)
	}
	release, err := lockFile(s.path + ".lock")
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("known hosts: lock: %w", err)
	}
	return func() {
		release()
		s.mu.Unlock()
	}, nil
}

const storeHeader = "# Tarty: SSH host keys trusted on first use, one per tart image: <image> <key type> <base64 key>\n"

// load reads the store; a missing file is an empty store.
func (s *hostKeyStore) load() (map[string]ssh.PublicKey, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]ssh.PublicKey{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known hosts: %w", err)
	}
	keys := map[string]ssh.PublicKey{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("known hosts %s:%d: want <image> <key type> <base64 key>", s.path, n)
		}
		raw, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil {
			return nil, fmt.Errorf("known hosts %s:%d: %w", s.path, n, err)
		}
		key, err := ssh.ParsePublicKey(raw)
		if err != nil {
			return nil, fmt.Errorf("known hosts %s:%d: %w", s.path, n, err)
		}
		if key.Type() != f[1] {
			return nil, fmt.Errorf("known hosts %s:%d: key type %s does not match key %s", s.path, n, f[1], key.Type())
		}
		keys[f[0]] = key
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read known hosts: %w", err)
	}
	return keys, nil
}

func (s *hostKeyStore) save(keys map[string]ssh.PublicKey) error {
	var b bytes.Buffer
	b.WriteString(storeHeader)
	images := make([]string, 0, len(keys))
	for image := range keys {
		images = append(images, image)
	}
	slices.Sort(images)
	for _, image := range images {
		k := keys[image]
		fmt.Fprintf(&b, "%s %s %s\n", image, k.Type(), base64.StdEncoding.EncodeToString(k.Marshal()))
	}
	return atomicfile.Write(s.path, b.Bytes())
}

// check trusts key for image on first use and afterwards accepts only that key.
func (s *hostKeyStore) check(image, host string, key ssh.PublicKey) error {
	if err := checkImage(image); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	keys, err := s.load()
	if err != nil {
		return err
	}
	if known, ok := keys[image]; ok {
		if bytes.Equal(known.Marshal(), key.Marshal()) {
			return nil
		}
		return &HostKeyError{Image: image, Host: host,
			Trusted: ssh.FingerprintSHA256(known), Presented: ssh.FingerprintSHA256(key)}
	}
	keys[image] = key
	if err := s.save(keys); err != nil {
		return fmt.Errorf("trust host key of image %q: %w", image, err)
	}
	s.log.Info().Str("image", image).Str("host", host).Str("fingerprint", ssh.FingerprintSHA256(key)).
		Msg("trusting ssh host key of image on first use")
	return nil
}

// algorithms are the host key algorithms to offer for image: those of its
// trusted key, so the guest must prove that very key (as OpenSSH does with
// known_hosts); nil (x/crypto's defaults) before the first use.
func (s *hostKeyStore) algorithms(image string) ([]string, error) {
	keys, err := s.load() // no lock: the file is only ever replaced whole
	if err != nil {
		return nil, err
	}
	k, ok := keys[image]
	if !ok {
		return nil, nil
	}
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}, nil
	}
	return []string{k.Type()}, nil
}

// forget drops image's key from the store.
func (s *hostKeyStore) forget(image string) error {
	_, err := s.take(image)
	return err
}

// take removes image's key from the store and returns it (nil when there
// was none), under the store's locks.
func (s *hostKeyStore) take(image string) (ssh.PublicKey, error) {
	if err := checkImage(image); err != nil {
		return nil, err
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	keys, err := s.load()
	if err != nil {
		return nil, err
	}
	key, ok := keys[image]
	if !ok {
		return nil, nil
	}
	delete(keys, image)
	return key, s.save(keys)
}

// copy makes to trust what from trusts (nothing when from has no key).
func (s *hostKeyStore) copy(from, to string) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	keys, err := s.load()
	if err != nil {
		return err
	}
	k, ok := keys[from]
	old, had := keys[to]
	switch {
	case ok && had && bytes.Equal(k.Marshal(), old.Marshal()), !ok && !had:
		return nil
	case ok:
		keys[to] = k
	default:
		delete(keys, to)
	}
	return s.save(keys)
}

// callback is the HostKeyCallback for a connection to image.
func (s *hostKeyStore) callback(image string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		return s.check(image, hostname, key)
	}
}
