package simulator

import (
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/internal/testseed"
)

// testSeed is the test's seed (testseed.Seed).
func testSeed(t *testing.T) int64 { return testseed.Seed(t, "./extract/simulator") }

// Over the year served, each class of a seeded fleet behaves as its
// definition says, in its connection events, its usage records and its
// rated usage.
func TestFleetClasses(t *testing.T) {
	seed := testSeed(t)
	sim := New(Options{Seed: seed, Devices: 200, Fleet: DefaultFleetMix(), Clock: NewManualClock(t0)})
	floor, today := retentionFloor(t0), dayOf(t0)
	days := int(today.Sub(floor)/day) + 1 // 366: the floor's day to today
	seen := map[Class]int{}
	rated := map[ID]Rated{}
	for _, r := range sim.TruthRated(t0) {
		rated[r.Device] = r
	}
	var dormantSessions, smsOnlyDays int
	for _, d := range sim.Devices() {
		seen[d.Class]++
		evs := sim.TruthEvents(t0, time.Time{}, time.Time{}, d.Identity)
		usage := sim.TruthUsage(t0, time.Time{}, time.Time{}, d.Identity)
		// Days with a session starting (UTC), in order; usage by day.
		var starts []time.Time
		for _, e := range evs {
			if e.Start() && (len(starts) == 0 || !starts[len(starts)-1].Equal(dayOf(e.OccurredAt))) {
				starts = append(starts, dayOf(e.OccurredAt))
			}
		}
		isStart := map[time.Time]bool{}
		for _, s := range starts {
			isStart[s] = true
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf("%s %s (%s): %s", d.Class, d.Identity, d.State, fmt.Sprintf(format, args...))
		}
		wantState := map[Class]string{Daily: "active", Intermittent: "active", Dormant: "active", Suspended: "suspend", Deactivated: "deactive"}[d.Class]
		if d.State != wantState || d.Silent {
			fail("state %q, silent %v; want %q", d.State, d.Silent, wantState)
		}
		switch d.Class {
		case Daily:
			// A session every day (today's may not have started by noon),
			// a record with data on each of those days.
			if len(starts) < days-1 || !starts[0].Equal(floor) || !starts[days-2].Equal(today.Add(-day)) {
				fail("sessions on %d of %d days", len(starts), days-1)
			}
			if len(usage) != len(starts) {
				fail("%d usage records, %d days with a session", len(usage), len(starts))
			}
			for _, u := range usage {
				if !isStart[u.Date] || u.BytesUsed <= 0 {
					fail("usage record of %s: %d bytes, session that day %v", u.Date, u.BytesUsed, isStart[u.Date])
				}
			}
		case Intermittent:
			// Sessions every few days; a record on those days only.
			gaps(t, fail, starts, floor, today, 2, 8)
			if len(usage) != len(starts) {
				fail("%d usage records, %d days with a session", len(usage), len(starts))
			}
			for _, u := range usage {
				if !isStart[u.Date] || u.BytesUsed <= 0 {
					fail("usage record of %s: %d bytes, session that day %v", u.Date, u.BytesUsed, isStart[u.Date])
				}
			}
		case Dormant:
			// No session for weeks; some SMS-only days, records with SMS
			// and no bytes, on days without a session.
			dormantSessions += len(starts)
			gaps(t, fail, starts, time.Time{}, time.Time{}, 22, days)
			sms := 0
			for _, u := range usage {
				switch {
				case isStart[u.Date] && u.BytesUsed > 0:
				case !isStart[u.Date] && u.BytesUsed == 0 && u.SMSUsed > 0:
					sms++
				default:
					fail("usage record of %s: %d bytes, %d SMS, session that day %v", u.Date, u.BytesUsed, u.SMSUsed, isStart[u.Date])
				}
			}
			if sms < 5 || sms > 70 {
				fail("%d SMS-only days in a year, want about one in twelve", sms)
			}
			smsOnlyDays += sms
		case Suspended, Deactivated:
			// Daily until the day it went quiet, nothing from then on (the
			// last session may run past that midnight).
			quiet := d.DeactivatedAt
			if d.Class == Suspended {
				quiet = d.SuspendedAt
			}
			if age := today.Sub(quiet) / day; age < 10 || age > 59 {
				fail("quiet from %s, %d days before the clock's day", quiet, age)
			}
			if len(starts) != int(quiet.Sub(floor)/day) || !starts[len(starts)-1].Equal(quiet.Add(-day)) {
				fail("%d days with sessions (%v); quiet from %s", len(starts), starts, quiet)
			}
			if last := evs[len(evs)-1]; last.Start() || last.OccurredAt.After(quiet.Add(3*time.Hour)) {
				fail("last event %v at %s; quiet from %s", last.Attrs["Event"], last.OccurredAt, quiet)
			}
			if len(usage) != len(starts) || !usage[len(usage)-1].Date.Equal(quiet.Add(-day)) {
				fail("%d usage records, %d session days", len(usage), len(starts))
			}
		default:
			fail("class %v in a fleet", d.Class)
		}
		// Rated usage: the billing cycle's bytes, up to two days ago.
		if r, ok := rated[d.Identity]; ok {
			var sum int64
			for _, u := range usage {
				if !u.Date.Before(r.Start) && u.Date.Before(today.AddDate(0, 0, -2)) {
					sum += u.BytesUsed
				}
			}
			if diff := r.DataUsageBytes - sum; diff < -1 || diff > 1+sum/1e12 {
				fail("rated %d bytes (%v %s), usage of the cycle %d", r.DataUsageBytes, r.DataUsage, r.Unit, sum)
			}
		}
	}
	for c := Daily; c < numClasses; c++ {
		if seen[c] == 0 {
			t.Errorf("no %s device among 200: %v", c, seen)
		}
	}
	if dormantSessions == 0 || smsOnlyDays == 0 {
		t.Errorf("dormant devices: %d sessions, %d SMS-only days in a year", dormantSessions, smsOnlyDays)
	}
}

