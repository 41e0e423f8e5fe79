package sshexec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/tartyci/tarty/internal/atomicfile"
)

// opensshKnownHosts keeps one known_hosts file per image for the openssh
// client, beside the native store. ssh connects with HostKeyAlias=<alias>, so
// every clone of an image (whatever its IP) matches the image's one entry,
// and StrictHostKeyChecking=accept-new records it on first use.
type opensshKnownHosts struct{ dir string }

func opensshKnownHostsDir(knownHostsFile string) string {
	return filepath.Join(filepath.Dir(knownHostsFile), "known_hosts.openssh")
}

// alias is image reduced to characters that are plain in known_hosts
// patterns and file names, plus a hash so distinct images never collide.
func (k opensshKnownHosts) alias(image string) string {
	var b strings.Builder
	for _, r := range image {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(image))
	return b.String() + "-" + hex.EncodeToString(sum[:4])
}

func (k opensshKnownHosts) file(image string) string {
	return filepath.Join(k.dir, k.alias(image))
}

func (k opensshKnownHosts) ensureDir() error {
	return os.MkdirAll(k.dir, 0o700)
}

func (k opensshKnownHosts) forget(image string) error {
	err := os.Remove(k.file(image))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// copy makes to trust what from trusts: from's keys, under to's alias, in a
// file replaced atomically; no file for from removes to's.
func (k opensshKnownHosts) copy(from, to string) error {
	b, err := os.ReadFile(k.file(from))
	if errors.Is(err, fs.ErrNotExist) {
		return k.forget(to)
	}
	if err != nil {
		return err
	}
	var out bytes.Buffer
	for len(b) > 0 {
		_, _, key, _, rest, err := ssh.ParseKnownHosts(b)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k.file(from), err)
		}
		out.WriteString(knownhosts.Line([]string{k.alias(to)}, key) + "\n")
		b = rest
	}
	if err := k.ensureDir(); err != nil {
		return err
	}
	return atomicfile.Write(k.file(to), out.Bytes())
}

// fingerprints lists the SHA256 fingerprints trusted for image, for a
// message: "unknown" when there are none.
func (k opensshKnownHosts) fingerprints(image string) string {
	fps := k.fingerprintList(image)
	if len(fps) == 0 {
		return "unknown"
	}
	return strings.Join(fps, ", ")
}

// fingerprintList is the SHA256 fingerprints of the keys trusted for image.
func (k opensshKnownHosts) fingerprintList(image string) []string {
	b, err := os.ReadFile(k.file(image))
	if err != nil {
		return nil
	}
	var fps []string
	for len(b) > 0 {
		_, _, key, _, rest, err := ssh.ParseKnownHosts(b)
		if err != nil {
			break
		}
		fps = append(fps, ssh.FingerprintSHA256(key))
		b = rest
	}
	return fps
}
