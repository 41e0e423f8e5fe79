// Package sshexec runs commands in tart guests over SSH. *Client satisfies
// the scheduler's Guest port (WaitReady, Run, Start, ForgetHostKey) without
// importing the scheduler.
//
// Two clients behave the same way:
//
//   - native (golang.org/x/crypto/ssh): authenticates with the SSH agent
//     (SSH_AUTH_SOCK), then Options.KeyFile or ~/.ssh/id_ed25519 and
//     ~/.ssh/id_rsa, then Options.Password (also answering
//     keyboard-interactive prompts). It sends keepalive@openssh.com requests
//     every Options.Keepalive and drops a session after three go unanswered.
//   - openssh: runs the system ssh (default /usr/bin/ssh) with BatchMode,
//     ConnectTimeout, ServerAliveInterval/CountMax and -F none. On macOS 15+
//     Local Network privacy may block a launchd-started Tarty's own
//     connections to the VM network while Apple's ssh is allowed.
//
// Host keys are trusted on first use per tart image, not per IP: every clone
// of an image presents the image's host key. The native client keeps them in
// Options.KnownHostsFile, one "<image> <key type> <base64 key>" line each,
// rewritten atomically with mode 0600. The openssh client keeps one
// known_hosts file per image in known_hosts.openssh/ beside it and connects
// with HostKeyAlias and StrictHostKeyChecking=accept-new. A changed key is a
// *HostKeyError naming both SHA256 fingerprints; ForgetHostKey (after a
// rebuild) clears both stores.
//
// Every call opens its own connection. Run streams output and maps a non-zero
// exit to *ExitError. Cancelling its context asks sshd to send SIGTERM to the
// command (native client; sshd refuses this for root logins) and closes the
// connection. Start runs the command detached through a small POSIX sh
// wrapper (see detachScript): stdin, such as a JIT runner config, goes over
// the SSH channel into a 0600 temp file in the guest that is opened as the
// command's stdin and deleted before the command starts, so it never appears
// in any process's arguments or environment, nor on the host. The detached
// command's output is appended to Options.StartLog in the guest (default
// ~/tarty-start.log). Neither stdin nor whole command lines are logged.
//
// Tests run both clients against a real OpenSSH sshd started by
// internal/sshdtest (skipped when sshd is missing, unless
// TARTY_REQUIRE_SSHD=1), and against an in-process x/crypto/ssh server for
// faults sshd does not produce on demand (a dropped connection, a silent
// guest, a banner that never comes). The scheduler's own tests use a
// function-field fake of its Guest port instead of this package.
package sshexec
