package extract_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/schema"
)

// Runs that each reach only part of the fleet before their budget visit
// every device in turn: each starts after the last device the one before
// reached, comes round to the top of the list, and the simulator's request
// log shows the list's order cycled, no device twice before every device
// once. The budget is checked against the run's clock, which here moves a
// minute per usage request, so each run reaches exactly four devices.
func TestWalkBudgetVisitsInTurn(t *testing.T) {
	e := setup(t, simulator.Options{Devices: 10, DevicePageSize: 3, RequestLog: 100}, nil)
	var order []string
	if err := e.client.Devices(context.Background(), func(page []extract.Device, _ bool) error {
		for _, d := range page {
			id, _ := extract.Identity(d.DeviceIDs)
			order = append(order, "usage "+id.String())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(order) != 10 {
		t.Fatalf("%d devices listed, want 10", len(order))
	}

	plan := extract.Plan{Now: t0, Ceiling: 30 * 24 * time.Hour, Lookback: 72 * time.Hour, Daily: true, Start: t0.AddDate(0, 0, -5)}
	walk := func(resume *int64, budget bool) extract.Result {
		t.Helper()
		base := len(e.sim.RequestLog())
		now := func() time.Time { return t0.Add(time.Duration(len(e.sim.RequestLog())-base) * time.Minute) }
		w := &extract.Walk{Client: e.client, Sink: newRecordingSink(), Log: zerolog.Nop(), Concurrency: 1, Streams: []string{schema.StreamUsage},
			Plans: map[string]extract.Plan{schema.StreamUsage: plan}, Now: now, StateChunk: 2, Resume: resume}
		if budget {
			w.Budget = t0.Add(3*time.Minute + 30*time.Second)
		}
		res, err := w.Run(context.Background())
		if err != nil {
			t.Fatalf("walk: %v", err)
		}
		return res
	}

	var resume *int64
	for run := range 4 {
		res := walk(resume, true)
		if !res.Budget || res.ListEnd || res.DevicesDone != 4 || res.ReachedNumber < 0 {
			t.Fatalf("run %d: budget %v, list end %v, %d devices done, reached %d; want the budget after 4 devices",
				run+1, res.Budget, res.ListEnd, res.DevicesDone, res.ReachedNumber)
		}
		n := res.ReachedNumber
		resume = &n
	}
	want := slices.Concat(order, order)[:16]
	if got := e.sim.RequestLog(); !slices.Equal(got, want) {
		t.Errorf("requests in order:\n%v\nwant the list's order cycled:\n%v", got, want)
	}

	// Without a budget, a resumed run reads the list once round: from
	// where the last run stopped to the end, then from the top to there.
	before := len(e.sim.RequestLog())
	res := walk(resume, false)
	if res.Budget || !res.ListEnd || res.DevicesDone != 10 || res.Devices != 10 {
		t.Errorf("unbudgeted run: budget %v, list end %v, %d of %d devices done; want all 10 once round", res.Budget, res.ListEnd, res.DevicesDone, res.Devices)
	}
	want = slices.Concat(order[6:], order[:6])
	if got := e.sim.RequestLog()[before:]; !slices.Equal(got, want) {
		t.Errorf("resumed run's requests:\n%v\nwant:\n%v", got, want)
	}
}
