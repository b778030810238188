package load

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// A gap before the covered stretch fetched window by window, oldest first,
// each window committed on its own (as a backfill of many devices commits
// them): covered_from moves back to the gap's start once the last window
// reaches the stretch, not only to that window's start.
func TestCoveredFromAcrossCommits(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	unit := func(from, to int, settled time.Time) Unit {
		return Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(from, 1)}, Checkpoint: &CheckpointUpdate{
			Stream: schema.StreamUsage, Device: dev, FetchedFrom: day(from), FetchedUntil: day(to), SettledUntil: settled}}
	}
	covered := func() time.Time {
		t.Helper()
		var cf time.Time
		if err := w.DB().QueryRow(`SELECT covered_from FROM sync_checkpoints WHERE stream = 'usage'`).Scan(&cf); err != nil {
			t.Fatal(err)
		}
		return cf.UTC()
	}
	// The sync: [11, 21).
	write(t, w, unit(11, 21, day(18)))
	if got := covered(); !got.Equal(day(11)) {
		t.Fatalf("covered_from %v after the sync, want %v", got, day(11))
	}
	// The backfill of [1, 11): three windows, three commits.
	wr := w.NewWriter(ctx, "", WriterOptions{BatchValues: 1, CommitValues: 1, CommitInterval: time.Hour, Now: func() time.Time { return t0 }})
	for _, u := range []Unit{unit(1, 4, time.Time{}), unit(4, 7, time.Time{}), unit(7, 11, time.Time{})} {
		if err := wr.Submit(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	tot, err := wr.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tot.Batches < 3 {
		t.Fatalf("%d batches, want the windows in 3", tot.Batches)
	}
	if got := covered(); !got.Equal(day(1)) {
		t.Errorf("covered_from %v after the backfill, want %v: the gap's first windows are loaded but counted missing", got, day(1))
	}
}
