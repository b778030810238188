package config

import "runtime/debug"

// The Go runtime's defaults for thingsync, each replaced by its variable
// when that is set.
const (
	// DefaultGOGC: a sync allocates briskly and keeps little, so the
	// collector runs very often; 400% trades some peak memory for about a
	// tenth less time (docs/design.md).
	DefaultGOGC = 400
	// DefaultGOMEMLIMIT bounds what DefaultGOGC costs on a large account:
	// the heap stays within it, the collector running more often instead
	// (docs/design.md).
	DefaultGOMEMLIMIT = 128 << 20
)

// RuntimeDefaults sets GOGC and GOMEMLIMIT to the program's defaults
// unless the environment sets them (the runtime has read those already).
func RuntimeDefaults(lookupEnv func(string) (string, bool)) {
	if _, set := lookupEnv("GOGC"); !set {
		debug.SetGCPercent(DefaultGOGC)
	}
	if _, set := lookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(DefaultGOMEMLIMIT)
	}
}
