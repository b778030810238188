package extract

import (
	"testing"
	"time"

	"github.com/thingsync/thingsync/schema"
)

// The idle rule per stream, one case per activity class and per fact that
// makes an idle device due again.
func TestIdleRuleDecide(t *testing.T) {
	now := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	dev := DeviceID{Kind: "iccid", ID: "89148000000000000001"}
	rule := IdleRule{Recheck: 7 * 24 * time.Hour}
	lastRun := now.Add(-24 * time.Hour)
	// Checkpoints after a nightly run a day ago: usage settled to the day
	// of now−1d−3d, connections to now−1d−1d.
	usage := State{SettledUntil: schema.Day(lastRun.Add(-72 * time.Hour)), FetchedUntil: lastRun.Add(time.Second)}
	conns := State{SettledUntil: lastRun.Add(-24 * time.Hour), FetchedUntil: lastRun.Add(time.Second)}
	rated := State{FetchedUntil: lastRun, CycleEnd: time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)}
	weeksAgo := now.AddDate(0, 0, -30)
	// The device's current recheck period began at next (within the last
	// 7 days): a usage fetch a minute before it is in the previous period,
	// one a minute after it in the current one.
	next := rule.NextRecheck(dev, now.Add(-7*24*time.Hour))
	before, after := usage, usage
	before.FetchedUntil = next.Add(-time.Minute)
	after.FetchedUntil = next.Add(time.Minute)
	withOpen := conns
	withOpen.OpenSince = lastRun.Add(-2 * time.Hour)
	retired := conns
	retired.Retired = true

	cases := []struct {
		name, stream string
		f            Facts
		rule         IdleRule
		due, maybe   bool
		reason       Reason
	}{
		{"daily: connected", schema.StreamConnections, Facts{Listing: Listing{Connected: true, LastConnection: now.Add(-time.Hour)}, Connections: conns}, rule, true, false, DueConnected},
		{"daily: connected since settled (connections)", schema.StreamConnections, Facts{Listing: Listing{LastConnection: now.Add(-5 * time.Hour)}, Connections: conns}, rule, true, false, DueConnectedSince},
		{"daily: connected since settled (usage)", schema.StreamUsage, Facts{Listing: Listing{LastConnection: now.Add(-5 * time.Hour)}, Usage: usage, Connections: conns}, rule, true, false, DueConnectedSince},
		{"intermittent: last session two days ago, connections settled past it", schema.StreamConnections, Facts{Listing: Listing{LastConnection: now.Add(-50 * time.Hour)}, Connections: conns}, rule, false, false, SkipIdle},
		{"intermittent: same session, usage not settled past it", schema.StreamUsage, Facts{Listing: Listing{LastConnection: now.Add(-50 * time.Hour)}, Usage: usage, Connections: conns}, rule, true, false, DueConnectedSince},
		{"dormant: no connection request", schema.StreamConnections, Facts{Listing: Listing{LastConnection: weeksAgo}, Connections: conns}, rule, false, false, SkipIdle},
		{"dormant: never connected within the history", schema.StreamConnections, Facts{Connections: conns}, rule, false, false, SkipIdle},
		{"dormant: usage within its recheck period", schema.StreamUsage, Facts{Device: dev, Listing: Listing{LastConnection: weeksAgo}, Usage: after, Connections: conns}, rule, false, false, SkipRecheckLater},
		{"dormant: usage once its recheck period began", schema.StreamUsage, Facts{Device: dev, Listing: Listing{LastConnection: weeksAgo}, Usage: before, Connections: conns}, rule, true, false, DueRecheck},
		{"dormant: open session in the warehouse", schema.StreamConnections, Facts{Listing: Listing{LastConnection: weeksAgo}, Connections: withOpen}, rule, true, false, DueOpenSession},
		{"dormant: open session makes usage due", schema.StreamUsage, Facts{Device: dev, Listing: Listing{LastConnection: weeksAgo}, Usage: after, Connections: withOpen}, rule, true, false, DueOpenSession},
		{"dormant: lastConnectionDate unreadable", schema.StreamConnections, Facts{Listing: Listing{LastConnectionBad: true}, Connections: conns}, rule, true, false, DueUnreadable},
		{"new device", schema.StreamConnections, Facts{Listing: Listing{LastConnection: weeksAgo}}, rule, true, false, DueFirst},
		{"nothing settled yet", schema.StreamUsage, Facts{Listing: Listing{LastConnection: weeksAgo}, Usage: State{FetchedUntil: lastRun}}, rule, true, false, DueFirst},
		{"rated: usage found records this run", schema.StreamRated, Facts{Listing: Listing{LastConnection: weeksAgo}, Rated: rated, UsageFound: FoundRecords}, rule, true, false, DueNewUsage},
		{"rated: warehouse usage newer than the rated fetch", schema.StreamRated, Facts{Usage: State{RecordsAt: lastRun.Add(time.Second)}, Rated: rated, UsageFound: FoundNone}, rule, true, false, DueNewUsage},
		{"rated: usage of the same run as the rated fetch", schema.StreamRated, Facts{Usage: State{RecordsAt: lastRun}, Rated: rated, UsageFound: FoundNone}, rule, false, false, SkipNoNewUsage},
		{"rated: no new usage", schema.StreamRated, Facts{Rated: rated, UsageFound: FoundNone}, rule, false, false, SkipNoNewUsage},
		{"rated: plan before the usage fetch", schema.StreamRated, Facts{Rated: rated, UsageFound: FoundUnknown}, rule, false, true, MaybeNewUsage},
		{"rated: cycle closed", schema.StreamRated, Facts{Rated: State{FetchedUntil: lastRun, CycleEnd: schema.Day(lastRun)}, UsageFound: FoundNone}, rule, true, false, DueCycleClosed},
		{"rated: cycle ends today", schema.StreamRated, Facts{Rated: State{FetchedUntil: lastRun, CycleEnd: schema.Day(now)}, UsageFound: FoundNone}, rule, false, false, SkipNoNewUsage},
		{"rated: the list shows a later cycle", schema.StreamRated, Facts{Listing: Listing{CycleEnd: rated.CycleEnd.AddDate(0, 1, 0)}, Rated: rated, UsageFound: FoundNone}, rule, true, false, DueCycleClosed},
		{"rated: cycle never recorded", schema.StreamRated, Facts{Rated: State{FetchedUntil: lastRun}, UsageFound: FoundNone}, rule, true, false, DueCycleClosed},
		{"suspended: idle like any device", schema.StreamConnections, Facts{Listing: Listing{LastConnection: now.AddDate(0, 0, -20)}, Connections: conns}, rule, false, false, SkipIdle},
		{"deactivated: a last fetch", schema.StreamConnections, Facts{Listing: Listing{Deactive: true, LastConnection: weeksAgo}, Connections: conns}, rule, true, false, DueLastFetch},
		{"deactivated and retired", schema.StreamConnections, Facts{Listing: Listing{Deactive: true}, Connections: retired}, rule, false, false, SkipRetired},
		{"rule off: dormant asked", schema.StreamConnections, Facts{Listing: Listing{LastConnection: weeksAgo}, Connections: conns}, IdleRule{}, true, false, DueEveryRun},
		{"rule off: rated asked", schema.StreamRated, Facts{Rated: rated, UsageFound: FoundNone}, IdleRule{}, true, false, DueEveryRun},
		{"rule off: retired stays retired", schema.StreamUsage, Facts{Listing: Listing{Deactive: true}, Usage: State{Retired: true}}, IdleRule{}, false, false, SkipRetired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.rule.Decide(c.stream, c.f, now)
			if got.Due != c.due || got.Maybe != c.maybe || got.Reason != c.reason {
				t.Errorf("Decide(%s) = %+v, want due %v maybe %v (%s)", c.stream, got, c.due, c.maybe, c.reason)
			}
			if got.Idle != (c.reason == SkipIdle || c.reason == SkipRecheckLater) {
				t.Errorf("Decide(%s).Idle = %v for %s", c.stream, got.Idle, got.Reason)
			}
		})
	}
}

