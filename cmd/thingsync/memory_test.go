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
	finalizersRun(t)
	if got := limit(); got != math.MaxInt64 {
		t.Errorf("a collection after Stop set the limit to %d MiB", got>>20)
	}
}

// finalizersRun returns once every finalizer of an object that was
// unreachable when it was called has run. Finalizers run one at a time on
// one goroutine, batch after batch of those queued by collections; a
// batch runs its newest first. A sentinel queued after an earlier
// sentinel has run is in a later batch than anything queued before that:
// the second of two such sentinels runs after the finalizers the first
// collection queued (the tuner's, here).
func finalizersRun(t *testing.T) {
	t.Helper()
	for round := 0; round < 2; round++ {
		ran := make(chan struct{})
		sentinel := new([16]byte)
		runtime.SetFinalizer(sentinel, func(*[16]byte) { close(ran) })
		sentinel = nil
		deadline := time.Now().Add(10 * time.Second)
		for done := false; !done; {
			runtime.GC()
			select {
			case <-ran:
				done = true
			case <-time.After(10 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatal("a finalizer did not run within 10 s")
				}
			}
		}
	}
}
