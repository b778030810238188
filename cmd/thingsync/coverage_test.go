package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/load"
)

// The coverage ledger after a sync with one failing device: its days are
// missing, the others' days settled up to the lookback and provisional
// after; status summarises it; backfill --gaps fetches exactly the missing
// device-days, after which nothing is missing and the data is exact.
func TestCoverageLedger(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 8})
	bad := w.activeDevice()
	w.sim.SetFaults(simulator.Faults{FailDevices: []string{bad.Identity.ID}})
	if code, out := w.run("sync"); code != 1 {
		t.Fatalf("sync: exit %d, want 1\n%s", code, out)
	}
	// 366 days: the retention floor (t0 − 12 months) to t0's day.
	days := "366"
	got := w.query(`SELECT stream, device_id = ? AS bad, state, count(*), count(DISTINCT day), min(day), max(day), count(fetched_at)
		FROM coverage_days GROUP BY ALL ORDER BY ALL`, bad.Identity.ID)
	first, last := t0.AddDate(-1, 0, 0).Format("2006-01-02"), t0.Format("2006-01-02")
	for _, l := range got {
		f := strings.Split(l, "|")
		switch {
		case f[1] == "true" && f[2] != "missing":
			t.Errorf("failing device has %s days: %s", f[2], l)
		case f[1] == "true" && (f[4] != days || f[7] != "0"):
			t.Errorf("failing device's missing days: %s, want all %s without fetched_at", l, days)
		case f[1] == "false" && f[2] == "missing":
			t.Errorf("a healthy device has missing days: %s", l)
		case f[1] == "false" && f[2] == "provisional" && !strings.HasPrefix(f[6], last):
			t.Errorf("provisional days must end the range: %s", l)
		}
	}
	// Usage settles whole days 3 days back: t0's day and the 3 before are
	// provisional for every healthy device.
	if got := w.query(`SELECT min(day), max(day) FROM coverage_days WHERE stream = 'usage' AND state = 'provisional' AND device_id <> ?`, bad.Identity.ID); got[0] != t0.AddDate(0, 0, -3).Format("2006-01-02")+"T00:00:00Z|"+last+"T00:00:00Z" {
		t.Errorf("usage provisional days %v", got)
	}
	code, out := w.run("status")
	if code != 0 || !strings.Contains(out, "Coverage, device-days from "+first+" to "+last) {
		t.Errorf("status: exit %d, want the coverage section:\n%s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 6 && (f[0] == "usage" || f[0] == "connections") && (f[4] != days || f[5] != "1") {
			t.Errorf("status coverage line %q: want %s missing days on 1 device", line, days)
		}
	}

	w.sim.SetFaults(simulator.Faults{})
	w.sim.ResetStats()
	// A --device no device of the warehouse carries is named, exit 1,
	// nothing fetched; read as "nothing missing" it would hide a typo.
	if code, out := w.run("backfill", "--gaps", "--device", "iccid:000"); code != 1 || !strings.Contains(out, "iccid:000") {
		t.Errorf("backfill --gaps --device iccid:000: exit %d, want 1 naming it\n%s", code, out)
	}
	if n := w.sim.Stats().Requests; n["usage"]+n["connections"] != 0 {
		t.Errorf("backfill --gaps for an unknown device made history requests: %v", n)
	}
	// Named by another of its identifiers, the failing device is still the
	// one whose gaps are fetched; gaps of no other device are asked for.
	var other string
	for _, id := range bad.IDs {
		if id.Kind != bad.Identity.Kind {
			other = id.Kind + ":" + id.ID
			break
		}
	}
	if other == "" {
		t.Fatalf("the failing device %v has a single identifier", bad.IDs)
	}
	code, out = w.run("backfill", "--gaps", "--device", other)
	if code != 0 {
		t.Fatalf("backfill --gaps: exit %d\n%s", code, out)
	}
	// Only the failing device was fetched.
	st := w.sim.Stats()
	for k := range st.DeviceRequests {
		if !strings.HasSuffix(k, ":"+bad.Identity.ID) {
			t.Errorf("backfill --gaps asked for another device: %s", k)
		}
	}
	if st.Requests["usage"] == 0 || st.Requests["connections"] == 0 {
		t.Errorf("backfill --gaps requests %v: want usage and connections of the failing device", st.Requests)
	}
	if got := w.query(`SELECT count(*) FROM coverage_days WHERE state = 'missing'`); got[0] != "0" {
		t.Errorf("missing days after backfill --gaps: %v", got)
	}
	diffLines(t, "usage after backfill --gaps", w.gotUsage(), w.wantUsage(t0))
	diffLines(t, "events after backfill --gaps", w.gotEvents(), w.wantEvents(t0))
	w.noDuplicateKeys()
	if code, out := w.run("backfill", "--gaps"); code != 0 || !strings.Contains(out, "no missing device-days") {
		t.Errorf("second backfill --gaps: exit %d\n%s", code, out)
	}
	if code, out := w.run("backfill", "--gaps", "--from", "2026-01-01"); code != 2 {
		t.Errorf("--gaps with --from: exit %d, want 2\n%s", code, out)
	}
}

