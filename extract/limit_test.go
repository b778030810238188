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

const day = 24 * time.Hour

// countingSink keeps the records and windows each device-stream got.
type countingSink struct {
	mu     sync.Mutex
	usage  map[extract.DeviceID]int
	events map[extract.DeviceID]int
	failed []string
}

func newCountingSink() *countingSink {
	return &countingSink{usage: map[extract.DeviceID]int{}, events: map[extract.DeviceID]int{}}
}

func (s *countingSink) States(context.Context, string, []extract.DeviceID) (map[extract.DeviceID]extract.State, error) {
	return map[extract.DeviceID]extract.State{}, nil
}
func (s *countingSink) Devices(context.Context, []extract.Device, time.Time) error { return nil }
func (s *countingSink) Visited(context.Context, extract.DeviceID) error            { return nil }
func (s *countingSink) Batch(_ context.Context, b extract.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.usage[b.Device] += len(b.Usage)
	s.events[b.Device] += len(b.Events)
	return nil
}
func (s *countingSink) Failed(_ context.Context, stream string, dev extract.DeviceID, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = append(s.failed, stream+" "+dev.String()+": "+err.Error())
	return nil
}

// windowWalk is a first sync of both history streams, one device at a
// time, with windows up to ceiling and the limits given.
func windowWalk(e *env, sink extract.Sink, ceiling time.Duration, usage, conns *extract.RangeLimit) *extract.Walk {
	plans := map[string]extract.Plan{
		schema.StreamUsage:       {Now: t0, Ceiling: ceiling, Limit: usage, Lookback: 3 * day, Daily: true},
		schema.StreamConnections: {Now: t0, Ceiling: ceiling, Limit: conns, Lookback: day},
	}
	return &extract.Walk{Client: e.client, Sink: sink, Log: zerolog.New(e.logs), Concurrency: 1,
		Streams: []string{schema.StreamUsage, schema.StreamConnections}, Plans: plans, Now: func() time.Time { return t0 }}
}

// checkTruth compares what each device got with the simulator's truth.
func checkTruth(t *testing.T, sim *simulator.Simulator, sink *countingSink) {
	t.Helper()
	if len(sink.failed) > 0 {
		t.Fatalf("failed: %v", sink.failed)
	}
	var rows, events int
	for _, d := range sim.Devices() {
		id := extract.DeviceID{Kind: d.Identity.Kind, ID: d.Identity.ID}
		u, ev := len(sim.TruthUsage(t0, time.Time{}, time.Time{}, d.Identity)), len(sim.TruthEvents(t0, time.Time{}, time.Time{}, d.Identity))
		if sink.usage[id] != u || sink.events[id] != ev {
			t.Errorf("%s: %d usage records and %d events fetched, truth %d and %d", id, sink.usage[id], sink.events[id], u, ev)
		}
		rows, events = rows+u, events+ev
	}
	if rows == 0 || events == 0 {
		t.Fatal("the account has no history: the test proves nothing")
	}
}

// A refusal splits the window and teaches the width to the whole fleet:
// the first devices pay a few refusals while the width is found, the
// later ones ask the learned width at once (365½ days at 90: five
// windows a stream), and every record arrives.
func TestRangeLimitLearnedForTheFleet(t *testing.T) {
	e := setup(t, simulator.Options{Devices: 16, Faults: simulator.Faults{MaxRange: 90 * day}}, nil)
	sink := newCountingSink()
	usage, conns := extract.NewRangeLimit(367*day, extract.RangeLearned{}), extract.NewRangeLimit(367*day, extract.RangeLearned{})
	if _, err := windowWalk(e, sink, 367*day, usage, conns).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkTruth(t, e.sim, sink)
	st := e.sim.Stats()
	// One refusal a device-stream would be 32; learning costs the first
	// devices 3 halvings and a refusal or two while the width is tried.
	if st.RangesRefused == 0 || st.RangesRefused > 12 {
		t.Errorf("%d ranges refused, want 1-12: learned once for the fleet", st.RangesRefused)
	}
	devs := e.sim.Devices()
	for _, d := range devs[len(devs)/2:] {
		if n := st.DeviceRequests["usage "+d.Identity.String()]; n != 5 {
			t.Errorf("usage of %s (a later device) asked in %d requests, want 5: 365½ days at the learned 90", d.Identity, n)
		}
	}
	for name, l := range map[string]*extract.RangeLimit{"usage": usage, "connections": conns} {
		got, changed := l.Learned()
		if !changed || got.Answered != 90*day || got.Refused <= 90*day || got.Refused > 92*day {
			t.Errorf("%s learned %v (changed %v), want answered 90 days, refused just over", name, got, changed)
		}
	}
}

