package aggregate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
)

// now is a Friday morning in December; six months back is June 4.
var now = time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

// iccids are n devices without a checkpoint, named 0001, 0002...
func iccids(n int) []Device {
	out := make([]Device, n)
	for i := range out {
		out[i] = Device{ICCID: fmt.Sprintf("%04d", i+1)}
	}
	return out
}

// show renders a plan as one line per ask: period, device count, first
// and last device, and the request it replaces; then the closed ones.
func show(r Requests) []string {
	var out []string
	for _, a := range r.Asks {
		s := fmt.Sprintf("%s..%s n=%d %s-%s", a.Period.From.Format(time.DateOnly), a.Period.To.Format(time.DateOnly),
			len(a.Devices), a.Devices[0].ID, a.Devices[len(a.Devices)-1].ID)
		if a.Replaces != nil {
			s += " replaces " + a.Replaces.ID
		}
		out = append(out, s)
	}
	for _, id := range r.Closed {
		out = append(out, "close "+id)
	}
	return out
}

func check(t *testing.T, got Requests, want []string) {
	t.Helper()
	if diff := cmp.Diff(want, show(got)); diff != "" {
		t.Errorf("plan mismatch (-want +got):\n%s", diff)
	}
	for _, a := range got.Asks {
		if len(a.Devices) == 0 || len(a.Devices) > extract.MaxAggregateDevices {
			t.Errorf("ask %s has %d devices, want 1 to %d", a.Period, len(a.Devices), extract.MaxAggregateDevices)
		}
	}
}

func TestPlanBatches(t *testing.T) {
	p := Planner{Start: day("2026-11-20"), Deadline: time.Hour}
	for _, c := range []struct {
		devices int
		want    []string
	}{
		{1, []string{"2026-11-20..2026-12-01 n=1 0001-0001", "2026-12-01..2026-12-04 n=1 0001-0001"}},
		{200, []string{"2026-11-20..2026-12-01 n=200 0001-0200", "2026-12-01..2026-12-04 n=200 0001-0200"}},
		{201, []string{
			"2026-11-20..2026-12-01 n=200 0001-0200", "2026-11-20..2026-12-01 n=1 0201-0201",
			"2026-12-01..2026-12-04 n=200 0001-0200", "2026-12-01..2026-12-04 n=1 0201-0201"}},
		{400, []string{
			"2026-11-20..2026-12-01 n=200 0001-0200", "2026-11-20..2026-12-01 n=200 0201-0400",
			"2026-12-01..2026-12-04 n=200 0001-0200", "2026-12-01..2026-12-04 n=200 0201-0400"}},
		{0, nil},
	} {
		t.Run(fmt.Sprint(c.devices), func(t *testing.T) {
			got := p.Plan(now, iccids(c.devices), nil)
			check(t, got, c.want)
			// Every device asked exactly once per period.
			seen := map[string]int{}
			for _, a := range got.Asks {
				for _, d := range a.Devices {
					if d.Kind != "iccid" {
						t.Errorf("device %s asked by %s, want iccid", d.ID, d.Kind)
					}
					seen[a.Period.From.Format(time.DateOnly)+" "+d.ID]++
				}
			}
			for k, n := range seen {
				if n != 1 {
					t.Errorf("%s asked %d times", k, n)
				}
			}
			if len(seen) != 2*c.devices {
				t.Errorf("%d device-periods asked, want %d", len(seen), 2*c.devices)
			}
		})
	}
}

