package config

import (
	"math"
	"runtime/debug"
	"testing"
)

// The program's runtime defaults apply unless the environment sets its own
// (which the runtime has applied already).
func TestRuntimeDefaults(t *testing.T) {
	gogc, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	defer func() { debug.SetGCPercent(gogc); debug.SetMemoryLimit(limit) }()
	current := func() (int, int64) {
		g := debug.SetGCPercent(-1)
		debug.SetGCPercent(g)
		return g, debug.SetMemoryLimit(-1)
	}

	RuntimeDefaults(func(string) (string, bool) { return "", false })
	if g, l := current(); g != 400 || l != 128<<20 {
		t.Errorf("without GOGC and GOMEMLIMIT: GOGC %d, limit %d MiB; want 400 and 128 MiB", g, l>>20)
	}

	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	RuntimeDefaults(func(k string) (string, bool) { return "set", k == "GOGC" || k == "GOMEMLIMIT" })
	if g, l := current(); g != 100 || l != math.MaxInt64 {
		t.Errorf("with GOGC and GOMEMLIMIT set: GOGC %d, limit %d; the environment's values were replaced", g, l)
	}
}
