package ingest

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/load"
)

// A run that reaches its budget commits, ends with status budget and no
// error, and the next run carries on after the last device it reached
// (the warehouse keeps where): three runs of four devices visit the ten
// devices in list order, round to the top. The devices the last runs did
// not reach are counted. The runs' clock moves a minute per request to
// the simulator, so each run reaches exactly four devices.
func TestRunBudgetCarriesOn(t *testing.T) {
	db := filepath.Join(t.TempDir(), "w.duckdb")
	sim := simulator.New(simulator.Options{Devices: 10, Seed: 7, DevicePageSize: 3, RequestLog: 100, Clock: simulator.NewManualClock(t0)})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	env := sim.ClientEnv(srv.URL, map[string]string{
		"THINGSYNC_DB": db, "THINGSYNC_RATE_LIMIT": "5000", "THINGSYNC_STREAMS": "usage", "THINGSYNC_CONCURRENCY": "1",
		"THINGSYNC_START": t0.AddDate(0, 0, -5).Format(time.DateOnly),
	})
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(env), t0, config.Needs{API: true})
	if err != nil {
		t.Fatal(err)
	}
	g := load.NewGate(db, zerolog.Nop())
	g.Patience = time.Nanosecond
	now := func() time.Time { return t0.Add(time.Duration(len(sim.RequestLog())) * time.Minute) }
	r := &Runner{Config: cfg, Log: zerolog.Nop(), Gate: g, Now: now}

	notVisited := func() *load.NotVisited {
		t.Helper()
		rdb, err := load.OpenReadOnly(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer rdb.Close()
		st, err := load.ReadStatus(context.Background(), rdb, load.StatusOptions{Now: now()})
		if err != nil {
			t.Fatal(err)
		}
		return st.NotVisited
	}
	var visits [][]string
	for run := range 3 {
		before := len(sim.RequestLog())
		rep, err := r.Run(context.Background(), Spec{Kind: "sync", Streams: []string{"usage"}, Budget: 3*time.Minute + 30*time.Second})
		if err != nil || rep.Status != StatusBudget || rep.Result.DevicesDone != 4 {
			t.Fatalf("run %d: %s, %d devices done, %v; want budget after 4 devices, no error", run+1, rep.Status, rep.Result.DevicesDone, err)
		}
		visits = append(visits, sim.RequestLog()[before:])
		nv := notVisited()
		if want := (&load.NotVisited{Runs: run + 1, Devices: max(0, 10-4*(run+1))}); nv == nil || *nv != *want {
			t.Errorf("after run %d: not visited %+v, want %+v", run+1, nv, want)
		}
	}
	var order []string
	for _, d := range sim.Devices() {
		order = append(order, "usage "+d.Identity.String())
	}
	if got, want := slices.Concat(visits...), slices.Concat(order, order)[:12]; !slices.Equal(got, want) {
		t.Errorf("devices in the order the runs asked for them:\n%v\nwant the list's order, round to the top:\n%v", got, want)
	}
}
