package load

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/schema"
)

// A run's rate series replaces what an earlier call kept for it, and only
// the last schema.RunRatesKept runs keep theirs.
func TestRecordRatesKeepsTheLastRuns(t *testing.T) {
	ctx := context.Background()
	wh, err := Open(ctx, filepath.Join(t.TempDir(), "w.duckdb"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	var ids []string
	for i := range schema.RunRatesKept + 2 {
		at := t0.Add(time.Duration(i) * time.Hour)
		id, err := wh.StartRun(ctx, "sync", []string{"usage"}, at)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		for _, n := range []int{5, 7} { // a second call replaces the first
			mins := []RateMinute{{Minute: at, Requests: n, Throttled: 1, RateLimit: 10}, {Minute: at.Add(time.Minute), Requests: n, RateLimit: 12}}
			if err := wh.RecordRates(ctx, id, mins); err != nil {
				t.Fatal(err)
			}
		}
	}
	var runs, rows, requests int
	if err := wh.DB().QueryRow(`SELECT count(DISTINCT run_id), count(*), sum(requests) FROM sync_run_rates`).Scan(&runs, &rows, &requests); err != nil {
		t.Fatal(err)
	}
	if runs != schema.RunRatesKept || rows != 2*schema.RunRatesKept || requests != 14*schema.RunRatesKept {
		t.Errorf("kept %d runs, %d rows, %d requests; want %d runs of 2 minutes, 7 requests each", runs, rows, requests, schema.RunRatesKept)
	}
	var oldest int
	if err := wh.DB().QueryRow(`SELECT count(*) FROM sync_run_rates WHERE run_id IN (?, ?)`, ids[0], ids[1]).Scan(&oldest); err != nil || oldest != 0 {
		t.Errorf("the two oldest runs keep %d rows (%v), want 0", oldest, err)
	}
}
