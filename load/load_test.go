package load

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

var (
	ctx = context.Background()
	t0  = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	dev = extract.DeviceID{Kind: "iccid", ID: "89148000000000000001"}
)

func open(t *testing.T, path string) *Warehouse {
	t.Helper()
	w, err := Open(ctx, path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func one(t *testing.T, w *Warehouse, q string, args ...any) string {
	t.Helper()
	var v any
	if err := w.DB().QueryRow(q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if tm, ok := v.(time.Time); ok {
		return tm.UTC().Format(time.RFC3339)
	}
	return fmt.Sprint(v)
}

// usageRow builds a usage_daily row the way transform does.
func usageRow(day int, bytes int64, unknown ...extract.Attribute) transform.Row {
	tb := schema.MustLookup(schema.UsageDaily)
	v := make([]any, len(tb.Columns))
	set := func(name string, x any) { v[tb.Index(name)] = x }
	set("device_kind", dev.Kind)
	set("device_id", dev.ID)
	set("usage_date", time.Date(2026, 11, day, 0, 0, 0, 0, time.UTC))
	set("bytes_used", bytes)
	set("sms_used", int32(1))
	set("source", "Raw Usage")
	return transform.Row{Values: v, Unknown: unknown}
}

func write(t *testing.T, w *Warehouse, units ...Unit) Totals {
	t.Helper()
	wr := w.NewWriter(ctx, "", WriterOptions{Now: func() time.Time { return t0 }})
	for _, u := range units {
		if err := wr.Submit(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	tot, err := wr.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tot
}

func TestMigrationsAndComments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := open(t, path)
	for _, tb := range schema.Tables() {
		if got := one(t, w, `SELECT count(*) FROM duckdb_columns() WHERE table_name = ?`, tb.Name); got != fmt.Sprint(len(tb.Columns)) {
			t.Errorf("%s has %s columns, want %d", tb.Name, got, len(tb.Columns))
		}
	}
	if got := one(t, w, `SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' AND (comment IS NULL OR comment = '')`); got != "0" {
		t.Errorf("%s columns without a comment", got)
	}
	if got := one(t, w, `SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' AND (comment IS NULL OR comment = '')`); got != "0" {
		t.Errorf("%s tables without a comment", got)
	}
	// An older file that lacks a column gets it on the next open.
	if _, err := w.DB().Exec(`ALTER TABLE usage_daily DROP COLUMN source`); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w = open(t, path)
	defer w.Close()
	if got := one(t, w, `SELECT count(*) FROM duckdb_columns() WHERE table_name = 'usage_daily' AND column_name = 'source'`); got != "1" {
		t.Error("reopening did not add the missing column")
	}
	if got, want := one(t, w, `SELECT count(*) FROM schema_migrations`), fmt.Sprint(len(migrations())); got != want {
		t.Errorf("migrations recorded: %s, want %s", got, want)
	}
}

func TestUpsert(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	defer w.Close()
	cp := func(settled time.Time) *CheckpointUpdate {
		return &CheckpointUpdate{Stream: schema.StreamUsage, Device: dev, SettledUntil: settled, FetchedUntil: settled}
	}
	tot := write(t, w, Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(1, 10), usageRow(2, 20)}, Checkpoint: cp(t0.AddDate(0, 0, -5))})
	if got := tot.Tables[schema.UsageDaily]; got != (TableTotals{Inserted: 2}) {
		t.Errorf("first write %+v", got)
	}
	loaded := one(t, w, `SELECT max(loaded_at) FROM usage_daily`)

	tot = write(t, w, Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(1, 10), usageRow(2, 20)}})
	if got := tot.Tables[schema.UsageDaily]; got != (TableTotals{}) {
		t.Errorf("rewrite of equal rows %+v, want nothing", got)
	}
	if one(t, w, `SELECT max(loaded_at) FROM usage_daily`) != loaded {
		t.Error("equal rows were rewritten")
	}

	// A revision and, in one batch, two versions of a key: the last wins.
	tot = write(t, w,
		Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(2, 21), usageRow(3, 30)}},
		Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(2, 22)}, Checkpoint: cp(t0.AddDate(0, 0, -9))})
	if got := tot.Tables[schema.UsageDaily]; got != (TableTotals{Inserted: 1, Updated: 1}) {
		t.Errorf("revision %+v", got)
	}
	if got := one(t, w, `SELECT string_agg(bytes_used::VARCHAR, ',' ORDER BY usage_date) FROM usage_daily`); got != "10,22,30" {
		t.Errorf("values %s, want 10,22,30", got)
	}
	if got := one(t, w, `SELECT settled_until FROM sync_checkpoints`); got != t0.AddDate(0, 0, -5).Format(time.RFC3339) {
		t.Errorf("checkpoint moved backwards to %s", got)
	}

	// A failure keeps the checkpoint and records the error.
	write(t, w, Unit{Checkpoint: &CheckpointUpdate{Stream: schema.StreamUsage, Device: dev, Err: "HTTP 500: boom"}})
	if got := one(t, w, `SELECT settled_until || '|' || failures || '|' || last_error FROM sync_checkpoints`); !strings.HasSuffix(got, "|1|HTTP 500: boom") || !strings.HasPrefix(got, "2026-11-17") {
		t.Errorf("after a failure: %s", got)
	}
	write(t, w, Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(4, 40)}, Checkpoint: cp(t0.AddDate(0, 0, -3))})
	if got := one(t, w, `SELECT coalesce(last_error, 'none') || '|' || failures FROM sync_checkpoints`); got != "none|0" {
		t.Errorf("after a success: %s", got)
	}
}