// gaps checks the days between consecutive session days are within [lo,
// hi], and, with from and to set, that the first and last are no further
// than hi from them.
func gaps(t *testing.T, fail func(string, ...any), starts []time.Time, from, to time.Time, lo, hi int) {
	t.Helper()
	if !from.IsZero() && (len(starts) == 0 || int(starts[0].Sub(from)/day) >= hi || int(to.Sub(starts[len(starts)-1])/day) > hi) {
		fail("session days %v", starts)
		return
	}
	for i := 1; i < len(starts); i++ {
		if g := int(starts[i].Sub(starts[i-1]) / day); g < lo || g > hi {
			fail("%d days between sessions on %s and %s, want %d to %d", g, starts[i-1].Format(time.DateOnly), starts[i].Format(time.DateOnly), lo, hi)
		}
	}
}

// The classes' shares of 10,000 devices are the mix's within a point and a
// half (a binomial's three standard deviations), in the truth and in the
// carrier states of the device list served.
func TestFleetMix(t *testing.T) {
	seed := testSeed(t)
	mixes := []FleetMix{DefaultFleetMix(), {Daily: 1, Dormant: 3}}
	for _, m := range mixes {
		t.Run(m.String(), func(t *testing.T) {
			const n = 10_000
			a := newAPI(t, Options{Seed: seed, Devices: n, Fleet: m})
			a.login()
			count := map[Class]int{}
			for i := range n {
				count[a.sim.Device(i).Class]++
			}
			states := map[string]int{}
			var cursor any
			for pages := 1; ; pages++ {
				body := map[string]any{"accountName": a.sim.AccountName()}
				if cursor != nil {
					body["largestDeviceIdSeen"] = cursor
				}
				r := a.post("/devices/actions/list", body)
				ds := list(r.m, "devices")
				for _, d := range ds {
					states[list(d, "carrierInformations")[0]["state"].(string)]++
				}
				cursor = json64(list(ds[len(ds)-1], "extendedAttributes")[0]["value"])
				if !r.m["hasMoreData"].(bool) {
					break
				}
				if pages > n/2000 {
					t.Fatalf("%d pages for %d devices", pages, n)
				}
			}
			for c := Daily; c < numClasses; c++ {
				if got, want := float64(count[c])/n, m.Share(c); math.Abs(got-want) > 0.015 {
					t.Errorf("%s: %.2f%% of the fleet, want %.0f%%", c, 100*got, 100*want)
				}
			}
			if states["suspend"] != count[Suspended] || states["deactive"] != count[Deactivated] ||
				states["active"] != count[Daily]+count[Intermittent]+count[Dormant] {
				t.Errorf("device list states %v, classes %v", states, count)
			}
		})
	}
}

func json64(v any) int64 {
	n, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64)
	return n
}

