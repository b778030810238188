package extract_test

import (
	"context"
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
}

func (s *recordingSink) States(context.Context, string) (map[extract.DeviceID]extract.State, error) {
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
	return nil
}
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
	sink := &recordingSink{panicOn: bad, batches: map[extract.DeviceID]int{}, failed: map[extract.DeviceID][]string{}}
	plan := extract.Plan{Now: t0, Step: 30 * 24 * time.Hour, Lookback: 72 * time.Hour, Daily: true, Start: t0.AddDate(0, 0, -40)}
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
