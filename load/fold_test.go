package load

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
)

// DuckDB holds the old values of every updated row until a checkpoint. A
// nightly run updates a checkpoint row per device-stream it visits, so on
// a large fleet the writer checkpoints during the run once those bytes
// pass FoldAbove; without that they grow with the fleet until a join
// fails for want of memory. Both writers here update the checkpoints of
// 40,000 devices, of three streams each (120,000 checkpoints a night) in commits of 2,000
// devices: the one without folds shows the growth the other
// is bounded against.
func TestWriterFoldsHeldUpdates(t *testing.T) {
	const devices, perCommit, foldAbove = 40_000, 2_000, 1 << 20
	run := func(t *testing.T, fold int64) (peak int64, folds int) {
		w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
		defer w.Close()
		for night := range 2 {
			settled := t0.AddDate(0, 0, night)
			wr := w.NewWriter(ctx, "", WriterOptions{BatchValues: perCommit, CommitValues: 1, CommitInterval: time.Hour,
				FlushInterval: time.Hour, FoldAbove: fold, Now: func() time.Time { return settled },
				Committed: func(Totals) {
					// Between the commit and the writer's fold: the most
					// the pool holds.
					held, err := w.updatesHeld(ctx)
					if err != nil {
						t.Error(err)
					}
					peak = max(peak, held)
				}})
			for i := range devices {
				d := extract.DeviceID{Kind: "iccid", ID: fmt.Sprintf("8914800000%010d", i)}
				for _, stream := range []string{schema.StreamConnections, schema.StreamRated, schema.StreamUsage} {
					u := Unit{Checkpoint: &CheckpointUpdate{Stream: stream, Device: d,
						SettledUntil: settled, FetchedUntil: settled, FetchedFrom: settled.AddDate(0, 0, -1)}}
					if stream == schema.StreamUsage {
						u.Visited = []extract.DeviceID{d} // one value: the device's last unit closes a batch
					}
					if err := wr.Submit(ctx, u); err != nil {
						t.Fatal(err)
					}
				}
			}
			tot, err := wr.Close(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tot.Batches != devices/perCommit {
				t.Fatalf("night %d: %d batches, want %d", night, tot.Batches, devices/perCommit)
			}
			folds += tot.Folds
		}
		if got := one(t, w, `SELECT count(*) FROM sync_checkpoints WHERE settled_until = ?`, t0.AddDate(0, 0, 1)); got != fmt.Sprint(3*devices) {
			t.Fatalf("%s checkpoints settled on the second night, want %d", got, 3*devices)
		}
		return peak, folds
	}
	unbounded, none := run(t, 1<<40)
	bounded, folds := run(t, foldAbove)
	t.Logf("updates held: %d bytes at most without folds, %d with FoldAbove %d (%d folds)", unbounded, bounded, foldAbove, folds)
	if none != 0 {
		t.Errorf("%d folds with FoldAbove past anything held", none)
	}
	if unbounded < 3*foldAbove {
		t.Fatalf("without folds the updates held peaked at %d bytes: the test no longer grows past %d", unbounded, 3*foldAbove)
	}
	if folds == 0 || bounded > 2*foldAbove {
		t.Errorf("with FoldAbove %d: %d folds, updates held peaked at %d bytes", foldAbove, folds, bounded)
	}
}
