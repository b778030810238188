package main

import (
	"math"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
)

// heapTuner bounds what GOGC=400 may cost in memory. GOGC lets the heap
// grow to 5× what is live, which is cheap while little is live (a sync of
// up to 10,000 devices) but not when more is (a very large account).
// After every collection the tuner sets the Go memory limit to the larger
// of floor and ratio × the live heap, so the heap stays within it and the
// collector never runs for a limit the live heap alone exceeds. What it
// saved and cost is in docs/design.md.
type heapTuner struct {
	floor  int64
	ratio  float64
	sample []rtmetrics.Sample

	mu      sync.Mutex
	stopped bool
}

// startHeapTuner sets the limit to floor and retunes it after each
// collection until Stop.
func startHeapTuner(floor int64, ratio float64) *heapTuner {
	t := &heapTuner{floor: floor, ratio: ratio, sample: []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	debug.SetMemoryLimit(floor)
	t.arm()
	return t
}

// Stop ends the tuning and removes the limit.
func (t *heapTuner) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	debug.SetMemoryLimit(math.MaxInt64)
}

// arm registers a finalizer on a fresh object: it runs once the next
// collection finds the object unreachable, so once a cycle.
func (t *heapTuner) arm() {
	sentinel := new([16]byte)
	runtime.SetFinalizer(sentinel, func(*[16]byte) {
		if t.tune() {
			t.arm()
		}
	})
}

// tune sets the limit from the live heap the last collection found; it
// reports false once stopped.
func (t *heapTuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	rtmetrics.Read(t.sample)
	if t.sample[0].Value.Kind() == rtmetrics.KindUint64 {
		live := float64(t.sample[0].Value.Uint64())
		debug.SetMemoryLimit(max(t.floor, int64(t.ratio*live)))
	}
	return true
}
