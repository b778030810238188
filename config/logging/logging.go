// Package logging builds the program's zerolog logger and names the fields
// every component logs with.
package logging

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Field names shared by every component.
const (
	RunID    = "run_id"
	Stream   = "stream"
	Device   = "device"
	Window   = "window"
	Endpoint = "endpoint"
	Status   = "status"
	Attempt  = "attempt"
	Table    = "table"
	Rows     = "rows"
	// DurationMS carries a zerolog Dur field, which zerolog writes in
	// milliseconds: the name says the unit.
	DurationMS = "duration_ms"
	Command    = "command"
	// RateLimit is the request rate ceiling the client keeps, per second.
	RateLimit = "rate_limit"
)

// ParseLevel reads a log level: debug, info, warn or error (trace too, for
// developers). It is the one rule config validates THINGSYNC_LOG_LEVEL by.
func ParseLevel(level string) (zerolog.Level, error) {
	switch level {
	case "trace", "debug", "info", "warn", "error":
		return zerolog.ParseLevel(level)
	}
	return zerolog.Disabled, fmt.Errorf("want debug, info, warn or error, got %q", level)
}

// New returns a logger writing to w at level. format is "json", "console",
// or "" for console on a terminal and JSON otherwise.
func New(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("log level: %w", err)
	}
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "console"
		}
	}
	var out io.Writer = w
	switch format {
	case "json":
	case "console":
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q: want json or console", format)
	}
	return zerolog.New(out).Level(lvl).Hook(utcTime{}), nil
}

// utcTime stamps each line in UTC: zerolog's own timestamp follows the
// local zone and is configured through a package-level variable.
type utcTime struct{}

func (utcTime) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, time.Now().UTC().Format(time.RFC3339Nano))
}

// RedactURL returns raw without the userinfo a URL may carry
// (https://user:password@host): URLs are printed and logged.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Not a URL: cut anything that could be userinfo.
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "xxxxx" + raw[i:]
			}
			return "xxxxx" + raw[i:]
		}
		return raw
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return u.String()
}
