package main

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty/config"
)

// newLogger builds the daemon's logger from log.level and log.format: console
// lines on a terminal, JSON otherwise (under launchd, into a file).
func newLogger(cfg config.Log, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil || cfg.Level == "" {
		level = zerolog.InfoLevel
	}
	console := cfg.Format == "console" || (cfg.Format != "json" && isTerminal(w))
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