func TestEvolution(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := open(t, path)
	hostile := `x"; DROP TABLE usage_daily; --`
	write(t, w, Unit{Table: schema.UsageDaily, Rows: []transform.Row{
		usageRow(1, 1, extract.Attribute{Key: "RoamingSms", Value: "3"}, extract.Attribute{Key: hostile, Value: "'; DELETE FROM devices; --"}),
		usageRow(2, 2, extract.Attribute{Key: "roaming_sms", Value: "4"}),
	}})
	if got := one(t, w, `SELECT roaming_sms || '|' || x_drop_table_usage_daily FROM usage_daily WHERE bytes_used = 1`); got != "3|'; DELETE FROM devices; --" {
		t.Errorf("evolved values: %s", got)
	}
	if got := one(t, w, `SELECT roaming_sms_2 FROM usage_daily WHERE bytes_used = 2`); got != "4" {
		t.Errorf("a second spelling gets its own column: %s", got)
	}
	if got := one(t, w, `SELECT attribute_key FROM schema_columns WHERE column_name = 'x_drop_table_usage_daily'`); got != hostile {
		t.Errorf("schema_columns records %q, want the key as sent", got)
	}
	w.Close()

	// Reopened, the map of keys to columns is the same; past the cap keys
	// go to the extra map.
	w = open(t, path)
	defer w.Close()
	var attrs []extract.Attribute
	for i := 0; i < schema.MaxEvolvedColumns; i++ {
		attrs = append(attrs, extract.Attribute{Key: fmt.Sprintf("Key%d", i), Value: fmt.Sprint(i)})
	}
	attrs = append(attrs, extract.Attribute{Key: "RoamingSms", Value: "5"})
	write(t, w, Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(3, 3, attrs...)}})
	if got := one(t, w, `SELECT count(*) FROM schema_columns WHERE column_name <> 'extra'`); got != fmt.Sprint(schema.MaxEvolvedColumns) {
		t.Errorf("evolved columns %s, want the cap %d", got, schema.MaxEvolvedColumns)
	}
	if got := one(t, w, `SELECT roaming_sms || '|' || cardinality(extra) FROM usage_daily WHERE bytes_used = 3`); got != "5|3" {
		t.Errorf("after the cap: %s, want RoamingSms in its column and 3 keys in extra", got)
	}
}