// A run that starts from a learned width asks it at once: one window a
// stream goes at the ceiling (has the limit been lifted?), no other is
// refused. Lifted, the limit is forgotten.
func TestRangeLimitFromAnEarlierRun(t *testing.T) {
	e := setup(t, simulator.Options{Devices: 6, Faults: simulator.Faults{MaxRange: 90 * day}}, nil)
	learned := extract.RangeLearned{Answered: 90 * day, Refused: 91 * day}
	sink := newCountingSink()
	usage, conns := extract.NewRangeLimit(367*day, learned), extract.NewRangeLimit(367*day, learned)
	if _, err := windowWalk(e, sink, 367*day, usage, conns).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkTruth(t, e.sim, sink)
	if st := e.sim.Stats(); st.RangesRefused != 2 || st.Requests["usage"] != 6*5+1 {
		t.Errorf("%d ranges refused, %d usage requests; want 2 (one probe a stream) and 31 (five a device, and the probe)",
			st.RangesRefused, st.Requests["usage"])
	}
	if got, changed := usage.Learned(); changed || got != learned {
		t.Errorf("usage learned %v (changed %v), want %v unchanged", got, changed, learned)
	}

	// The API lifts its limit: the next run's probe is answered and the
	// width is the ceiling again.
	e.sim.SetFaults(simulator.Faults{})
	e.sim.ResetStats()
	sink = newCountingSink()
	usage = extract.NewRangeLimit(367*day, learned)
	if _, err := windowWalk(e, sink, 367*day, usage, nil).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkTruth(t, e.sim, sink)
	if got, _ := usage.Learned(); got.Refused != 0 {
		t.Errorf("usage learned %v after the probe was answered, want no refusal", got)
	}
	if n := e.sim.Stats().Requests["usage"]; n != 6 {
		t.Errorf("%d usage requests, want 6: the probe answered, one a device", n)
	}
}

// A range that times out is split, but a timeout is not a refusal: the
// width stays the ceiling, and the next device asks its whole span again.
func TestRangeLimitTimeoutIsNotARefusal(t *testing.T) {
	e := setup(t, simulator.Options{Devices: 4, Faults: simulator.Faults{SlowRange: 100 * day}}, nil)
	sink := newCountingSink()
	usage := extract.NewRangeLimit(367*day, extract.RangeLearned{})
	if _, err := windowWalk(e, sink, 367*day, usage, nil).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkTruth(t, e.sim, sink)
	got, _ := usage.Learned()
	if got.Refused != 0 || usage.Width(366*day) != 367*day {
		t.Errorf("learned %v, width %v after timeouts; want no refusal and the ceiling", got, usage.Width(366*day))
	}
	// Each device: its whole span (365½ days) times out (asked twice), so
	// do Split's two parts of 182 days (twice each) while the 1½ days
	// left over are answered, then their four halves of 91 days.
	for _, d := range e.sim.Devices() {
		if n := e.sim.Stats().DeviceRequests["usage "+d.Identity.String()]; n != 2+4+1+4 {
			t.Errorf("usage of %s asked %d times, want 11: every device starts at the ceiling", d.Identity, n)
		}
	}
}

// The ceiling caps the width, learned or not.
func TestRangeLimitCeiling(t *testing.T) {
	if w := extract.NewRangeLimit(30*day, extract.RangeLearned{}).Width(365 * day); w != 30*day {
		t.Errorf("nothing learned: width %v, want the ceiling of 30 days", w)
	}
	l := extract.NewRangeLimit(30*day, extract.RangeLearned{Answered: 90 * day, Refused: 91 * day})
	for i := 0; i < 3; i++ {
		if w := l.Width(365 * day); w != 30*day {
			t.Errorf("learned 90 days: width %v, want the ceiling of 30 days", w)
		}
	}
	e := setup(t, simulator.Options{Devices: 3, Faults: simulator.Faults{MaxRange: 90 * day}}, nil)
	sink := newCountingSink()
	if _, err := windowWalk(e, sink, 30*day, extract.NewRangeLimit(30*day, extract.RangeLearned{}), nil).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkTruth(t, e.sim, sink)
	if st := e.sim.Stats(); st.RangesRefused != 0 || st.Requests["usage"] != 3*13 {
		t.Errorf("%d refused, %d usage requests; want none refused and 39 (13 windows of 30 days a device)", st.RangesRefused, st.Requests["usage"])
	}
}

