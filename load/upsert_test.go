package load

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// things is a table with every column role the plan reads from the
// schema: a key, a data column, a bookkeeping column, a column that keeps
// the first value of another, evolved columns and the extra map.
var things = schema.Table{
	Name: "things", Evolves: true, Order: []string{"id"},
	Columns: []schema.Column{
		{Name: "id", Type: schema.Varchar, Key: true},
		{Name: "size", Type: schema.BigInt},
		{Name: "last_seen_at", Type: schema.TimestampTZ, Bookkeeping: true},
		{Name: "first_seen_at", Type: schema.TimestampTZ, Loader: true, FirstOf: "last_seen_at"},
		{Name: schema.LoadedAtColumn, Type: schema.TimestampTZ, Loader: true},
		{Name: schema.ExtraColumn, Type: schema.ExtraMap, Loader: true},
	},
}

// oneLine folds a statement's whitespace, so tests compare its words.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// The statements an upsert runs, from the column flags: a data or evolved
// column counts as a change, the bookkeeping column is refreshed, the
// first-of column keeps the table's value or takes the staged row's
// last_seen_at, loader columns are not staged.
func TestUpsertPlanStatements(t *testing.T) {
	for _, c := range []struct {
		evolved                       []string
		create, mark, insert, refresh string
	}{{
		create: `CREATE OR REPLACE TEMP TABLE "stage_things" ("id" VARCHAR, "size" BIGINT, "last_seen_at" TIMESTAMPTZ, "extra" MAP(VARCHAR, VARCHAR), _seq BIGINT)`,
		mark: `CREATE OR REPLACE TEMP TABLE "stage_things_m" AS SELECT s.*, t."id" IS NOT NULL AS _existed,` +
			` (t."id" IS NOT NULL AND (t."size" IS DISTINCT FROM s."size" OR t."extra" IS DISTINCT FROM s."extra")) AS _changed,` +
			` coalesce(t."first_seen_at", s."last_seen_at") AS "_first_0"` +
			` FROM "stage_things_d" s LEFT JOIN "things" t ON t."id" IS NOT DISTINCT FROM s."id"`,
		insert: `INSERT INTO "things" ("id", "size", "last_seen_at", "extra", "loaded_at", "first_seen_at")` +
			` SELECT s."id", s."size", s."last_seen_at", s."extra", $1::TIMESTAMPTZ, s."_first_0"` +
			` FROM "stage_things_m" s WHERE s._changed OR NOT s._existed ORDER BY s."id"`,
		refresh: `UPDATE "things" t SET "last_seen_at" = s."last_seen_at" FROM "stage_things_m" s` +
			` WHERE s._existed AND NOT s._changed AND t."id" IS NOT DISTINCT FROM s."id"`,
	}, {
		evolved: []string{"color", "shape"},
		create:  `CREATE OR REPLACE TEMP TABLE "stage_things" ("id" VARCHAR, "size" BIGINT, "last_seen_at" TIMESTAMPTZ, "color" VARCHAR, "shape" VARCHAR, "extra" MAP(VARCHAR, VARCHAR), _seq BIGINT)`,
		mark: `CREATE OR REPLACE TEMP TABLE "stage_things_m" AS SELECT s.*, t."id" IS NOT NULL AS _existed,` +
			` (t."id" IS NOT NULL AND (t."size" IS DISTINCT FROM s."size" OR t."color" IS DISTINCT FROM s."color" OR t."shape" IS DISTINCT FROM s."shape" OR t."extra" IS DISTINCT FROM s."extra")) AS _changed,` +
			` coalesce(t."first_seen_at", s."last_seen_at") AS "_first_0"` +
			` FROM "stage_things_d" s LEFT JOIN "things" t ON t."id" IS NOT DISTINCT FROM s."id"`,
		insert: `INSERT INTO "things" ("id", "size", "last_seen_at", "color", "shape", "extra", "loaded_at", "first_seen_at")` +
			` SELECT s."id", s."size", s."last_seen_at", s."color", s."shape", s."extra", $1::TIMESTAMPTZ, s."_first_0"` +
			` FROM "stage_things_m" s WHERE s._changed OR NOT s._existed ORDER BY s."id"`,
		refresh: `UPDATE "things" t SET "last_seen_at" = s."last_seen_at" FROM "stage_things_m" s` +
			` WHERE s._existed AND NOT s._changed AND t."id" IS NOT DISTINCT FROM s."id"`,
	}} {
		p := newUpsertPlan(things, c.evolved)
		for _, s := range []struct{ what, got, want string }{
			{"create staging", p.create, c.create},
			{"mark", p.exact.mark, c.mark},
			{"insert", p.insert, c.insert},
			{"refresh", p.exact.refresh, c.refresh},
		} {
			if got := oneLine(s.got); got != s.want {
				t.Errorf("evolved %v, %s:\n got %s\nwant %s", c.evolved, s.what, got, s.want)
			}
		}
		// Only the check computes a first-of column: rows of such a table
		// are checked even when their keys are known to be new.
		row := transform.Row{Values: []any{"a", int64(1), t0, nil, nil, nil}}
		if fresh, checked := p.route(&tableBatch{rows: []transform.Row{row, row}, fresh: []bool{true, true}}); len(fresh) != 0 || len(checked) != 2 {
			t.Errorf("evolved %v: new keys appended %v, checked %v; want both checked", c.evolved, fresh, checked)
		}
	}

	// Without a bookkeeping column nothing is refreshed; a table with
	// row_hash is compared by its hash; a time key bounds the match.
	usage := newUpsertPlan(schema.MustLookup(schema.UsageDaily), nil)
	if usage.exact.refresh != "" || usage.firstOf {
		t.Errorf("usage_daily: refresh %q, first-of %v; want none", usage.exact.refresh, usage.firstOf)
	}
	if want := `(t."device_kind" IS NOT NULL AND (t."row_hash" IS DISTINCT FROM s._hash)) AS _changed FROM`; !strings.Contains(oneLine(usage.exact.mark), want) {
		t.Errorf("usage_daily mark %s\nwant the change found by %s", oneLine(usage.exact.mark), want)
	}
	if want := `AND t."usage_date" BETWEEN CAST($1 AS DATE) AND CAST($2 AS DATE)`; !strings.HasSuffix(oneLine(usage.spanned.remove), want) ||
		strings.Contains(usage.exact.remove, "BETWEEN") {
		t.Errorf("usage_daily remove: exact %s, spanned %s; want only the spanned one bounded by %s", oneLine(usage.exact.remove), oneLine(usage.spanned.remove), want)
	}
}