// THINGSYNC_START moved back a month after a sync: the next sync leaves
// that month missing, and one backfill --gaps fetches it all: nothing is
// missing for any stream, and the warehouse is the simulator's truth from
// the new start.
func TestBackfillGapsAfterStartMovesBack(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 6})
	first, moved := t0.AddDate(0, -2, 0), t0.AddDate(0, -3, 0)
	w.env["THINGSYNC_START"] = first.Format(time.DateOnly)
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, out)
	}
	w.env["THINGSYNC_START"] = moved.Format(time.DateOnly)
	// A minute later: the ledger's wanted range is the latest sync's.
	w.clock.Advance(time.Minute)
	now := w.clock.Now()
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("sync after moving THINGSYNC_START: exit %d\n%s", code, out)
	}
	if got := w.query(`SELECT stream, sum(missing_days) FROM coverage GROUP BY ALL ORDER BY ALL`); len(got) != 2 || strings.HasSuffix(got[0], "|0") || strings.HasSuffix(got[1], "|0") {
		t.Fatalf("missing days before the gap pass: %v, want a month per device and stream", got)
	}
	// Every batch of the gap pass commits on its own, as in a large fleet's
	// run (a commit every 5 s): the gap's windows, oldest first, land in
	// separate commits.
	var outb bytes.Buffer
	app := &App{Stdout: &outb, Stderr: &outb, Now: w.clock.Now, TuneClient: fastClient,
		TuneWriter: func(o *load.WriterOptions) { o.BatchValues, o.CommitValues = 1, 1 },
		LookupEnv:  func(k string) (string, bool) { v, ok := w.env[k]; return v, ok }}
	if code := ExitCode(app.Run(context.Background(), []string{"backfill", "--gaps"}), &outb); code != 0 {
		t.Fatalf("backfill --gaps: exit %d\n%s", code, outb.String())
	}
	if got := w.query(`SELECT stream, sum(missing_days) FROM coverage GROUP BY ALL ORDER BY ALL`); len(got) != 2 || !strings.HasSuffix(got[0], "|0") || !strings.HasSuffix(got[1], "|0") {
		t.Errorf("missing days after one backfill --gaps: %v, want 0 for every stream", got)
	}
	day := time.Date(moved.Year(), moved.Month(), moved.Day(), 0, 0, 0, 0, time.UTC)
	var wantU, wantE []string
	for _, u := range w.sim.TruthUsage(now, day, time.Time{}) {
		if !u.Malformed {
			wantU = append(wantU, fmt.Sprintf("%s|%s|%s|%d|%d|%d|%d|%d|%d|%s", u.Device.Kind, u.Device.ID, u.Date.Format(time.RFC3339),
				u.BytesUsed, u.SMSUsed, u.MoSMS, u.MtSMS, u.Domestic, u.International, u.Source))
		}
	}
	for _, e := range w.sim.TruthEvents(now, day, time.Time{}) {
		wantE = append(wantE, fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s", e.Device.Kind, e.Device.ID, e.OccurredAt.Format(time.RFC3339),
			e.Attrs["Event"], e.Attrs["AccountSessionId"], e.Attrs["BytesUsed"], e.Attrs["AccountTerminateCause"]))
	}
	sort.Strings(wantU)
	sort.Strings(wantE)
	diffLines(t, "usage after backfill --gaps", w.gotUsage(), wantU)
	diffLines(t, "events after backfill --gaps", w.gotEvents(), wantE)
	w.noDuplicateKeys()
}
