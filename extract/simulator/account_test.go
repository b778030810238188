package simulator

import (
	"strconv"
	"testing"
	"time"
)

// The generated sessions look like a real device's: Start/Stop pairs that
// never overlap, some running past midnight, the latest one possibly open,
// session ids unique per device, bytes and times consistent.
func TestSessions(t *testing.T) {
	sim := New(Options{Seed: 9, Devices: 60, Clock: NewManualClock(t0)})
	var spans, open, sessions int
	for _, d := range sim.Devices() {
		evs := sim.TruthEvents(t0, time.Time{}, time.Time{}, d.Identity)
		if d.Silent && len(evs) > 0 {
			t.Errorf("%s is silent but has %d events", d.Identity, len(evs))
		}
		ids := map[string]bool{}
		for i, e := range evs {
			if i > 0 && !evs[i-1].OccurredAt.Before(e.OccurredAt) {
				t.Fatalf("%s: events at %s and %s overlap or are out of order", d.Identity, evs[i-1].OccurredAt, e.OccurredAt)
			}
			if d.Deactivated && !e.OccurredAt.Before(d.DeactivatedAt.Add(27*time.Hour)) {
				t.Errorf("%s: event at %s after deactivation on %s", d.Identity, e.OccurredAt, d.DeactivatedAt)
			}
			if e.Attrs["Event"] != e.Attrs["AccountStatusType"] {
				t.Errorf("Event %q, AccountStatusType %q", e.Attrs["Event"], e.Attrs["AccountStatusType"])
			}
			if !e.Start() {
				continue
			}
			sessions++
			if ids[e.Attrs["AccountSessionId"]] {
				t.Errorf("%s: session id %s used twice", d.Identity, e.Attrs["AccountSessionId"])
			}
			ids[e.Attrs["AccountSessionId"]] = true
			if i == len(evs)-1 {
				open++
				continue
			}
			stop := evs[i+1]
			if stop.Start() || stop.Attrs["AccountSessionId"] != e.Attrs["AccountSessionId"] {
				t.Fatalf("%s: Start at %s not followed by its Stop", d.Identity, e.OccurredAt)
			}
			if dayOf(stop.OccurredAt) != dayOf(e.OccurredAt) {
				spans++
			}
			in, _ := strconv.ParseInt(stop.Attrs["InputBytes"], 10, 64)
			out, _ := strconv.ParseInt(stop.Attrs["OutputBytes"], 10, 64)
			secs, _ := strconv.ParseInt(stop.Attrs["AccountSessionTime"], 10, 64)
			if stop.Attrs["BytesUsed"] != strconv.FormatInt(in+out, 10) || secs != int64(stop.OccurredAt.Sub(e.OccurredAt)/time.Second) ||
				stop.Attrs["AccountTerminateCause"] == "0" || e.Attrs["AccountTerminateCause"] != "0" || e.Attrs["BytesUsed"] != "0" {
				t.Errorf("%s: inconsistent session %v / %v", d.Identity, e.Attrs, stop.Attrs)
			}
		}
	}
	if sessions < 60*200 || spans < sessions/20 || open == 0 {
		t.Errorf("%d sessions, %d past midnight, %d open", sessions, spans, open)
	}
}

func TestUsageShape(t *testing.T) {
	sim := New(Options{Seed: 9, Devices: 40, Clock: NewManualClock(t0)})
	var zero, total, intl int
	perDevice := map[ID]int{}
	for _, u := range sim.TruthUsage(t0, time.Time{}, time.Time{}) {
		total++
		perDevice[u.Device]++
		if u.BytesUsed == 0 {
			zero++
		}
		if u.International > 0 {
			intl++
		}
		if u.Domestic+u.International != u.BytesUsed || u.International*5 > u.BytesUsed || u.SMSUsed != u.MoSMS+u.MtSMS || u.Date != dayOf(u.Date) {
			t.Fatalf("inconsistent record %+v", u)
		}
	}
	var silent int
	for _, d := range sim.Devices() {
		switch n := perDevice[d.Identity]; {
		case d.Silent:
			silent++
			if n != 0 {
				t.Errorf("silent %s has %d records", d.Identity, n)
			}
		case d.Deactivated:
			if n == 0 || n >= 366 {
				t.Errorf("deactivated %s has %d records", d.Identity, n)
			}
		case n != 366:
			t.Errorf("%s has %d records, want one a day", d.Identity, n)
		}
	}
	if zero == 0 || zero > total/5 || intl == 0 || silent == 0 {
		t.Errorf("%d records, %d idle days, %d with international usage, %d silent devices", total, zero, intl, silent)
	}
}

func TestRatedUnits(t *testing.T) {
	sim := New(Options{Seed: 9, Devices: 60, Clock: NewManualClock(t0)})
	units := map[string]int{}
	for _, r := range sim.TruthRated(t0) {
		units[r.Unit]++
		if r.Start.After(t0) || !r.End.Add(24*time.Hour).Equal(r.Reset) || r.End.Before(dayOf(t0)) {
			t.Errorf("billing cycle %s – %s (reset %s) does not hold today", r.Start, r.End, r.Reset)
		}
		var bytes int64
		for _, u := range sim.TruthUsage(t0, r.Start, dayOf(t0).AddDate(0, 0, -2), r.Device) {
			bytes += u.BytesUsed
		}
		if bytes != r.DataUsageBytes {
			t.Errorf("%s: rated %v %s = %d bytes, usage until two days ago %d", r.Device, r.DataUsage, r.Unit, r.DataUsageBytes, bytes)
		}
	}
	if units["KB"] == 0 || units["MB"] == 0 || units["GB"] == 0 {
		t.Errorf("units %v", units)
	}
}