// A plan is built once per table and set of evolved columns: later
// batches reuse it, a new evolved column gets a plan of its own.
func TestUpsertPlanCached(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	defer w.Close()
	usage := schema.MustLookup(schema.UsageDaily)
	write(t, w, Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(1, 10)}})
	first := w.plans["usage_daily:"]
	if first == nil || len(w.plans) != 1 {
		t.Fatalf("after one batch the plans are %v, want usage_daily's", w.plans)
	}
	write(t, w, Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(1, 11), usageRow(2, 20)}})
	if w.plans["usage_daily:"] != first || len(w.plans) != 1 {
		t.Errorf("a second batch built another plan: %v", w.plans)
	}
	if w.plan(usage) != first {
		t.Error("plan() built a plan it had")
	}

	write(t, w, Unit{Table: schema.UsageDaily, Rows: []transform.Row{usageRow(3, 30, extract.Attribute{Key: "RoamingSms", Value: "2"})}})
	evolved := w.plans["usage_daily:roaming_sms"]
	if evolved == nil || evolved == first || !strings.Contains(evolved.insert, `"roaming_sms"`) || strings.Contains(first.insert, "roaming_sms") {
		t.Errorf("after evolution: plans %v; want a second plan staging roaming_sms, the first unchanged", w.plans)
	}
	if w.plan(usage) != evolved {
		t.Error("plan() rebuilt the evolved table's plan")
	}
	if got := one(t, w, `SELECT string_agg(bytes_used || ':' || coalesce(roaming_sms, '-'), ',' ORDER BY usage_date) FROM usage_daily`); got != "11:-,20:-,30:2" {
		t.Errorf("rows %s, want 11:-,20:-,30:2", got)
	}
}

// deviceRow is a devices row as transform builds it from the device list.
func deviceRow(state string, seen time.Time) transform.Row {
	tb := schema.MustLookup(schema.Devices)
	v := make([]any, len(tb.Columns))
	v[tb.Index("device_kind")] = dev.Kind
	v[tb.Index("device_id")] = dev.ID
	v[tb.Index("state")] = state
	v[tb.Index("last_seen_at")] = seen
	return transform.Row{Values: v}
}

// first_seen_at keeps the first last_seen_at; a later sighting with equal
// values refreshes last_seen_at without counting a change; a revised
// value is an update that keeps first_seen_at.
func TestUpsertFirstSeen(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	defer w.Close()
	t1, t2, t3 := t0, t0.Add(24*time.Hour), t0.Add(48*time.Hour)
	row := func() string {
		return one(t, w, `SELECT state FROM devices`) + "|" + one(t, w, `SELECT first_seen_at FROM devices`) + "|" + one(t, w, `SELECT last_seen_at FROM devices`)
	}
	at := func(tm time.Time) string { return tm.Format(time.RFC3339) }
	steps := []struct {
		what  string
		row   transform.Row
		count TableTotals
		want  string
	}{
		{"first sighting", deviceRow("active", t1), TableTotals{Inserted: 1}, "active|" + at(t1) + "|" + at(t1)},
		{"seen again, unchanged", deviceRow("active", t2), TableTotals{}, "active|" + at(t1) + "|" + at(t2)},
		{"revised", deviceRow("suspend", t3), TableTotals{Updated: 1}, "suspend|" + at(t1) + "|" + at(t3)},
	}
	for _, s := range steps {
		tot := write(t, w, Unit{Table: schema.Devices, Rows: []transform.Row{s.row}})
		if got := tot.Tables[schema.Devices]; got != s.count {
			t.Errorf("%s: counted %+v, want %+v", s.what, got, s.count)
		}
		if got := row(); got != s.want {
			t.Errorf("%s: state|first seen|last seen %s, want %s", s.what, got, s.want)
		}
	}
}
