package ingest

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/load"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// testRunner is a runner over a small simulated account and a new
// warehouse file at db.
func testRunner(t *testing.T, db string) *Runner {
	t.Helper()
	clock := simulator.NewManualClock(t0)
	sim := simulator.New(simulator.Options{Devices: 3, Seed: 7, Clock: clock})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	env := sim.ClientEnv(srv.URL, map[string]string{
		"THINGSYNC_DB": db, "THINGSYNC_RATE_LIMIT": "5000", "THINGSYNC_STREAMS": "usage,connections",
	})
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(env), t0, config.Needs{API: true})
	if err != nil {
		t.Fatal(err)
	}
	g := load.NewGate(db, zerolog.Nop())
	g.Patience = time.Nanosecond
	return &Runner{Config: cfg, Log: zerolog.Nop(), Gate: g, Now: clock.Now}
}

// The status a run reports is the one sync_runs records, with its detail.
func TestRunRecordsItsOutcome(t *testing.T) {
	db := filepath.Join(t.TempDir(), "w.duckdb")
	r := testRunner(t, db)
	rep, err := r.Run(context.Background(), Spec{Kind: "sync", Streams: []string{"usage", "connections"}})
	if err != nil || rep.Status != StatusOK || rep.Result.Devices != 3 || !strings.HasPrefix(rep.Summary, "sync: 3 devices (0 failed)") {
		t.Fatalf("first run: %+v, %v; want ok over 3 devices", rep, err)
	}
	nobody := extract.DeviceID{Kind: "imei", ID: "000"}
	rep2, err := r.Run(context.Background(), Spec{Kind: "backfill", Streams: []string{"usage"},
		Backfill: &extract.Range{From: t0.AddDate(0, 0, -2), To: t0.AddDate(0, 0, -1)}, Only: []extract.DeviceID{nobody}})
	var e *Error
	if rep2.Status != StatusPartial || !errors.As(err, &e) || e.Kind != Partial ||
		e.Error() != "no device of the account matches --device imei:000" {
		t.Fatalf("backfill of an unknown device: status %s, error %v; want partial naming it", rep2.Status, err)
	}

	sdb, err := load.OpenReadOnly(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	rows, err := sdb.Query(`SELECT run_id, kind, status, coalesce(error, '') FROM sync_runs ORDER BY started_at, kind DESC`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id, kind, status, detail string
		if err := rows.Scan(&id, &kind, &status, &detail); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join([]string{id, kind, status, detail}, "|"))
	}
	want := []string{rep.RunID + "|sync|ok|", rep2.RunID + "|backfill|partial|no device of the account matches --device imei:000"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sync_runs:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A run that never got the warehouse records nothing: interrupted when
// its context ended first, cannot-run when the file cannot be opened.
func TestRunBeforeTheWarehouse(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := testRunner(t, filepath.Join(t.TempDir(), "w.duckdb")).Run(ctx, Spec{Kind: "sync", Streams: []string{"usage"}})
	var e *Error
	if rep.Status != StatusInterrupted || rep.RunID != "" || !errors.As(err, &e) || e.Kind != Partial || e.Error() != "interrupted before the run started" {
		t.Errorf("cancelled before the start: %+v, %v; want interrupted, partial, no run", rep, err)
	}

	db := filepath.Join(t.TempDir(), "missing", "w.duckdb")
	rep, err = testRunner(t, db).Run(context.Background(), Spec{Kind: "sync", Streams: []string{"usage"}})
	if rep.Status != StatusFailed || rep.RunID != "" || !errors.As(err, &e) || e.Kind != CannotRun || !strings.HasPrefix(e.Error(), "open warehouse "+db+": ") {
		t.Errorf("warehouse in a missing directory: %+v, %v; want failed, cannot run, naming the file", rep, err)
	}
}