func TestRangeLearnedRoundTrip(t *testing.T) {
	for _, l := range []extract.RangeLearned{{}, {Answered: 90 * day, Refused: 91*day + time.Second}} {
		got, err := extract.ParseRangeLearned(l.String())
		if err != nil || got != l {
			t.Errorf("ParseRangeLearned(%q) = %v, %v; want %v", l.String(), got, err, l)
		}
	}
	for _, bad := range []string{"answered=1x", "width=3d", "answered"} {
		if _, err := extract.ParseRangeLearned(bad); err == nil {
			t.Errorf("ParseRangeLearned(%q): no error", bad)
		}
	}
}

// A wide window whose pages together pass the memory cap, or the page
// ceiling, is split, as one that times out, until its parts fit: the busy
// device is fetched whole, in more requests, and the width learned for the
// fleet stays the ceiling.
func TestWindowOverfullIsSplit(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cap      int64
		pageSize int
		log      string
	}{
		{"memory cap", 256 << 10, 50, "pass the memory cap; splitting"},
		// Pages of 5 events: a device-year's thousand-odd events take more
		// than the 150 pages a window may.
		{"page ceiling", 1 << 30, 5, "pass the page ceiling; splitting"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, simulator.Options{Devices: 3, HistoryPageSize: tt.pageSize}, func(c *extract.ClientConfig) { c.MaxBodyBytes = tt.cap })
			sink := newCountingSink()
			conns := extract.NewRangeLimit(367*day, extract.RangeLearned{})
			if _, err := windowWalk(e, sink, 367*day, nil, conns).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkTruth(t, e.sim, sink)
			if got, _ := conns.Learned(); got.Refused != 0 {
				t.Errorf("learned %v, want no refusal", got)
			}
			if !strings.Contains(e.logs.String(), tt.log) {
				t.Errorf("no log %q: the test proves nothing", tt.log)
			}
		})
	}
}

// A history that fills the memory cap or the page ceiling at any width
// (202 without end, records a second apart) costs a few caps or ceilings
// of pages more with wide windows than with 3-day ones, not a year of
// them: the window is halved down to 3 days, then the device fails naming
// the bound.
func TestWideWindowsBoundAnEndlessHistory(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cap      int64
		pageSize int
		reason   string
	}{
		{"memory cap", 1 << 20, 500, "cap (THINGSYNC_MAX_ANSWER_MB)"},
		// Small pages: the ceiling counts pages, not records.
		{"page ceiling", 1 << 30, 20, "too many pages: still more after"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			requests := func(ceiling time.Duration) (int, []string, string) {
				e := setup(t, simulator.Options{Devices: 2, HistoryPageSize: tt.pageSize, Faults: simulator.Faults{EndlessHistory: time.Second}},
					func(c *extract.ClientConfig) { c.MaxBodyBytes = tt.cap })
				sink := newCountingSink()
				if _, err := windowWalk(e, sink, ceiling, nil, extract.NewRangeLimit(ceiling, extract.RangeLearned{})).Run(context.Background()); err != nil {
					t.Fatal(err)
				}
				return e.sim.Stats().DeviceRequests["connections "+e.sim.Devices()[0].Identity.String()], sink.failed, e.logs.String()
			}
			narrow, _, logs := requests(3 * day)
			if strings.Contains(logs, "; splitting") {
				t.Error("a 3-day window was split: the device should fail at once, as before windows were wide")
			}
			wide, failed, _ := requests(367 * day)
			t.Logf("hostile device's connection requests: %d with 3-day windows, %d with 367-day ones", narrow, wide)
			var bounded bool
			for _, f := range failed {
				bounded = bounded || strings.HasPrefix(f, "connections ") && strings.Contains(f, tt.reason)
			}
			if !bounded {
				t.Errorf("failures %v, want the hostile device's connections failed with %q", failed, tt.reason)
			}
			if wide <= narrow || wide > 8*narrow {
				t.Errorf("%d requests with wide windows, %d with 3-day ones: want more, at most 8 times as many", wide, narrow)
			}
		})
	}
}
