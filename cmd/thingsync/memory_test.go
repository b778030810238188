package main

import (
	"math"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"testing"
	"time"
)

// The Go memory limit follows the live heap: the floor while little is
// live, ratio × live once more is, the floor again once it is freed, and
// no limit after Stop.
func TestHeapTuner(t *testing.T) {
	const floor = 32 << 20
	limit := func() int64 { return debug.SetMemoryLimit(-1) }
	// await collects until the limit satisfies ok: the tuner runs after
	// a collection, on the finalizer goroutine.
	await := func(what string, ok func(int64) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(limit()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the limit stayed %d MiB", what, limit()>>20)
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}

	tuner := startHeapTuner(floor, 2.5)
	defer tuner.Stop()
	if got := limit(); got != floor {
		t.Fatalf("limit %d MiB at the start, want the floor, %d MiB", got>>20, floor>>20)
	}

	// What else this test binary keeps live counts too.
	runtime.GC()
	sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(sample)
	before := int64(sample[0].Value.Uint64())
	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	want := 5 * (before + 64<<20) / 2
	await("64 MiB more live", func(l int64) bool { return l >= want*9/10 && l <= want*11/10 })
	runtime.KeepAlive(live)
	live = nil
	await("freed", func(l int64) bool { return l == floor })

	tuner.Stop()
	if got := limit(); got != math.MaxInt64 {
		t.Fatalf("limit %d MiB after Stop, want none", got>>20)
	}
	runtime.GC()
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	if got := limit(); got != math.MaxInt64 {
		t.Errorf("a collection after Stop set the limit to %d MiB", got>>20)
	}
}
