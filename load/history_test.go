package load

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// listed is a devices row with a service plan and groups, seen at seen.
func listed(state, plan string, seen time.Time, groups ...string) transform.Row {
	r := deviceRow(state, seen)
	tb := schema.MustLookup(schema.Devices)
	r.Values[tb.Index("service_plan")] = plan
	r.Values[tb.Index("group_names")] = groups
	return r
}

func historyOf(t *testing.T, w *Warehouse) string {
	t.Helper()
	return one(t, w, `SELECT coalesce(string_agg(strftime(valid_from, '%d %H') || '-' || coalesce(strftime(valid_to, '%d %H'), 'open') || ' ' || state || ' ' || service_plan
		|| ' ' || array_to_string(group_names, '+'), ', ' ORDER BY valid_from), '') FROM device_history`)
}

// A warehouse made by the previous version (no device_history, no
// usage_daily.is_provisional, migration 1 only) opens with both: its rows
// kept, each device given an open period from its last sighting, each
// usage day its flag from the checkpoint. The history then follows the
// device list batch by batch: a change closes the period and opens one,
// the same values (in any group order) or an older listing change nothing.
func TestHistoryOnAnOlderWarehouse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := open(t, path)
	var usage []transform.Row
	for d := 15; d <= 22; d++ {
		usage = append(usage, usageRow(d, int64(d)))
	}
	write(t, w, Unit{Table: schema.Devices, Rows: []transform.Row{listed("active", "P1", t0, "A")}},
		Unit{Table: schema.UsageDaily, Rows: usage, Checkpoint: &CheckpointUpdate{Stream: schema.StreamUsage, Device: dev,
			SettledUntil: time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC), FetchedUntil: t0, FetchedFrom: time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)}})
	if got := one(t, w, `SELECT string_agg(CAST(is_provisional AS VARCHAR), ',' ORDER BY usage_date) FROM usage_daily`); got != "false,false,false,false,true,true,true,true" {
		t.Errorf("is_provisional by day 15..22 after the load: %s", got)
	}
	for _, s := range []string{`DROP TABLE device_history`, `ALTER TABLE usage_daily DROP COLUMN is_provisional`, `DELETE FROM schema_migrations WHERE version > 1`} {
		if _, err := w.DB().Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	w.Close()

	w = open(t, path)
	defer w.Close()
	if got := one(t, w, `SELECT count(*) || ' ' || sum(bytes_used) || ' ' || string_agg(CAST(is_provisional AS VARCHAR), ',' ORDER BY usage_date) FROM usage_daily`); got != "8 148 false,false,false,false,true,true,true,true" {
		t.Errorf("usage_daily rows, bytes, is_provisional by day after the upgrade: %s", got)
	}
	if got := historyOf(t, w); got != "22 12-open active P1 A" {
		t.Errorf("device_history after the upgrade: %q", got)
	}
	steps := []struct {
		what string
		row  transform.Row
		tt   TableTotals
		want string
	}{
		{"same listing again", listed("active", "P1", t0, "A"), TableTotals{}, "22 12-open active P1 A"},
		{"plan changed", listed("active", "P2", t0.Add(24*time.Hour), "A"), TableTotals{Inserted: 1, Updated: 1},
			"22 12-23 12 active P1 A, 23 12-open active P2 A"},
		{"a later listing, same values", listed("active", "P2", t0.Add(30*time.Hour), "A"), TableTotals{}, "22 12-23 12 active P1 A, 23 12-open active P2 A"},
		{"an older listing replayed", listed("suspend", "P9", t0.Add(time.Hour), "A"), TableTotals{}, "22 12-23 12 active P1 A, 23 12-open active P2 A"},
		{"groups changed", listed("active", "P2", t0.Add(48*time.Hour), "B", "A"), TableTotals{Inserted: 1, Updated: 1},
			"22 12-23 12 active P1 A, 23 12-24 12 active P2 A, 24 12-open active P2 B+A"},
		{"same groups, another order", listed("active", "P2", t0.Add(72*time.Hour), "A", "B"), TableTotals{},
			"22 12-23 12 active P1 A, 23 12-24 12 active P2 A, 24 12-open active P2 B+A"},
		{"suspended", listed("suspend", "P2", t0.Add(96*time.Hour), "A", "B"), TableTotals{Inserted: 1, Updated: 1},
			"22 12-23 12 active P1 A, 23 12-24 12 active P2 A, 24 12-26 12 active P2 B+A, 26 12-open suspend P2 A+B"},
	}
	for _, s := range steps {
		tot := write(t, w, Unit{Table: schema.Devices, Rows: []transform.Row{s.row}})
		if got := tot.Tables[schema.DeviceHistory]; got != s.tt {
			t.Errorf("%s: device_history counted %+v, want %+v", s.what, got, s.tt)
		}
		if got := historyOf(t, w); got != s.want {
			t.Errorf("%s: device_history %q, want %q", s.what, got, s.want)
		}
	}
	// A complete listing that no longer shows the device ends its period;
	// one that starts before its last sighting does not.
	for _, c := range []struct {
		from time.Time
		n    int64
	}{{t0.Add(96 * time.Hour), 0}, {t0.Add(120 * time.Hour), 1}, {t0.Add(144 * time.Hour), 0}} {
		if n, err := w.CloseVanished(ctx, c.from, c.from); err != nil || n != c.n {
			t.Errorf("CloseVanished(%s): %d, %v; want %d", c.from, n, err, c.n)
		}
	}
	if got := historyOf(t, w); got != "22 12-23 12 active P1 A, 23 12-24 12 active P2 A, 24 12-26 12 active P2 B+A, 26 12-27 12 suspend P2 A+B" {
		t.Errorf("device_history after the device left the list: %q", got)
	}
	// It comes back: a new period.
	write(t, w, Unit{Table: schema.Devices, Rows: []transform.Row{listed("suspend", "P2", t0.Add(168*time.Hour), "A", "B")}})
	if got := one(t, w, `SELECT count(*) || ' ' || count(*) FILTER (WHERE valid_to IS NULL) FROM device_history`); got != "5 1" {
		t.Errorf("periods, open periods after the device came back: %s", got)
	}
}