// Periods are calendar months (the first one from where the device is
// asked from, the last one up to the start of today), at most six months
// back; devices asked from different days are asked separately.
func TestPlanMonths(t *testing.T) {
	for _, c := range []struct {
		name  string
		now   time.Time
		start time.Time
		dev   Device
		want  []string
	}{
		{"from mid-month", now, day("2026-10-15"), Device{ICCID: "1"}, []string{
			"2026-10-15..2026-11-01 n=1 1-1", "2026-11-01..2026-12-01 n=1 1-1", "2026-12-01..2026-12-04 n=1 1-1"}},
		{"from the first", now, day("2026-11-01"), Device{ICCID: "1"}, []string{
			"2026-11-01..2026-12-01 n=1 1-1", "2026-12-01..2026-12-04 n=1 1-1"}},
		{"today is the first: no empty month", day("2026-12-01").Add(5 * time.Hour), day("2026-11-01"), Device{ICCID: "1"}, []string{
			"2026-11-01..2026-12-01 n=1 1-1"}},
		{"a year back: six months", now, day("2025-12-04"), Device{ICCID: "1"}, []string{
			"2026-06-04..2026-07-01 n=1 1-1", "2026-07-01..2026-08-01 n=1 1-1", "2026-08-01..2026-09-01 n=1 1-1",
			"2026-09-01..2026-10-01 n=1 1-1", "2026-10-01..2026-11-01 n=1 1-1", "2026-11-01..2026-12-01 n=1 1-1",
			"2026-12-01..2026-12-04 n=1 1-1"}},
		{"no start: six months", now, time.Time{}, Device{ICCID: "1", Settled: day("2026-05-01")}, []string{
			"2026-06-04..2026-07-01 n=1 1-1", "2026-07-01..2026-08-01 n=1 1-1", "2026-08-01..2026-09-01 n=1 1-1",
			"2026-09-01..2026-10-01 n=1 1-1", "2026-10-01..2026-11-01 n=1 1-1", "2026-11-01..2026-12-01 n=1 1-1",
			"2026-12-01..2026-12-04 n=1 1-1"}},
		{"settled checkpoint wins over start", now, day("2026-10-15"), Device{ICCID: "1", Settled: day("2026-12-01")}, []string{
			"2026-12-01..2026-12-04 n=1 1-1"}},
		{"settled until today: nothing", now, day("2026-10-15"), Device{ICCID: "1", Settled: day("2026-12-04")}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			check(t, Planner{Start: c.start, Deadline: time.Hour}.Plan(c.now, []Device{c.dev}, nil), c.want)
		})
	}
	t.Run("asked from before six months back: one group", func(t *testing.T) {
		devs := []Device{{ICCID: "a", Settled: day("2026-01-01")}, {ICCID: "b", Settled: day("2026-02-01")}}
		got := Planner{Deadline: time.Hour}.Plan(now, devs, nil)
		if len(got.Asks) != 7 || len(got.Asks[0].Devices) != 2 || !got.Asks[0].Period.From.Equal(day("2026-06-04")) {
			t.Errorf("plan %v, want both devices in each of 7 requests from 2026-06-04", show(got))
		}
	})
	t.Run("grouped by day asked from", func(t *testing.T) {
		devs := []Device{{ICCID: "a", Settled: day("2026-12-01")}, {ICCID: "b"}, {ICCID: "c", Settled: day("2026-12-01")}, {ICCID: "d"}}
		check(t, Planner{Start: day("2026-11-01"), Deadline: time.Hour}.Plan(now, devs, nil), []string{
			"2026-11-01..2026-12-01 n=2 b-d", "2026-12-01..2026-12-04 n=2 b-d", "2026-12-01..2026-12-04 n=2 a-c"})
	})
}

func waitingFor(id string, age time.Duration, start, end string, devs ...string) load.AggregateRequest {
	r := load.AggregateRequest{ID: id, Start: day(start), End: day(end), Status: load.RequestPending, RequestedAt: now.Add(-age)}
	for _, d := range devs {
		r.Devices = append(r.Devices, extract.DeviceID{Kind: "iccid", ID: d})
	}
	return r
}