// The device list's connected and lastConnectionDate agree with the
// connection history served, for every device of small accounts (a fleet,
// and the account without a mix) at several times of day, as a client sees
// them over HTTP: lastConnectionDate is the latest Start served at or
// before now, connected whether that session's Stop is not served yet.
func TestFleetConnections(t *testing.T) {
	seed := testSeed(t)
	for _, m := range []FleetMix{DefaultFleetMix(), {}} {
		name := m.String()
		if m.IsZero() {
			name = "no mix"
		}
		t.Run(name, func(t *testing.T) {
			clock := NewManualClock(t0)
			a := newAPI(t, Options{Seed: seed, Devices: 40, Fleet: m, Clock: clock})
			a.login()
			var connected, idle, never int
			for k := range 3 {
				// Three times of day drawn from the seed.
				now := dayOf(t0).Add(time.Duration(mix(uint64(seed), uint64(k), 99)%86400)*time.Second).AddDate(0, 0, -k)
				clock.Set(now)
				a.login()
				r := a.post("/devices/actions/list", map[string]any{"accountName": a.sim.AccountName()})
				listed := list(r.m, "devices")
				if len(listed) != 40 {
					t.Fatalf("%d devices listed", len(listed))
				}
				truth := map[ID]Connection{}
				for _, c := range a.sim.TruthConnections(now) {
					truth[c.Device] = c
				}
				for i, d := range listed {
					td := a.sim.Device(i)
					wantOpen, wantLast := servedConnection(t, a, td, now)
					gotLast, _ := d["lastConnectionDate"].(string)
					gotOpen := d["connected"].(bool)
					if gotOpen != wantOpen || gotLast != wantLast {
						t.Errorf("at %s %s %s: device list connected %v, lastConnectionDate %q; history served: open %v, latest Start %q",
							now, td.Class, td.Identity, gotOpen, gotLast, wantOpen, wantLast)
					}
					if wantLast != "" && !strings.HasSuffix(wantLast, td.Offset) {
						t.Errorf("%s: lastConnectionDate %q not in the device's offset %s", td.Identity, wantLast, td.Offset)
					}
					tc := truth[td.Identity]
					if tc.Connected != gotOpen || (gotLast == "") != tc.LastConnection.IsZero() ||
						(gotLast != "" && tc.LastConnection.Format(time.RFC3339) != mustParse(t, gotLast).UTC().Format(time.RFC3339)) {
						t.Errorf("%s: TruthConnections %+v, device list %v %q", td.Identity, tc, gotOpen, gotLast)
					}
					switch {
					case gotOpen:
						connected++
					case gotLast == "":
						never++
					default:
						idle++
					}
				}
			}
			if connected == 0 || idle == 0 || (m.IsZero() && never == 0) {
				t.Errorf("%d connected, %d idle, %d never: the test sees too little", connected, idle, never)
			}
			t.Logf("%d connected, %d idle, %d never connected (device-times)", connected, idle, never)
		})
	}
}

func mustParse(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return at
}

// servedConnection reads a device's whole connection history served at now
// (from the retention floor, paged as the documentation says) and returns
// whether its latest session is open and that session's Start as sent
// ("" when no Start is served).
func servedConnection(t *testing.T, a *api, d TruthDevice, now time.Time) (open bool, last string) {
	t.Helper()
	// The latest Start and what follows it: the last 3 days, else the last
	// 30, else all the history served.
	for _, from := range []time.Time{now.AddDate(0, 0, -3), now.AddDate(0, 0, -30), retentionFloor(now)} {
		earliest := from.Format(time.RFC3339)
		var lastAt time.Time
		var lastID string
		stopped := map[string]bool{}
		for pages := 0; ; pages++ {
			r := a.post("/devices/connections/actions/listHistory", map[string]any{"deviceId": dev(d.Identity), "earliest": earliest, "latest": rfc(now)})
			recs := list(r.m, "connectionHistory")
			if r.status != 200 && r.status != 202 {
				t.Fatalf("%s: %v", d.Identity, r)
			}
			for _, rec := range recs {
				at := attrs(rec, "connectionEventAttributes")
				when := rec["occurredAt"].(string)
				if at["Event"] == "Stop" {
					stopped[at["AccountSessionId"]] = true
					continue
				}
				if w := mustParse(t, when); !w.Before(lastAt) {
					lastAt, last, lastID = w, when, at["AccountSessionId"]
				}
			}
			if !r.m["hasMoreData"].(bool) {
				break
			}
			earliest = recs[len(recs)-1]["occurredAt"].(string)
			if pages > 100 {
				t.Fatalf("%s: paging does not end", d.Identity)
			}
		}
		if last != "" {
			return !stopped[lastID], last
		}
	}
	return false, ""
}

func TestParseFleetMix(t *testing.T) {
	for in, want := range map[string]FleetMix{
		"default": DefaultFleetMix(),
		"daily=25,intermittent=25,dormant=40,suspended=5,deactivated=5": DefaultFleetMix(),
		" Dormant = 3 , daily=1": {Daily: 1, Dormant: 3},
	} {
		if got, err := ParseFleetMix(in); err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "daily", "daily=x", "weekly=3", "daily=-1", "daily=0,dormant=0"} {
		if _, err := ParseFleetMix(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if s := DefaultFleetMix().String(); s != "daily=25,intermittent=25,dormant=40,suspended=5,deactivated=5" {
		t.Errorf("String %q", s)
	}
	var o Options
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	o.RegisterFlags(fs)
	if err := fs.Parse([]string{"--fleet-mix", "default", "--devices", "1000000"}); err != nil || o.Fleet != DefaultFleetMix() || o.Devices != 1_000_000 {
		t.Errorf("flags: %v, %+v", err, o.Fleet)
	}
}
