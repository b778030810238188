package extract_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/schema"
)

// recordingSink keeps what the walker hands over; Batch panics for one
// device, as a defect would.
type recordingSink struct {
	mu      sync.Mutex
	panicOn extract.DeviceID
	batches map[extract.DeviceID]int
	failed  map[extract.DeviceID][]string
	// asked counts the checkpoint reads of each device; events is the
	// order of reads and stores.
	asked  map[extract.DeviceID]int
	events []string
}

func newRecordingSink() *recordingSink {
	return &recordingSink{batches: map[extract.DeviceID]int{}, failed: map[extract.DeviceID][]string{}, asked: map[extract.DeviceID]int{}}
}

func (s *recordingSink) States(_ context.Context, stream string, ids []extract.DeviceID) (map[extract.DeviceID]extract.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf("states %s %d", stream, len(ids)))
	for _, id := range ids {
		s.asked[id]++
	}
	return map[extract.DeviceID]extract.State{}, nil
}
func (s *recordingSink) Devices(context.Context, []extract.Device, time.Time) error { return nil }
func (s *recordingSink) Batch(_ context.Context, b extract.Batch) error {
	if b.Device == s.panicOn {
		panic("a record nothing foresaw")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches[b.Device]++
	s.events = append(s.events, "batch")
	return nil
}
func (s *recordingSink) Visited(context.Context, extract.DeviceID) error { return nil }

func (s *recordingSink) Failed(_ context.Context, stream string, dev extract.DeviceID, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed[dev] = append(s.failed[dev], stream+": "+err.Error())
	return nil
}

// A panic while fetching one device is that device's failure: recorded,
// and the other devices complete.
func TestWalkPanicIsAFailedDevice(t *testing.T) {
	e := setup(t, simulator.Options{Devices: 6}, nil)
	bad := firstActive(t, e.sim)
	sink := newRecordingSink()
	sink.panicOn = bad
	plan := extract.Plan{Now: t0, Ceiling: 30 * 24 * time.Hour, Lookback: 72 * time.Hour, Daily: true, Start: t0.AddDate(0, 0, -40)}
	w := &extract.Walk{Client: e.client, Sink: sink, Log: zerolog.Nop(), Concurrency: 2, Streams: []string{schema.StreamUsage},
		Plans: map[string]extract.Plan{schema.StreamUsage: plan}, Now: func() time.Time { return t0 }}
	res, err := w.Run(context.Background())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.DevicesFailed != 1 || res.Failures[bad] == nil || !strings.Contains(res.Failures[bad].Error(), "panic") {
		t.Errorf("failures %v, want the panicking device only", res.Failures)
	}
	if got := sink.failed[bad]; len(got) != 1 || !strings.Contains(got[0], "a record nothing foresaw") {
		t.Errorf("recorded failure %v", got)
	}
	if len(sink.batches) != res.Devices-1 {
		t.Errorf("%d devices stored, want the other %d", len(sink.batches), res.Devices-1)
	}
}

// The walk reads checkpoints a chunk of devices at a time (here a device
// page), and fetches the first chunk's devices before it lists the last
// page: it never holds the account's whole device list or all its
// checkpoints.
func TestWalkStreamsDevicePages(t *testing.T) {
	e := setup(t, simulator.Options{Devices: 7, DevicePageSize: 2}, nil)
	sink := newRecordingSink()
	plan := extract.Plan{Now: t0, Ceiling: 30 * 24 * time.Hour, Lookback: 72 * time.Hour, Daily: true, Start: t0.AddDate(0, 0, -5)}
	w := &extract.Walk{Client: e.client, Sink: sink, Log: zerolog.Nop(), Concurrency: 1, Streams: []string{schema.StreamUsage},
		Plans: map[string]extract.Plan{schema.StreamUsage: plan}, Now: func() time.Time { return t0 }, StateChunk: 2}
	res, err := w.Run(context.Background())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Devices != 7 || len(sink.asked) != 7 || len(sink.batches) != res.Devices {
		t.Fatalf("%d devices walked, %d asked about, %d stored; want 7 each", res.Devices, len(sink.asked), len(sink.batches))
	}
	var reads, lastRead, firstStore int
	firstStore = -1
	for i, ev := range sink.events {
		switch {
		case strings.HasPrefix(ev, "states"):
			reads++
			lastRead = i
			if ev != "states usage 2" && ev != "states usage 1" {
				t.Errorf("read %q: want one page of at most 2 devices", ev)
			}
		case firstStore < 0:
			firstStore = i
		}
	}
	for id, n := range sink.asked {
		if n != 1 {
			t.Errorf("checkpoint of %s read %d times", id, n)
		}
	}
	if reads != 4 {
		t.Errorf("%d checkpoint reads, want one per device page (4)", reads)
	}
	if firstStore < 0 || firstStore > lastRead {
		t.Errorf("events %v: the first device was stored only after the last page was listed", sink.events)
	}
}
