package load

import (
	"path/filepath"
	"testing"

	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// Revisions match their rows whatever the session's time zone.
func TestRevisionsInAnyTimeZone(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	if _, err := w.DB().Exec(`SET TimeZone = 'America/New_York'`); err != nil {
		t.Fatal(err)
	}
	cp := &CheckpointUpdate{Stream: schema.StreamUsage, Device: dev}
	write(t, w, Unit{Table: schema.UsageDaily, Checkpoint: cp, Rows: []transform.Row{usageRow(1, 10), usageRow(2, 20)}})
	tot := write(t, w, Unit{Table: schema.UsageDaily, Checkpoint: cp, Rows: []transform.Row{usageRow(1, 11), usageRow(2, 21)}})
	if got := tot.Tables[schema.UsageDaily]; got.Inserted != 0 || got.Updated != 2 {
		t.Errorf("revisions: %+v, want 2 updated", got)
	}
	if got := one(t, w, `SELECT count(*) || '/' || sum(bytes_used) FROM usage_daily`); got != "2/32" {
		t.Errorf("count/bytes = %s, want 2/32", got)
	}
}