// An idle device's usage is due exactly once in every recheck period: a
// nightly run asks it on one night in seven, and the devices of a fleet
// synced at once are spread over the nights.
func TestIdleRuleRecheckOncePerPeriod(t *testing.T) {
	rule := IdleRule{Recheck: 7 * 24 * time.Hour}
	start := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	perNight := make([]int, 28)
	for i := range 700 {
		dev := DeviceID{Kind: "iccid", ID: "8914800000000000" + string(rune('a'+i%26)) + time.Duration(i).String()}
		fetched := start
		var nights []int
		for n := 1; n < 28; n++ {
			now := start.Add(time.Duration(n) * 24 * time.Hour)
			f := Facts{Device: dev, Usage: State{SettledUntil: schema.Day(start.Add(-72 * time.Hour)), FetchedUntil: fetched}}
			if rule.Decide(schema.StreamUsage, f, now).Due {
				nights = append(nights, n)
				perNight[n]++
				fetched = now
			}
		}
		if len(nights) < 3 || nights[0] > 7 {
			t.Fatalf("%s asked on nights %v, want once in each 7", dev, nights)
		}
		for j := 1; j < len(nights); j++ {
			if nights[j]-nights[j-1] != 7 {
				t.Fatalf("%s asked on nights %v, want 7 apart", dev, nights)
			}
		}
	}
	for n := 1; n < 28; n++ {
		if perNight[n] < 50 || perNight[n] > 150 {
			t.Errorf("night %d asks %d of 700 idle devices, want about 100: %v", n, perNight[n], perNight)
			break
		}
	}
}

// The walk follows open sessions across its windows: a Start without its
// Stop stays open, a Stop of the session carried from the last fetch
// closes it.
func TestOpenSessions(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 12, 1, h, 0, 0, 0, time.UTC) }
	ev := func(h int, kind, id string) ConnectionEvent {
		return ConnectionEvent{OccurredAt: at(h), Attributes: []Attribute{{Key: "Event", Value: kind}, {Key: "AccountSessionId", Value: id}}}
	}
	win := Window{From: at(10), To: at(20)}
	cases := []struct {
		name    string
		carried time.Time
		evs     []ConnectionEvent
		want    time.Time
	}{
		{"none", time.Time{}, nil, time.Time{}},
		{"closed within", time.Time{}, []ConnectionEvent{ev(11, "Start", "A"), ev(12, "Stop", "A")}, time.Time{}},
		{"left open", time.Time{}, []ConnectionEvent{ev(11, "Start", "A"), ev(12, "Stop", "A"), ev(13, "Start", "B")}, at(13)},
		{"carried stays", at(5), []ConnectionEvent{ev(11, "Start", "A"), ev(12, "Stop", "A")}, at(5)},
		{"carried closed", at(5), []ConnectionEvent{ev(11, "Stop", "Z"), ev(13, "Start", "B")}, at(13)},
		{"carried read again", at(10), nil, time.Time{}},
		{"stop repeated at a page boundary", at(5), []ConnectionEvent{ev(11, "Start", "A"), ev(12, "Stop", "A"), ev(12, "Stop", "A")}, at(5)},
	}
	for _, c := range cases {
		o := newOpenSessions(c.carried)
		o.window(win, c.evs)
		if got := o.since(); !got.Equal(c.want) {
			t.Errorf("%s: open since %v, want %v", c.name, got, c.want)
		}
	}
}
