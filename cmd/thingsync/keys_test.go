package main

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/internal/testseed"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
)

// testSeed is the test's seed (testseed.Seed).
func testSeed(t *testing.T) int64 { return testseed.Seed(t, "./cmd/thingsync") }

var evolvedName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Attribute keys of any bytes (the fixed hostile set and random bytes from
// a printed seed) never fail a run and never reach SQL text: sync exits 0
// every time, the warehouse keeps exactly its tables, every evolved column
// is named from [a-z0-9_], and each key's value is loaded under the key as
// a JSON decoder reads it, in a column or in extra.
func TestSyncOddKeys(t *testing.T) {
	seed := testSeed(t)
	w := newWorld(t, simulator.Options{Devices: 6, Quirks: simulator.Quirks{HostileKeys: true, KeySeed: seed}})
	dev := w.sim.Devices()[0].Identity
	rows := len(w.wantUsage(t0, dev))
	if rows == 0 {
		t.Fatalf("device 0 (%s) has no usage: the quirk keys would not be sent", dev)
	}
	for run := 1; run <= 2; run++ {
		if code, out := w.run("sync"); code != 0 {
			t.Fatalf("sync %d: exit %d, want 0\n%s", run, code, out)
		}
	}
	diffLines(t, "usage_daily", w.gotUsage(), w.wantUsage(t0))
	db, err := load.OpenReadOnly(context.Background(), w.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	query := func(q string, args ...any) []string { t.Helper(); return queryLines(t, db, q, args...) }

	// The tables are the schema's, and no others.
	var want []string
	for _, tb := range schema.Tables() {
		if tb.View == "" {
			want = append(want, tb.Name)
		}
	}
	slices.Sort(want)
	got := query(`SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' ORDER BY 1`)
	if !slices.Equal(got, want) {
		t.Errorf("tables %v, want %v", got, want)
	}
	if got := query(`SELECT count(*) FROM devices`); got[0] != "6" {
		t.Errorf("%s devices, want 6", got[0])
	}
	// Every column the schema does not declare is an evolved one, named
	// only from [a-z0-9_].
	for _, tb := range schema.Tables() {
		for _, c := range query(`SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND table_name = ?`, tb.Name) {
			if tb.Index(c) >= 0 {
				continue
			}
			if !tb.Evolves || !evolvedName.MatchString(c) {
				t.Errorf("%s.%q: a column the schema does not declare", tb.Name, c)
			}
			if n := query(`SELECT count(*) FROM schema_columns WHERE table_name = ? AND column_name = ?`, tb.Name, c); n[0] != "1" {
				t.Errorf("%s.%s: recorded %s times in schema_columns, want once", tb.Name, c, n[0])
			}
		}
	}

	// Each key, as a JSON decoder reads the bytes sent, holds the last
	// value sent under it on every usage row of device 0.
	usage := schema.MustLookup(schema.UsageDaily)
	known := usage.AttrColumns()
	last := map[string]string{}
	var order []string
	for _, k := range w.sim.OddKeys() {
		var key string
		if err := json.Unmarshal(k.JSON, &key); err != nil {
			t.Fatalf("the simulator sent a key encoding/json cannot read: %q: %v", k.JSON, err)
		}
		if _, ok := known[schema.AttrKey(key)]; ok {
			continue // a random key that spells a known attribute fills its column
		}
		if _, ok := last[key]; !ok {
			order = append(order, key)
		}
		last[key] = k.Value
	}
	for _, key := range order {
		cols := query(`SELECT column_name FROM schema_columns WHERE table_name = 'usage_daily' AND attribute_key = ?`, key)
		if len(cols) != 1 {
			t.Errorf("key %.60q: schema_columns has %d rows, want 1", key, len(cols))
			continue
		}
		col := cols[0]
		var n []string
		switch {
		case col == schema.ExtraColumn:
			n = query(`SELECT count(*) FROM usage_daily WHERE device_id = ? AND extra[?] = ?`, dev.ID, key, last[key])
		case evolvedName.MatchString(col):
			n = query(`SELECT count(*) FROM usage_daily WHERE device_id = ? AND `+schema.Ident(col)+` = ?`, dev.ID, last[key])
		default:
			t.Errorf("key %.60q: column %q is not a sanitised name", key, col)
			continue
		}
		if n[0] != strconv.Itoa(rows) {
			t.Errorf("key %.60q (column %s): value %q on %s of device 0's %d usage rows", key, col, last[key], n[0], rows)
		}
	}
}

// A negative byte count, a date in year 9999 and the zero date are all
// implausible: each record goes to rejected_records with its reason, the
// device's other days load, and the run succeeds.
func TestSyncImplausibleRecords(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 3, Quirks: simulator.Quirks{Implausible: true}})
	if len(w.wantUsage(t0, w.sim.Devices()[0].Identity)) < 20 {
		t.Fatal("device 0 has too little usage for the quirk's records")
	}
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("sync: exit %d, want 0\n%s", code, out)
	}
	diffLines(t, "usage_daily", w.gotUsage(), w.wantUsage(t0))
	got := w.query(`SELECT reason FROM rejected_records WHERE stream = 'usage' ORDER BY reason`)
	want := []*regexp.Regexp{
		regexp.MustCompile(`^bytesUsed: value -\d+ is negative`),
		// After the request's latest: the client marks it (paging ends there).
		regexp.MustCompile(`^timestamp: 9999-12-31T00:00:00Z is after .*, the latest asked for`),
		regexp.MustCompile(`0001-01-01`),
	}
	if len(got) != len(want) {
		t.Fatalf("rejected usage records %q, want %d", got, len(want))
	}
	for _, re := range want {
		if !slices.ContainsFunc(got, re.MatchString) {
			t.Errorf("no rejected record matches %s: %q", re, got)
		}
	}
}
