package sshexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// detachScript is the POSIX sh wrapper that Start runs in the guest as
// `sh -c detachScript tarty-start COMMAND LOG SIZE`. It
//
//  1. copies stdin into a fresh 0600 temp file (mktemp, umask 077) and checks
//     that exactly SIZE bytes arrived, so a connection lost mid-transfer never
//     starts the command with half its input;
//  2. opens the file as fd 3 and deletes it at once: the data lives on only as
//     an open file description, is never in any argv or environment, and the
//     file exists just while it is being received;
//  3. starts COMMAND through the login's shell in a background subshell that
//     ignores SIGHUP (what nohup does; macOS's nohup binary can fail with
//     "can't detach from console", and macOS has no setsid binary), with
//     stdin from fd 3 and stdout/stderr appended to LOG, so nothing ties it to
//     the SSH channel and it outlives the connection and Tarty;
//  4. prints the command's pid and exits, which ends the SSH session.
//
// The wrapper has received all of stdin, and handed it to the command as an
// open file, before it exits, so before Start returns.
const detachScript = `set -e
mask=$(umask)
umask 077
tmp=$(mktemp "${TMPDIR:-/tmp}/tarty-stdin.XXXXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp"
n=$(wc -c <"$tmp" | tr -d ' \t')
if [ "$n" != "$3" ]; then
	echo "tarty: stdin truncated: received $n of $3 bytes" >&2
	exit 3
fi
exec 3<"$tmp"
rm -f "$tmp"
log=$2
case $log in /*) ;; *) log=$HOME/$log ;; esac
printf '=== %s tarty: starting detached command\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$log"
(trap '' HUP; umask "$mask"; exec "${SHELL:-/bin/sh}" -c "$1") <&3 >>"$log" 2>&1 3<&- &
echo "$!"
`

// Start starts command in the guest, detached: it keeps running after the SSH
// connection closes and after Tarty exits. stdin (nil: empty) is read fully
// into memory (a JIT runner config is a few KB), sent over the SSH channel
// and becomes the command's standard input; it is never part of any process
// argument, environment or host file. The command runs through the login's
// shell; its output is appended to Options.StartLog in the guest.
func (c *Client) Start(ctx context.Context, image, host, command string, stdin io.Reader) error {
	if err := checkTarget(image, host); err != nil {
		return err
	}
	word := firstWord(command)
	if strings.TrimSpace(command) == "" {
		return fmt.Errorf("ssh start: empty command")
	}
	var data []byte
	if stdin != nil {
		var err error
		if data, err = io.ReadAll(stdin); err != nil {
			return fmt.Errorf("ssh start %s: read stdin: %w", word, err)
		}
	}
	defer clear(data) // the buffer may hold a credential

	remote := detachCommand(command, c.opts.StartLog, len(data))
	stdout := &tailBuffer{max: 256}
	stderr := &tailBuffer{max: 2048}
	c.log.Debug().Str("image", image).Str("host", host).Str("cmd", word).Int("stdin_bytes", len(data)).Msg("ssh start detached")
	err := c.t.exec(ctx, image, host, remote, bytes.NewReader(data), stdout, stderr)
	var exitErr *ExitError
	if errors.As(err, &exitErr) {
		return fmt.Errorf("ssh %s@%s start %s: detach wrapper exit status %d: %s",
			c.opts.User, host, word, exitErr.Status, lastLine(stderr.String()))
	}
	if err != nil {
		return fmt.Errorf("ssh %s@%s start %s: %w", c.opts.User, host, word, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		return fmt.Errorf("ssh %s@%s start %s: detach wrapper printed no pid", c.opts.User, host, word)
	}
	c.log.Info().Str("image", image).Str("host", host).Str("cmd", word).Int("pid", pid).
		Str("log", c.opts.StartLog).Msg("started detached command in guest")
	return nil
}

// detachCommand is the command line sent to the guest's login shell (zsh,
// bash or sh): it runs detachScript under /bin/sh. It holds the command and
// the log path, which are not secret, and the size of stdin.
func detachCommand(command, log string, size int) string {
	return "exec /bin/sh -c " + shQuote(detachScript) + " tarty-start " +
		shQuote(command) + " " + shQuote(log) + " " + strconv.Itoa(size)
}

// shQuote quotes s as one word for POSIX sh, bash and zsh (the guest's login
// shell must be one of them: fish reads backslashes inside single quotes).
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// lastLine returns the last non-empty line of s, shortened, for error messages.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 300 {
		l = l[:300] + "…"
	}
	if l == "" {
		return "(no output)"
	}
	return l
}
