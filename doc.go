// Package tarty holds the words every part of Tarty shares: a job event, a
// runner registration, the label rule, the repository rule and the error
// classifiers. It imports only the standard library, so config, webhook,
// scheduler and the adapters (tartvm, sshexec, ghapi) can all depend on it
// without depending on each other. See docs/ARCHITECTURE.md.
package tarty