// Keys no column can be named after, or whose text would break SQL text
// (a NUL ends DuckDB's parse of a statement), are data: a run goes on, the
// key is recorded as sent, its value lands in a column or the extra map.
func TestEvolutionHostileKeys(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	defer w.Close()
	long := strings.Repeat("k", 10<<10)
	keys := []struct{ key, col string }{
		{"x\x00", "x"},
		{"\x00'\n", "extra"},
		{"温度", "extra"},
		{"select", "select_2"},
		{"Extra", "extra_2"},
		{"bytes used", "bytes_used_2"},
		{"a'); DROP TABLE devices; --\x00", "a_drop_table_devices"},
		{long, strings.Repeat("k", 63)},
		{long + "x", strings.Repeat("k", 61) + "_2"},
	}
	var attrs []extract.Attribute
	for i, k := range keys {
		attrs = append(attrs, extract.Attribute{Key: k.key, Value: fmt.Sprintf("v%d\x00'", i)})
	}
	write(t, w, Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(1, 1, attrs...)}})
	for i, k := range keys {
		want := fmt.Sprintf("v%d\x00'", i)
		if got := one(t, w, `SELECT column_name FROM schema_columns WHERE attribute_key = ?`, k.key); got != k.col {
			t.Errorf("key %.40q: column %s, want %s", k.key, got, k.col)
			continue
		}
		q := `SELECT ` + schema.Ident(k.col) + ` FROM usage_daily`
		if k.col == "extra" {
			q = `SELECT extra[?] FROM usage_daily`
			if got := one(t, w, q, k.key); got != want {
				t.Errorf("key %.40q: extra holds %q, want %q", k.key, got, want)
			}
			continue
		}
		if got := one(t, w, q); got != want {
			t.Errorf("key %.40q: column %s holds %q, want %q", k.key, k.col, got, want)
		}
	}
	if got := one(t, w, `SELECT count(DISTINCT coalesce(comment, '')) || '|' || min(comment) FROM duckdb_columns() c JOIN schema_columns e USING (table_name, column_name)
		WHERE c.database_name = current_database() AND e.column_name <> 'extra'`); got != "1|"+schema.EvolvedComment {
		t.Errorf("evolved columns' comments: %s, want the fixed text", got)
	}
}

// Rows of a window past what was ever loaded go straight in; duplicates in
// it keep the last, a row straying before the window takes the checked
// path, and evolved columns land in the right place whatever their order.
func TestFreshWindows(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	cp := func(to int) *CheckpointUpdate {
		return &CheckpointUpdate{Stream: schema.StreamUsage, Device: dev, FetchedUntil: day(to)}
	}
	// A first window: days 1–4, day 2 sent twice (the last counts).
	tot := write(t, w, Unit{Table: schema.UsageDaily, Checkpoint: cp(5), FreshFrom: day(1), FreshTo: day(5),
		Rows: []transform.Row{usageRow(1, 10), usageRow(2, 20), usageRow(2, 21, extract.Attribute{Key: "NewKey", Value: "x"}), usageRow(3, 30), usageRow(4, 40)}})
	if got := tot.Tables[schema.UsageDaily]; got.Inserted != 4 || got.Updated != 0 {
		t.Errorf("first window: %+v, want 4 inserted", got)
	}
	if got := one(t, w, `SELECT bytes_used || '/' || new_key FROM usage_daily WHERE usage_date = '2026-11-02'`); got != "21/x" {
		t.Errorf("day 2 = %s, want the last row sent, 21/x", got)
	}
	// The next window [5, 8) with a stray revision of day 4 and a new
	// attribute evolved after new_key.
	tot = write(t, w, Unit{Table: schema.UsageDaily, Checkpoint: cp(8), FreshFrom: day(5), FreshTo: day(8),
		Rows: []transform.Row{usageRow(4, 41), usageRow(5, 50, extract.Attribute{Key: "Other", Value: "y"}), usageRow(6, 60)}})
	if got := tot.Tables[schema.UsageDaily]; got.Inserted != 2 || got.Updated != 1 {
		t.Errorf("second window: %+v, want 2 inserted, 1 updated", got)
	}
	if got := one(t, w, `SELECT count(*) || '/' || count(DISTINCT usage_date) || '/' || sum(bytes_used) FROM usage_daily`); got != "6/6/212" {
		t.Errorf("count/distinct days/bytes = %s, want 6/6/212", got)
	}
	if got := one(t, w, `SELECT coalesce(new_key, '-') || other || loaded_at::VARCHAR FROM usage_daily WHERE usage_date = '2026-11-05'`); got != "-y2026-11-22 12:00:00+00" {
		t.Errorf("day 5 = %s", got)
	}
}

