package aggregate

import (
	"context"
	"net"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/load"
)

// stepWorld is a simulated account, a warehouse that lists its devices
// with an ICCID as seen by a run started at started, and a step set up
// for it.
type stepWorld struct {
	sim     *simulator.Simulator
	clock   *simulator.ManualClock
	gate    *load.Gate
	wh      *load.Warehouse
	step    Step
	started time.Time
	devices int // active devices with an ICCID
}

func newStepWorld(t *testing.T, opts simulator.Options) *stepWorld {
	t.Helper()
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	clock := simulator.NewManualClock(t0)
	opts.Clock = clock
	opts.CallbackDelay = time.Millisecond
	opts.CallbackRetryInterval = 50 * time.Millisecond
	sim := simulator.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	id, secret, user, pass := sim.Credentials()
	client, err := extract.NewClient(extract.ClientConfig{BaseURL: srv.URL, ClientID: id, ClientSecret: secret, Username: user, Password: pass,
		AccountName: sim.AccountName(), RateLimit: 1000, Concurrency: 1, BackoffBase: time.Millisecond, RequestTimeout: 5 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wh.duckdb")
	gate := load.NewGate(path, zerolog.Nop())
	wh, release, err := gate.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	w := &stepWorld{sim: sim, clock: clock, gate: gate, wh: wh, started: t0.Add(-time.Minute)}
	for _, d := range sim.Devices() {
		for _, id := range d.IDs {
			if id.Kind != "iccid" {
				continue
			}
			if _, err := wh.DB().ExecContext(ctx, `INSERT INTO devices (device_kind, device_id, iccid, state, last_seen_at) VALUES (?, ?, ?, ?, ?)`,
				d.Identity.Kind, d.Identity.ID, id.ID, d.State, t0); err != nil {
				t.Fatal(err)
			}
			if !d.Deactivated {
				w.devices++
			}
		}
	}
	if w.devices == 0 {
		t.Fatal("no active device with an ICCID in the simulated account")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w.step = Step{Client: client, Gate: gate, Start: time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC), Now: clock.Now, Log: zerolog.Nop(),
		Callbacks: Callbacks{URL: "http://" + addr + "/cb", Addr: addr, Username: "cb-user", Password: "cb-secret", Lookback: 72 * time.Hour}}
	return w
}

// states counts the requests by state.
func (w *stepWorld) states(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, st := range []string{load.RequestPending, load.RequestCompleted, load.RequestReceived, load.RequestSuperseded} {
		rs, err := w.wh.AggregateRequests(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		out[st] = len(rs)
	}
	return out
}

// A one-shot run listens, asks (one request per month here: fewer than
// 200 devices, from October 20 to November 22) and returns once the data
// of every request is stored.
func TestStepOneShot(t *testing.T) {
	w := newStepWorld(t, simulator.Options{Devices: 8})
	w.step.Wait = time.Minute // ends early: every callback arrives
	start := time.Now()
	rep, err := w.step.Run(context.Background(), w.wh, w.started, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Report{Requested: 2, Received: 2}); rep != want {
		t.Errorf("report %+v, want %+v", rep, want)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the step took %s: it did not end when the data was stored", took)
	}
	if got := w.states(t); got[load.RequestReceived] != 2 || got[load.RequestPending]+got[load.RequestCompleted] != 0 {
		t.Errorf("requests by state %v, want 2 received", got)
	}
	var rows int
	if err := w.wh.DB().QueryRow(`SELECT count(*) FROM aggregate_usage`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 2*w.devices {
		t.Errorf("%d aggregate rows stored, want %d (2 periods × %d devices)", rows, 2*w.devices, w.devices)
	}
	if got := w.sim.Callbacks()[extract.AggregateService]; got != w.step.Callbacks.URL {
		t.Errorf("registered listener %q, want %q", got, w.step.Callbacks.URL)
	}
}

// A lost callback: the one-shot run waits Wait and reports it pending;
// a daemon's run (the listener elsewhere) does not wait, and past the
// deadline asks the lost request again.
func TestStepLostCallback(t *testing.T) {
	w := newStepWorld(t, simulator.Options{Devices: 8, Faults: simulator.Faults{LoseCallbacks: 1}})
	w.step.Wait = 500 * time.Millisecond
	w.step.Deadline = time.Hour
	rep, err := w.step.Run(context.Background(), w.wh, w.started, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Report{Requested: 2, Received: 1, Pending: 1}); rep != want {
		t.Errorf("first run: report %+v, want %+v", rep, want)
	}

	lost, err := w.wh.AggregateRequests(context.Background(), load.RequestPending)
	if err != nil || len(lost) != 1 {
		t.Fatalf("pending after the first run: %v (%v), want the lost request", lost, err)
	}

	// Before the deadline, a daemon's run leaves the lost request (October)
	// alone, asks again for November (not settled yet: it ended within
	// the lookback), and does not wait.
	w.clock.Advance(30 * time.Minute)
	rep, err = w.step.Run(context.Background(), w.wh, w.started, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Report{Requested: 1, Pending: 1}); rep != want {
		t.Errorf("before the deadline: report %+v, want %+v: the current month asked again (not settled), nothing waited for", rep, want)
	}
	if got := w.states(t); got[load.RequestSuperseded] != 0 {
		t.Errorf("before the deadline: requests by state %v, want none superseded", got)
	}

	// Past the deadline both requests nobody answered are asked again:
	// the lost one, and the second run's.
	w.clock.Advance(time.Hour)
	rep, err = w.step.Run(context.Background(), w.wh, w.started, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reasked != 2 || rep.Requested != 2 || rep.Pending != 2 {
		t.Errorf("past the deadline: report %+v, want the 2 unanswered requests asked again and nothing else", rep)
	}
	superseded, err := w.wh.AggregateRequests(context.Background(), load.RequestSuperseded)
	if err != nil {
		t.Fatal(err)
	}
	if len(superseded) != 2 || superseded[0].ID != lost[0].ID {
		t.Errorf("past the deadline: superseded %v, want the lost request %s first", superseded, lost[0].ID)
	}
}
