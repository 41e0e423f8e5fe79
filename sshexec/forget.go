package sshexec

import (
	"errors"
	"fmt"
	"slices"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
)

// ForgetImageHostKey drops the host key trusted for image from both
// clients' stores of knownHostsFile (the native client's file and the openssh
// client's files beside it), as Client.ForgetHostKey does, without building
// a Client: `tarty forget-host-key` needs no SSH credentials. It is safe while
// a daemon uses the same files: the native store is changed under its
// cross-process lock. It returns the SHA256 fingerprints that were trusted,
// none when image had no key.
func ForgetImageHostKey(knownHostsFile, image string) (forgotten []string, err error) {
	if err := checkImage(image); err != nil {
		return nil, err
	}
	if knownHostsFile == "" {
		return nil, errors.New("sshexec: known hosts file is required")
	}
	store := newHostKeyStore(knownHostsFile, zerolog.Nop())
	oh := opensshKnownHosts{dir: opensshKnownHostsDir(knownHostsFile)}

	key, err := store.take(image)
	if err != nil {
		return nil, fmt.Errorf("forget host key of image %q: %w", image, err)
	}
	if key != nil {
		forgotten = append(forgotten, ssh.FingerprintSHA256(key))
	}
	for _, fp := range oh.fingerprintList(image) {
		if !slices.Contains(forgotten, fp) {
			forgotten = append(forgotten, fp)
		}
	}
	if err := oh.forget(image); err != nil {
		return forgotten, fmt.Errorf("forget host key of image %q: %w", image, err)
	}
	return forgotten, nil
}
