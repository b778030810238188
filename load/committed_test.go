package load

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// The Committed hook hears each commit as it is made, before the writer
// closes, and what it heard over the run adds up to the totals Close
// returns: the daemon counts rows live from it without counting any twice.
func TestWriterCommittedHook(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	heard := make(chan Totals, 16)
	// CommitValues 1: every batch commits at once.
	wr := w.NewWriter(ctx, "", WriterOptions{BatchValues: 1, CommitValues: 1, CommitInterval: time.Hour,
		Now: func() time.Time { return t0 }, Committed: func(t Totals) { heard <- t }})
	usage := func(day int, bytes int64) Unit {
		return Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(day, bytes)}}
	}
	if err := wr.Submit(ctx, usage(1, 10)); err != nil {
		t.Fatal(err)
	}
	var sum Totals
	add := func(got Totals) {
		if sum.Tables == nil {
			sum.Tables = map[string]TableTotals{}
		}
		for k, v := range got.Tables {
			s := sum.Tables[k]
			s.Inserted += v.Inserted
			s.Updated += v.Updated
			sum.Tables[k] = s
		}
		sum.Rejected += got.Rejected
	}
	// The writer is still open: the first commit is heard now.
	select {
	case got := <-heard:
		if got.Tables[schema.UsageDaily].Inserted != 1 {
			t.Errorf("first commit heard %+v, want 1 usage row inserted", got)
		}
		add(got)
	case <-time.After(10 * time.Second):
		t.Fatal("the first commit was not heard while the writer was open")
	}
	for _, u := range []Unit{usage(1, 11), usage(2, 20), {Rejects: []transform.Reject{{Stream: schema.StreamUsage, Device: dev, Reason: "bad", Raw: json.RawMessage(`{}`)}}}} {
		if err := wr.Submit(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	tot, err := wr.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	close(heard)
	for got := range heard {
		add(got)
	}
	want := TableTotals{Inserted: 2, Updated: 1}
	if tot.Tables[schema.UsageDaily] != want || tot.Rejected != 1 {
		t.Fatalf("Close totals %+v, want %+v and 1 rejected", tot, want)
	}
	if sum.Tables[schema.UsageDaily] != tot.Tables[schema.UsageDaily] || sum.Rejected != tot.Rejected {
		t.Errorf("heard %+v over the commits, Close returned %+v", sum, tot)
	}
}
