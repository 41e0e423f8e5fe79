package sshexec

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// nativeAuth holds the native client's credentials. Public keys come first
// (agent, then KeyFile or the default keys), then the password, also used to
// answer keyboard-interactive prompts. All keys are offered by one publickey
// method because x/crypto tries each method name only once.
type nativeAuth struct {
	agentSock string
	signers   []ssh.Signer // from KeyFile, or the default key files
	password  string
}

func loadAuth(opts Options, log zerolog.Logger) (*nativeAuth, error) {
	a := &nativeAuth{agentSock: os.Getenv("SSH_AUTH_SOCK"), password: opts.Password}
	if opts.KeyFile != "" {
		s, err := readSigner(opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("sshexec: key file: %w", err)
		}
		a.signers = append(a.signers, s)
	} else if home, err := os.UserHomeDir(); err == nil {
		for _, name := range []string{"id_ed25519", "id_rsa"} {
			path := filepath.Join(home, ".ssh", name)
			s, err := readSigner(path)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				// Not fatal: the agent or the password may still log us in.
				log.Warn().Err(err).Msg("skipping default ssh key")
				continue
			}
			a.signers = append(a.signers, s)
		}
	}
	if a.agentSock == "" && len(a.signers) == 0 && a.password == "" {
		return nil, errors.New("sshexec: no SSH credentials: set a key file or a password, add ~/.ssh/id_ed25519, or run an SSH agent (SSH_AUTH_SOCK)")
	}
	return a, nil
}

func readSigner(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(b)
	var pm *ssh.PassphraseMissingError
	if errors.As(err, &pm) {
		return nil, fmt.Errorf("%s is protected by a passphrase: load it into an SSH agent instead", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// methods returns the auth methods for one connection and a func that
// releases the agent connection once the handshake is over.
func (a *nativeAuth) methods(log zerolog.Logger) ([]ssh.AuthMethod, func()) {
	var ag agent.ExtendedAgent
	release := func() {}
	if a.agentSock != "" {
		if c, err := net.Dial("unix", a.agentSock); err != nil {
			log.Debug().Err(err).Msg("ssh agent unreachable")
		} else {
			ag = agent.NewClient(c)
			release = func() { c.Close() }
		}
	}
	var methods []ssh.AuthMethod
	if ag != nil || len(a.signers) > 0 {
		methods = append(methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			var all []ssh.Signer
			if ag != nil {
				s, err := ag.Signers()
				if err != nil {
					log.Debug().Err(err).Msg("ssh agent signers")
				}
				all = append(all, s...)
			}
			return append(all, a.signers...), nil
		}))
	}
	if a.password != "" {
		pw := a.password
		methods = append(methods,
			ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] { // a hidden prompt asks for the password
						answers[i] = pw
					}
				}
				return answers, nil
			}))
	}
	return methods, release
}
