package main

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
)

// wantHistory is device_history as the simulator's listings at the given
// run times make it: a period opens at the first listing that shows a
// device new or changed (groups compared as a set), ends at the listing
// that shows the change, or at the first (complete) listing that leaves the
// device out.
func (w *world) wantHistory(runs []time.Time) []string {
	n := len(w.sim.Devices())
	var out []string
	for i := range n {
		id := w.sim.Device(i).Identity
		type period struct {
			from, to   time.Time
			state, pl  string
			groups     []string
			groupsSort string
		}
		var ps []period
		open := func() *period {
			if len(ps) > 0 && ps[len(ps)-1].to.IsZero() {
				return &ps[len(ps)-1]
			}
			return nil
		}
		for _, at := range runs {
			l := w.sim.Listing(i, at)
			cur := open()
			if !l.Listed {
				if cur != nil {
					cur.to = at
				}
				continue
			}
			g := slices.Clone(l.GroupNames)
			sort.Strings(g)
			gs := strings.Join(g, ",")
			if cur != nil && cur.state == l.State && cur.pl == l.ServicePlan && cur.groupsSort == gs {
				continue
			}
			if cur != nil {
				if !at.After(cur.from) {
					continue // the same listing again
				}
				cur.to = at
			}
			ps = append(ps, period{from: at, state: l.State, pl: l.ServicePlan, groups: l.GroupNames, groupsSort: gs})
		}
		for _, p := range ps {
			to := "NULL"
			if !p.to.IsZero() {
				to = p.to.UTC().Format(time.RFC3339)
			}
			out = append(out, fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s", id.Kind, id.ID, p.from.UTC().Format(time.RFC3339), to, p.state, p.pl, p.groupsSort))
		}
	}
	sort.Strings(out)
	return out
}

func (w *world) gotHistory() []string {
	got := w.query(`SELECT device_kind, device_id, valid_from, valid_to, state, service_plan, array_to_string(list_sort(group_names), ',')
		FROM device_history`)
	sort.Strings(got)
	return got
}

// device_history across runs over a device list whose devices change
// state, service plan and groups, and leave it: it is the simulator's
// listings folded into periods; a rerun of the same listing, or a later
// one showing the same, changes nothing. usage_daily.is_provisional
// agrees with the coverage ledger after every run, usage_monthly's with
// the checkpoints, and device_latest shows the listing and the last day
// with data.
func TestDeviceHistoryAcrossChanges(t *testing.T) {
	seed := testSeed(t)
	w := newWorld(t, simulator.Options{Devices: 40, Seed: seed, Churn: simulator.Churn{Change: 0.3, Leave: 0.1}})
	w.env["THINGSYNC_STREAMS"] = "usage"
	var runs []time.Time
	sync := func(at time.Time) {
		t.Helper()
		w.clock.Set(at)
		if code, out := w.run("sync"); code != 0 {
			t.Fatalf("sync at %s: exit %d\n%s", at, code, out)
		}
		runs = append(runs, at)
		diffLines(t, "device_history after the sync at "+at.Format(time.RFC3339), w.gotHistory(), w.wantHistory(runs))
		// Every usage_daily row says what the ledger says of its day.
		if got := w.query(`SELECT count(*), count(*) FILTER (WHERE u.is_provisional IS DISTINCT FROM (c.state = 'provisional'))
			FROM usage_daily u JOIN coverage_days c ON c.stream = 'usage' AND c.device_kind = u.device_kind AND c.device_id = u.device_id AND c.day = u.usage_date`); got[0] == "0|0" || !strings.HasSuffix(got[0], "|0") {
			t.Errorf("usage_daily rows, of them is_provisional other than coverage_days says: %v", got)
		}
		if got := w.query(`SELECT count(*) FROM usage_daily WHERE is_provisional IS NULL`); got[0] != "0" {
			t.Errorf("usage_daily rows without is_provisional: %v", got)
		}
	}
	sync(t0)
	day1 := t0.Add(24 * time.Hour)
	sync(day1)
	before := w.gotHistory()
	// The same listing again, then a later listing of the same period:
	// nothing changes.
	sync(day1)
	sync(day1.Add(3 * time.Hour))
	diffLines(t, "device_history after rerunning the same listing", w.gotHistory(), before)
	for d := 2; d <= 4; d++ {
		sync(t0.Add(time.Duration(d) * 24 * time.Hour))
	}
	// The fleet did change: periods closed by a change and by leaving.
	closed := w.query(`SELECT count(*) FILTER (WHERE valid_to IS NOT NULL), count(DISTINCT state), count(DISTINCT service_plan),
		count(*) FILTER (WHERE len(group_names) > 1) FROM device_history`)
	if f := strings.Split(closed[0], "|"); f[0] == "0" || f[1] == "1" || f[2] == "1" || f[3] == "0" {
		t.Errorf("closed periods, states, plans, periods with a second group: %v; want changes of each kind", closed)
	}
	// 13 days on, November is settled (usage settles 3 days back) for
	// every device the last listing showed and the run fetched (not a
	// deactivated device, fetched a last time before): its months are
	// final, December's provisional.
	last := t0.Add(13 * 24 * time.Hour)
	sync(last)
	var shown []any
	marks := []string{}
	for i, d := range w.sim.Devices() {
		if w.sim.Listing(i, last).Listed && !d.Deactivated {
			shown = append(shown, d.Identity.ID)
			marks = append(marks, "?")
		}
	}
	got := w.query(`SELECT month, bool_and(is_provisional), bool_or(is_provisional) FROM usage_monthly
		WHERE device_id IN (`+strings.Join(marks, ",")+`) GROUP BY month ORDER BY month DESC LIMIT 2`, shown...)
	if want := []string{"2026-12-01T00:00:00Z|true|true", "2026-11-01T00:00:00Z|false|false"}; !slices.Equal(got, want) {
		t.Errorf("usage_monthly is_provisional by month %v, want %v", got, want)
	}
	if got := w.query(`SELECT count(*) FROM usage_monthly m JOIN (SELECT device_kind, device_id, CAST(date_trunc('month', day) AS DATE) AS month,
			bool_or(state <> 'settled') AS open FROM coverage_days WHERE stream = 'usage' GROUP BY ALL) c USING (device_kind, device_id, month)
		WHERE c.open AND NOT m.is_provisional`); got[0] != "0" {
		t.Errorf("usage_monthly months final with a day the ledger does not call settled: %v", got)
	}
	// device_latest: the last listing that showed each device, and the
	// last day with data as that run (which fetched it) loaded it.
	var want []string
	for i, d := range w.sim.Devices() {
		var at time.Time
		for _, r := range runs {
			if w.sim.Listing(i, r).Listed {
				at = r
			}
		}
		if at.IsZero() {
			continue
		}
		l := w.sim.Listing(i, at)
		ld := "NULL"
		for _, u := range w.sim.TruthUsage(at, time.Time{}, time.Time{}, d.Identity) {
			if day := u.Date.Format(time.DateOnly) + "T00:00:00Z"; u.BytesUsed > 0 && (ld == "NULL" || day > ld) {
				ld = day
			}
		}
		want = append(want, fmt.Sprintf("%s|%s|%s|%s|%s|%s", d.Identity.Kind, d.Identity.ID, l.State, l.ServicePlan, strings.Join(l.GroupNames, ","), ld))
	}
	sort.Strings(want)
	gotLatest := w.query(`SELECT device_kind, device_id, state, service_plan, array_to_string(group_names, ','), last_day_with_data FROM device_latest`)
	sort.Strings(gotLatest)
	diffLines(t, "device_latest", gotLatest, want)
	w.usagePerPlan(runs)
	if got := w.query(`SELECT count(*) FROM device_latest WHERE last_day_with_data > last_usage_date`); got[0] != "0" {
		t.Errorf("device_latest with a last day with data after its last usage day: %v", got)
	}
}

// usagePerPlan runs README's "usage per plan at the time" query and checks
// it against the simulator: each loaded usage day counts under the plan
// the last listing of that day (or before) showed, and not at all where
// that listing did not show the device.
func (w *world) usagePerPlan(runs []time.Time) {
	w.t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		w.t.Fatal(err)
	}
	text := string(readme)
	i := strings.Index(text, "**History of devices.**")
	j := strings.Index(text[i:], "```sql\n")
	k := strings.Index(text[i+j+7:], "```")
	if i < 0 || j < 0 || k < 0 {
		w.t.Fatal("README has no usage-per-plan query under **History of devices.**")
	}
	got := w.query(text[i+j+7 : i+j+7+k])
	index := map[string]int{}
	for n, d := range w.sim.Devices() {
		index[d.Identity.Kind+"|"+d.Identity.ID] = n
	}
	type agg struct {
		bytes int64
		prov  bool
	}
	sums := map[string]*agg{}
	for _, r := range w.query(`SELECT device_kind || '|' || device_id, usage_date, bytes_used, is_provisional FROM usage_daily`) {
		f := strings.Split(r, "|")
		day, _ := time.Parse(time.RFC3339, f[2])
		var at time.Time
		for _, run := range runs {
			if !day.Before(run.Truncate(24 * time.Hour)) {
				at = run
			}
		}
		if at.IsZero() {
			continue
		}
		l := w.sim.Listing(index[f[0]+"|"+f[1]], at)
		if !l.Listed {
			continue
		}
		key := l.ServicePlan + "|" + f[2]
		if sums[key] == nil {
			sums[key] = &agg{}
		}
		var b int64
		fmt.Sscan(f[3], &b)
		sums[key].bytes += b
		sums[key].prov = sums[key].prov || f[4] == "true"
	}
	var want []string
	for k, a := range sums {
		want = append(want, fmt.Sprintf("%s|%d|%t", k, a.bytes, a.prov))
	}
	sort.Strings(want)
	sort.Strings(got)
	if len(want) == 0 {
		w.t.Fatal("no usage day falls in a period")
	}
	diffLines(w.t, "README usage per plan", got, want)
}
