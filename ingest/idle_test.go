package ingest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/internal/sqltest"
	"github.com/thingsync/thingsync/load"
)

// fleetNight is when the nightly runs of the idle tests start.
var fleetNight = time.Date(2026, 11, 10, 2, 0, 0, 0, time.UTC)

// fleet is a simulated fleet of the default mix, a runner syncing its usage,
// connection and rated streams into db from ten days back, and the clock
// both read.
type fleet struct {
	sim   *simulator.Simulator
	clock *simulator.ManualClock
	r     *Runner
	db    string
	start time.Time
}

func newFleet(t *testing.T, devices int, recheck string) *fleet {
	t.Helper()
	clock := simulator.NewManualClock(fleetNight)
	sim := simulator.New(simulator.Options{Devices: devices, Seed: 11, Fleet: simulator.DefaultFleetMix(), Clock: clock})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	db := filepath.Join(t.TempDir(), "w.duckdb")
	start := fleetNight.AddDate(0, 0, -10).Truncate(24 * time.Hour)
	env := sim.ClientEnv(srv.URL, map[string]string{
		"THINGSYNC_DB": db, "THINGSYNC_RATE_LIMIT": "5000", "THINGSYNC_STREAMS": "usage,connections,rated",
		"THINGSYNC_START": start.Format(time.DateOnly), "THINGSYNC_IDLE_RECHECK": recheck,
	})
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(env), fleetNight, config.Needs{API: true})
	if err != nil {
		t.Fatal(err)
	}
	g := load.NewGate(db, zerolog.Nop())
	g.Patience = time.Nanosecond
	return &fleet{sim: sim, clock: clock, r: &Runner{Config: cfg, Log: zerolog.Nop(), Gate: g, Now: clock.Now}, db: db, start: start}
}

// night runs one sync at the clock's time and returns the requests it
// made per device and stream ("usage iccid:…").
func (f *fleet) night(t *testing.T) map[string]int {
	t.Helper()
	f.sim.ResetStats()
	rep, err := f.r.Run(context.Background(), Spec{Kind: "sync", Streams: []string{"usage", "connections", "rated"}})
	if err != nil || rep.Status != StatusOK {
		t.Fatalf("sync at %s: %s, %v", f.clock.Now().Format(time.RFC3339), rep.Status, err)
	}
	return f.sim.Stats().DeviceRequests
}

// After a first sync and nightly runs for two recheck periods, idle
// devices cost no connection request and one usage request a period; the
// warehouse equals the simulator's truth for every activity class (usage as
// served at each device's last fetch, and final before its settlement); the
// days not read yet are pending, none missing.
func TestIdleFleetNightly(t *testing.T) {
	const nights = 14
	f := newFleet(t, 150, "7d")
	devs := f.sim.Devices()
	f.night(t)
	usageAsked := map[string][]int{} // nights each device's usage was asked
	for n := 1; n <= nights; n++ {
		prev := f.clock.Now()
		f.clock.Set(fleetNight.Add(time.Duration(n) * 24 * time.Hour))
		now := f.clock.Now()
		asked := f.night(t)
		conns := f.sim.TruthConnections(now)
		for _, c := range conns {
			id := c.Device.String()
			if asked["usage "+id] > 0 {
				usageAsked[id] = append(usageAsked[id], n)
			}
			// Idle: not connected, its last session started before the
			// connections settled by the last run (now − 2 days).
			idle := !c.Connected && c.LastConnection.Before(prev.Add(-24*time.Hour))
			if idle && asked["connections "+id] > 0 {
				t.Errorf("night %d: idle %s (last connection %s) got %d connection requests", n, id, c.LastConnection, asked["connections "+id])
			}
			if !c.LastConnection.Before(prev) && asked["connections "+id] == 0 && !deactivated(devs, c.Device) {
				t.Errorf("night %d: %s connected at %s, after the last run, got no connection request", n, id, c.LastConnection)
			}
		}
	}
	// A device idle over the whole span (no session since before the
	// first sync's settlement, not deactivated) is asked for its usage once
	// in each period of seven nights.
	idleAll := 0
	for _, c := range f.sim.TruthConnections(f.clock.Now()) {
		id := c.Device.String()
		if c.Connected || !c.LastConnection.Before(fleetNight.AddDate(0, 0, -4)) || deactivated(devs, c.Device) {
			continue
		}
		idleAll++
		got := usageAsked[id]
		if len(got) != 2 || got[0] > 7 || got[1]-got[0] != 7 {
			t.Errorf("idle %s: usage asked on nights %v, want once in nights 1–7 and once 7 nights later", id, got)
		}
	}
	if idleAll < 30 {
		t.Fatalf("only %d devices idle over the span: the fleet does not test the rule", idleAll)
	}
	checkTruth(t, f, devs)
}