// The row hash tells values and their types apart, ignores the order of a
// map's keys, is the same every time, and does not see an evolved column
// while it is NULL.
func TestRowHash(t *testing.T) {
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	l := layout{data: make([]int, 5), extra: true} // five data columns, then extra
	base := []driver.Value{"iccid", int64(1), int32(2), at, nil, duckdb.Map{"a": "1", "b": nil}}
	h := l.rowHash(base)
	if h != l.rowHash([]driver.Value{"iccid", int64(1), int32(2), at, nil, duckdb.Map{"b": nil, "a": "1"}}) {
		t.Error("map key order changed the hash")
	}
	for name, v := range map[string][]driver.Value{
		"int64 → int32":  {"iccid", int32(1), int32(2), at, nil, duckdb.Map{"a": "1", "b": nil}},
		"value":          {"iccid", int64(3), int32(2), at, nil, duckdb.Map{"a": "1", "b": nil}},
		"NULL → empty":   {"iccid", int64(1), int32(2), at, "", duckdb.Map{"a": "1", "b": nil}},
		"time":           {"iccid", int64(1), int32(2), at.Add(time.Second), nil, duckdb.Map{"a": "1", "b": nil}},
		"map value":      {"iccid", int64(1), int32(2), at, nil, duckdb.Map{"a": "1", "b": "x"}},
		"shifted string": {"iccid1", int64(1), int32(2), at, nil, duckdb.Map{"a": "1", "b": nil}},
	} {
		if l.rowHash(v) == h {
			t.Errorf("%s: same hash", name)
		}
	}

	// Two evolved columns, x and y, between the data and extra.
	le := layout{data: make([]int, 5), evolved: []string{"x", "y"}, extra: true}
	with := func(x, y driver.Value) []driver.Value {
		return []driver.Value{"iccid", int64(1), int32(2), at, nil, x, y, duckdb.Map{"a": "1", "b": nil}}
	}
	if le.rowHash(with(nil, nil)) != h {
		t.Error("NULL evolved columns changed the hash")
	}
	if le.rowHash(with("v", nil)) == h || le.rowHash(with("v", nil)) == le.rowHash(with(nil, "v")) {
		t.Error("an evolved column's value, or which column holds it, does not change the hash")
	}

	// It runs for every loaded row: a row without a map allocates nothing.
	plain := []driver.Value{"iccid", int64(1), int32(2), at, "a text longer than eight bytes", nil}
	if n := testing.AllocsPerRun(100, func() { l.rowHash(plain) }); n != 0 {
		t.Errorf("rowHash allocates %.0f times a row", n)
	}
}