// A request waiting for its callback covers its devices for its period
// until the deadline; from the deadline on it is asked again, same
// devices and period, and replaced; one too old to ask again is closed.
func TestPlanReask(t *testing.T) {
	const deadline = 6 * time.Hour
	p := Planner{Start: day("2026-11-01"), Deadline: deadline}
	devs := []Device{{ICCID: "1"}, {ICCID: "2"}, {ICCID: "3"}}
	for _, c := range []struct {
		name    string
		waiting []load.AggregateRequest
		want    []string
	}{
		{"nothing waiting", nil, []string{"2026-11-01..2026-12-01 n=3 1-3", "2026-12-01..2026-12-04 n=3 1-3"}},
		{"before the deadline: left alone, its devices not asked again",
			[]load.AggregateRequest{waitingFor("r1", deadline-time.Nanosecond, "2026-11-01", "2026-12-01", "1", "2")},
			[]string{"2026-11-01..2026-12-01 n=1 3-3", "2026-12-01..2026-12-04 n=3 1-3"}},
		{"at the deadline: asked again",
			[]load.AggregateRequest{waitingFor("r1", deadline, "2026-11-01", "2026-12-01", "1", "2")},
			[]string{"2026-11-01..2026-12-01 n=2 1-2 replaces r1", "2026-11-01..2026-12-01 n=1 3-3", "2026-12-01..2026-12-04 n=3 1-3"}},
		{"long overdue: asked again for its own period",
			[]load.AggregateRequest{waitingFor("r1", 3*24*time.Hour, "2026-11-01", "2026-11-28", "2", "3")},
			[]string{"2026-11-01..2026-11-28 n=2 2-3 replaces r1", "2026-11-01..2026-12-01 n=1 1-1", "2026-12-01..2026-12-04 n=3 1-3"}},
		{"overdue and older than six months: closed, not asked",
			[]load.AggregateRequest{waitingFor("r0", 200*24*time.Hour, "2026-05-01", "2026-06-01", "1")},
			[]string{"2026-11-01..2026-12-01 n=3 1-3", "2026-12-01..2026-12-04 n=3 1-3", "close r0"}},
		{"overdue, from six months back: asked again",
			[]load.AggregateRequest{waitingFor("r0", deadline, "2026-06-04", "2026-07-01", "1")},
			[]string{"2026-06-04..2026-07-01 n=1 1-1 replaces r0", "2026-11-01..2026-12-01 n=3 1-3", "2026-12-01..2026-12-04 n=3 1-3"}},
		{"overdue, from a day before six months back: closed",
			[]load.AggregateRequest{waitingFor("r0", deadline, "2026-06-03", "2026-07-01", "1")},
			[]string{"2026-11-01..2026-12-01 n=3 1-3", "2026-12-01..2026-12-04 n=3 1-3", "close r0"}},
		{"older than six months but not overdue: left alone",
			[]load.AggregateRequest{waitingFor("r0", time.Hour, "2026-05-01", "2026-06-01", "1")},
			[]string{"2026-11-01..2026-12-01 n=3 1-3", "2026-12-01..2026-12-04 n=3 1-3"}},
		{"a request of a device no longer listed is still asked again",
			[]load.AggregateRequest{waitingFor("r1", deadline, "2026-11-01", "2026-12-01", "9")},
			[]string{"2026-11-01..2026-12-01 n=1 9-9 replaces r1", "2026-11-01..2026-12-01 n=3 1-3", "2026-12-01..2026-12-04 n=3 1-3"}},
		{"several: re-asks first, oldest first",
			[]load.AggregateRequest{
				waitingFor("r1", 2*deadline, "2026-11-01", "2026-12-01", "1"),
				waitingFor("r2", deadline, "2026-12-01", "2026-12-03", "1", "2"),
				waitingFor("r3", time.Minute, "2026-12-01", "2026-12-04", "3"),
			},
			[]string{"2026-11-01..2026-12-01 n=1 1-1 replaces r1", "2026-12-01..2026-12-03 n=2 1-2 replaces r2",
				"2026-11-01..2026-12-01 n=2 2-3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := p.Plan(now, devs, c.waiting)
			check(t, got, c.want)
			if n := strings.Count(strings.Join(show(got), "\n"), "replaces"); got.Reasks() != n {
				t.Errorf("Reasks() = %d, want %d", got.Reasks(), n)
			}
		})
	}
}