func deactivated(devs []simulator.TruthDevice, id simulator.ID) bool {
	for _, d := range devs {
		if d.Identity == id {
			return d.Deactivated
		}
	}
	return false
}

// checkTruth compares the warehouse with the simulator's truth at the
// clock's time: connection events all equal; usage, per device, as served
// at its last usage fetch, and equal to today's truth before its
// settlement; rated usage of the current cycle equal (deactivated devices:
// as served when they were retired, the first sync); coverage without a
// missing day, pending days only for devices marked idle.
func checkTruth(t *testing.T, f *fleet, devs []simulator.TruthDevice) {
	t.Helper()
	ctx := context.Background()
	now := f.clock.Now()
	db, err := load.OpenReadOnly(ctx, f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var want []string
	for _, e := range f.sim.TruthEvents(now, f.start, time.Time{}) {
		want = append(want, fmt.Sprintf("%s %s %s %s", e.Device, e.OccurredAt.Format(time.RFC3339), e.Attrs["Event"], e.Attrs["AccountSessionId"]))
	}
	got := sqltest.Strings(t, db, `SELECT device_kind || ':' || device_id || ' ' || strftime(occurred_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') || ' ' || event || ' ' || account_session_id
		FROM connection_events ORDER BY device_kind, device_id, occurred_at, event`)
	slices.Sort(want)
	slices.Sort(got)
	if d := diff(want, got); d != "" {
		t.Errorf("connection events differ from the truth at %s (%d want, %d got): %s", now, len(want), len(got), d)
	}

	type cp struct{ settled, fetched time.Time }
	cps := map[string]cp{}
	rows, err := db.Query(`SELECT device_kind || ':' || device_id, settled_until, fetched_until FROM sync_checkpoints WHERE stream = 'usage'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var c cp
		if err := rows.Scan(&id, &c.settled, &c.fetched); err != nil {
			t.Fatal(err)
		}
		cps[id] = cp{c.settled.UTC(), c.fetched.UTC()}
	}
	rows.Close()
	for _, d := range devs {
		id := d.Identity.String()
		c, ok := cps[id]
		if !ok {
			t.Errorf("%s: no usage checkpoint", id)
			continue
		}
		if !d.Deactivated && c.fetched.Before(now.AddDate(0, 0, -7)) {
			t.Errorf("%s (%s): usage last fetched %s, more than a recheck period before %s", id, d.Class, c.fetched, now)
		}
		fetchedAt := c.fetched.Add(-time.Second)
		var want []string
		for _, u := range f.sim.TruthUsage(fetchedAt, f.start, time.Time{}, d.Identity) {
			want = append(want, fmt.Sprintf("%s %d %d", u.Date.Format(time.DateOnly), u.BytesUsed, u.SMSUsed))
		}
		var final []string
		for _, u := range f.sim.TruthUsage(now, f.start, c.settled, d.Identity) {
			final = append(final, fmt.Sprintf("%s %d %d", u.Date.Format(time.DateOnly), u.BytesUsed, u.SMSUsed))
		}
		got := sqltest.Strings(t, db, `SELECT strftime(usage_date, '%Y-%m-%d') || ' ' || bytes_used || ' ' || sms_used FROM usage_daily
			WHERE device_kind || ':' || device_id = ? ORDER BY usage_date`, id)
		if d := diff(want, got); d != "" {
			t.Errorf("%s: usage differs from the truth at its last fetch %s: %s", id, fetchedAt, d)
		}
		var settledGot []string
		for _, g := range got {
			if day, _ := time.Parse(time.DateOnly, g[:10]); day.Before(c.settled) {
				settledGot = append(settledGot, g)
			}
		}
		if d := diff(final, settledGot); d != "" {
			t.Errorf("%s: settled usage (before %s) differs from the truth at %s: %s", id, c.settled, now, d)
		}
	}

	var wantRated []string
	retiredAt := fleetNight
	for _, r := range f.sim.TruthRated(now) {
		if deactivated(devs, r.Device) {
			continue
		}
		wantRated = append(wantRated, fmt.Sprintf("%s %s %d", r.Device, r.Start.Format(time.DateOnly), r.DataUsageBytes))
	}
	for _, r := range f.sim.TruthRated(retiredAt) {
		if deactivated(devs, r.Device) {
			wantRated = append(wantRated, fmt.Sprintf("%s %s %d", r.Device, r.Start.Format(time.DateOnly), r.DataUsageBytes))
		}
	}
	gotRated := sqltest.Strings(t, db, `SELECT device_kind || ':' || device_id || ' ' || strftime(s AT TIME ZONE 'UTC', '%Y-%m-%d') || ' ' || b
		FROM (SELECT device_kind, device_id, max(billing_start_date) AS s, arg_max(data_usage_bytes, billing_start_date) AS b
		FROM rated_usage GROUP BY device_kind, device_id)`)
	slices.Sort(wantRated)
	slices.Sort(gotRated)
	if d := diff(wantRated, gotRated); d != "" {
		t.Errorf("rated usage of the current cycle differs from the truth at %s: %s", now, d)
	}

	var missing, pending, strayPending int
	if err := db.QueryRow(`SELECT count(*) FILTER (WHERE state = 'missing'), count(*) FILTER (WHERE state = 'pending'),
		count(*) FILTER (WHERE state = 'pending' AND c.idle_since IS NULL)
		FROM coverage_days d JOIN sync_checkpoints c USING (stream, device_kind, device_id)`).Scan(&missing, &pending, &strayPending); err != nil {
		t.Fatal(err)
	}
	if missing != 0 || pending == 0 || strayPending != 0 {
		t.Errorf("coverage_days: %d missing, %d pending (%d of devices not idle); want none missing, pending days for idle devices only", missing, pending, strayPending)
	}
}

// diff names the first few lines only one side has.
func diff(want, got []string) string {
	w, g := map[string]int{}, map[string]int{}
	for _, s := range want {
		w[s]++
	}
	for _, s := range got {
		g[s]++
	}
	var out []string
	for s, n := range w {
		if g[s] < n {
			out = append(out, "missing "+s)
		}
	}
	for s, n := range g {
		if w[s] < n {
			out = append(out, "extra "+s)
		}
	}
	slices.Sort(out)
	if len(out) > 6 {
		out = append(out[:6], fmt.Sprintf("… %d in all", len(out)))
	}
	return strings.Join(out, "; ")
}

// With THINGSYNC_IDLE_RECHECK=0 every device is asked for every stream on
// every run: a night after the first sync, each device not retired costs a
// usage and a connection request, and one with an MDN a rated request.
func TestIdleRecheckZeroAsksEveryDevice(t *testing.T) {
	f := newFleet(t, 60, "0")
	devs := f.sim.Devices()
	f.night(t)
	f.clock.Set(fleetNight.Add(24 * time.Hour))
	asked := f.night(t)
	for _, d := range devs {
		id := d.Identity.String()
		want := 1
		if d.Deactivated {
			want = 0
		}
		wantRated := want
		if d.RatedUnit == "" {
			wantRated = 0
		}
		if asked["usage "+id] != want || asked["connections "+id] != want || asked["rated "+id] != wantRated {
			t.Errorf("%s (%s): usage %d, connections %d, rated %d requests; want %d, %d, %d", id, d.Class,
				asked["usage "+id], asked["connections "+id], asked["rated "+id], want, want, wantRated)
		}
	}
}