// Batches share a transaction until it is old or large enough: its rows
// and checkpoints commit together, a failure in a later batch takes the
// earlier ones back with it, and an idle transaction commits on its own.
func TestWriterTransactions(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	unit := func(d int) Unit {
		return Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(d, int64(d))},
			Checkpoint: &CheckpointUpdate{Stream: schema.StreamUsage, Device: dev, FetchedUntil: day(d + 1)}}
	}
	// awaitCommit waits until dev's usage checkpoint is committed. The open
	// transaction holds the warehouse's one connection, so each read waits
	// for the commit; after 10 s the test fails instead of hanging.
	awaitCommit := func(t *testing.T, w *Warehouse, what string) {
		t.Helper()
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for {
			cps, err := w.Checkpoints(wait, schema.StreamUsage)
			if err != nil {
				t.Fatalf("%s was not committed: %v", what, err)
			}
			if !cps[dev].FetchedUntil.IsZero() {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	fetched := func(w *Warehouse) time.Time {
		t.Helper()
		cps, err := w.Checkpoints(ctx, schema.StreamUsage)
		if err != nil {
			t.Fatal(err)
		}
		return cps[dev].FetchedUntil
	}

	t.Run("a later failure rolls back earlier batches", func(t *testing.T) {
		w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
		// BatchValues 1: every unit is its own batch.
		wr := w.NewWriter(ctx, "", WriterOptions{BatchValues: 1, CommitInterval: time.Hour, Now: func() time.Time { return t0 }})
		for _, u := range []Unit{unit(1), unit(2), {Table: "no_such_table", Rows: []transform.Row{usageRow(3, 3)}}} {
			if err := wr.Submit(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := wr.Close(ctx); err == nil || !strings.Contains(err.Error(), "no_such_table") {
			t.Fatalf("Close = %v, want the failed batch's error", err)
		}
		if n := one(t, w, "SELECT count(*) FROM usage_daily"); n != "0" {
			t.Errorf("%s rows committed, want 0: the batches shared the failed transaction", n)
		}
		if got := fetched(w); !got.IsZero() {
			t.Errorf("checkpoint moved to %v without its rows", got)
		}
	})

	t.Run("many batches, one commit", func(t *testing.T) {
		w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
		wr := w.NewWriter(ctx, "", WriterOptions{BatchValues: 1, CommitInterval: time.Hour, Now: func() time.Time { return t0 }})
		for d := 1; d <= 5; d++ {
			if err := wr.Submit(ctx, unit(d)); err != nil {
				t.Fatal(err)
			}
		}
		tot, err := wr.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := tot.Tables[schema.UsageDaily]; got.Inserted != 5 || tot.Batches != 5 {
			t.Errorf("totals %+v, %d batches; want 5 inserted in 5 batches", got, tot.Batches)
		}
		if got := fetched(w); !got.Equal(day(6)) {
			t.Errorf("fetched_until = %v, want %v (the last batch's)", got, day(6))
		}
	})

	t.Run("staged rows count toward the commit", func(t *testing.T) {
		// A row's own values are half the commit's size; the three staging
		// copies of the checked path make up the rest, so the batch commits
		// at once instead of at Close.
		w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
		width := len(usageRow(1, 1).Values)
		wr := w.NewWriter(ctx, "", WriterOptions{BatchValues: 1, CommitValues: 2 * width, CommitInterval: time.Hour, Now: func() time.Time { return t0 }})
		defer wr.Close(ctx)
		if err := wr.Submit(ctx, unit(1)); err != nil {
			t.Fatal(err)
		}
		awaitCommit(t, w, "a batch that staged three times the commit size")
	})

	t.Run("the queue holds a bounded number of values", func(t *testing.T) {
		w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
		width := len(usageRow(1, 1).Values)
		wr := w.NewWriter(ctx, "", WriterOptions{QueueValues: width, Now: func() time.Time { return t0 }})
		// Fill the queue's room as queued units would.
		if err := wr.room.Acquire(ctx, int64(width)); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if err := wr.Submit(short, unit(1)); err != context.DeadlineExceeded {
			t.Fatalf("Submit into a full queue = %v, want it to wait until its context ends", err)
		}
		wr.room.Release(int64(width))
		// A unit larger than the whole queue takes all of it and goes alone.
		big := unit(2)
		big.Rows = append(big.Rows, usageRow(3, 3), usageRow(4, 4))
		for _, u := range []Unit{big, unit(5), big} {
			if err := wr.Submit(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		tot, err := wr.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := tot.Tables[schema.UsageDaily].Inserted; got != 4 {
			t.Errorf("%d rows inserted, want 4 (days 2-5; the first unit gave up)", got)
		}
	})

	t.Run("an idle transaction commits", func(t *testing.T) {
		w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
		wr := w.NewWriter(ctx, "", WriterOptions{BatchValues: 1, CommitInterval: 200 * time.Millisecond, Now: func() time.Time { return t0 }})
		defer wr.Close(ctx)
		if err := wr.Submit(ctx, unit(1)); err != nil {
			t.Fatal(err)
		}
		awaitCommit(t, w, "the transaction of a writer sitting idle")
		if n := one(t, w, "SELECT count(*) FROM usage_daily"); n != "1" {
			t.Errorf("%s rows beside the committed checkpoint, want 1", n)
		}
	})
}

// A column that schema evolution adds in the middle of a run leaves the
// rows loaded before it as they were: a rerun of the same rows, through
// the checked path, finds every row hash equal and changes nothing.
func TestEvolutionKeepsRowHashes(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	day := func(d int) time.Time { return time.Date(2026, 10, d, 0, 0, 0, 0, time.UTC) }
	units := func(fresh bool) []Unit {
		var us []Unit
		for d := 1; d <= 20; d++ {
			r := usageRow(d, int64(d*100))
			r.Values[schema.MustLookup(schema.UsageDaily).Index("usage_date")] = day(d)
			if d == 10 {
				r.Unknown = []extract.Attribute{{Key: "LateKey", Value: "late"}}
			}
			u := Unit{Table: schema.UsageDaily, Rows: []transform.Row{r},
				Checkpoint: &CheckpointUpdate{Stream: schema.StreamUsage, Device: dev, FetchedUntil: day(d + 1)}}
			if fresh {
				u.FreshFrom, u.FreshTo = day(d), day(d+1)
			}
			us = append(us, u)
		}
		return us
	}
	run := func(us []Unit) Totals {
		wr := w.NewWriter(ctx, "", WriterOptions{BatchValues: 1, Now: func() time.Time { return t0 }})
		for _, u := range us {
			if err := wr.Submit(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		tot, err := wr.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tot
	}
	if got := run(units(true)).Tables[schema.UsageDaily]; got.Inserted != 20 || got.Updated != 0 {
		t.Fatalf("first write: %+v, want 20 inserted", got)
	}
	if got := one(t, w, `SELECT count(*) || '/' || sum(bytes_used) || '/' || count(late_key) || '/' || min(late_key) || '/' || count(row_hash) FROM usage_daily`); got != "20/21000/1/late/20" {
		t.Errorf("rows/bytes/late_key count/late_key/hashes = %s, want 20/21000/1/late/20", got)
	}
	if got := one(t, w, `SELECT usage_date::VARCHAR FROM usage_daily WHERE late_key IS NOT NULL`); got != "2026-10-10" {
		t.Errorf("late_key set on %s, want 2026-10-10", got)
	}
	// The same rows again, through the checked path: nothing changes.
	if got := run(units(false)).Tables[schema.UsageDaily]; got.Inserted != 0 || got.Updated != 0 {
		t.Errorf("rerun: %+v, want nothing inserted or updated", got)
	}
}

// DeviceStates gives the committed checkpoints of the devices asked for,
// and answers while the writer holds a transaction open: the walker asks
// for every device page during the run.
func TestDeviceStates(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	defer w.Close()
	other := extract.DeviceID{Kind: "imei", ID: dev.ID} // same id, another kind
	settled, fetched := t0.Add(-72*time.Hour), t0
	write(t, w,
		Unit{Checkpoint: &CheckpointUpdate{Stream: schema.StreamUsage, Device: dev, SettledUntil: settled, FetchedUntil: fetched}},
		Unit{Checkpoint: &CheckpointUpdate{Stream: schema.StreamUsage, Device: other, FetchedUntil: fetched, Retire: true}},
		Unit{Checkpoint: &CheckpointUpdate{Stream: schema.StreamConnections, Device: dev, FetchedUntil: fetched.Add(-time.Hour)}})

	// An open transaction on the warehouse's one write connection, as the
	// writer keeps between commits; it rolls back when the test ends.
	began, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- w.Transact(ctx, func(conn *sql.Conn) error {
			if _, err := conn.ExecContext(ctx, `UPDATE sync_checkpoints SET fetched_until = fetched_until + INTERVAL 1 DAY`); err != nil {
				return err
			}
			close(began)
			<-release
			return errors.New("roll back")
		})
	}()
	select {
	case <-began:
	case err := <-held:
		t.Fatal(err)
	}
	defer func() { close(release); <-held }()

	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	unknown := extract.DeviceID{Kind: "iccid", ID: "8914"}
	got, err := w.DeviceStates(wait, schema.StreamUsage, []extract.DeviceID{dev, unknown})
	if err != nil {
		t.Fatalf("with a transaction open: %v", err)
	}
	want := map[extract.DeviceID]extract.State{dev: {SettledUntil: settled, FetchedUntil: fetched}}
	if len(got) != len(want) || got[dev] != want[dev] {
		t.Errorf("usage states %v, want %v (the committed checkpoint of the device asked for, none for the unknown one)", got, want)
	}
	got, err = w.DeviceStates(wait, schema.StreamUsage, []extract.DeviceID{other})
	if err != nil || len(got) != 1 || !got[other].Retired || !got[other].SettledUntil.IsZero() {
		t.Errorf("states of %s: %v, %v; want retired, never settled", other, got, err)
	}
	if got, err := w.DeviceStates(wait, schema.StreamConnections, nil); err != nil || len(got) != 0 {
		t.Errorf("no devices: %v, %v", got, err)
	}
}

// A unit's weight counts its text, so the queue, batch and transaction
// bounds (in values) bound bytes whatever the API puts in a value.
func TestUnitValuesCountText(t *testing.T) {
	small := transform.Row{Values: []any{"iccid", "8914800000", int64(5), time.Unix(0, 0)}}
	if got := unitValues(Unit{Rows: []transform.Row{small}}); got != 4 {
		t.Errorf("a row of 4 short values weighs %d, want 4", got)
	}
	big := strings.Repeat("x", 1<<20)
	units := map[string]Unit{
		"a column":          {Rows: []transform.Row{{Values: []any{"iccid", big}}}},
		"an unknown key":    {Rows: []transform.Row{{Values: []any{"iccid"}, Unknown: []extract.Attribute{{Key: "k", Value: big}}}}},
		"a rejected record": {Rejects: []transform.Reject{{Reason: "bad", Raw: json.RawMessage(big)}}},
	}
	for name, u := range units {
		if got := unitValues(u); got*textPerValue < 1<<20 {
			t.Errorf("1 MiB of text in %s weighs %d values (%d bytes' worth), want at least 1 MiB's worth", name, got, got*textPerValue)
		}
	}
}
