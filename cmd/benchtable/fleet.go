package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/load"
)

// fleetDevices is the simulated fleet of the "fleet" section; fleetMillion
// the fleet its per-device figures are extrapolated to.
const (
	fleetDevices = 10_000
	fleetMillion = 1_000_000
	fleetNights  = 8 // past the 7-day recheck period
)

// fleet measures what a nightly run asks of a fleet of the default mix
// (25% daily, 25% intermittent, 40% dormant, 5% suspended, 5%
// deactivated): after a first sync of a week (THINGSYNC_START keeps it
// cheap), the requests of each stream on the nights that follow, every
// device every stream (THINGSYNC_IDLE_RECHECK=0, the walk before the idle
// rule) against the rule (7d); the hours each takes at 10 and 50 req/s at
// 10,000 devices and, from the per-device counts, at 1,000,000; and the
// rows the rule lost against the simulator's truth once the recheck period
// has passed. The syncs run in this process (ingest.Runner): the nights
// follow the simulator's clock, which a child process cannot.
func fleet(dir string, now time.Time) []result {
	night0 := now.Truncate(24*time.Hour).AddDate(0, 0, -fleetNights).Add(2 * time.Hour)
	clock := simulator.NewManualClock(night0)
	s := serve(simulator.Options{Seed: 5, Devices: fleetDevices, Fleet: simulator.DefaultFleetMix(), Clock: clock})
	defer s.close()
	start := night0.AddDate(0, 0, -7).Truncate(24 * time.Hour)
	runner := func(db, recheck string) *ingest.Runner {
		env := s.sim.ClientEnv(s.url, map[string]string{
			"THINGSYNC_DB": db, "THINGSYNC_RATE_LIMIT": "100000", "THINGSYNC_CONCURRENCY": "8",
			"THINGSYNC_STREAMS": "usage,connections,rated", "THINGSYNC_START": start.Format(time.DateOnly),
			"THINGSYNC_IDLE_RECHECK": recheck,
		})
		cfg, err := config.Load(context.Background(), envconfig.MapLookuper(env), night0, config.Needs{API: true})
		check(err)
		g := load.NewGate(db, zerolog.Nop())
		return &ingest.Runner{Config: cfg, Log: zerolog.Nop(), Gate: g, Now: clock.Now,
			Progress: func(zerolog.Logger, string) (func(extract.Progress), func()) {
				return func(extract.Progress) {}, func() {}
			}}
	}
	streams := []string{"usage", "connections", "rated"}
	sync := func(r *ingest.Runner) map[string]int {
		s.sim.ResetStats()
		rep, err := r.Run(context.Background(), ingest.Spec{Kind: "sync", Streams: streams})
		check(err)
		if rep.Status != ingest.StatusOK {
			check(fmt.Errorf("fleet sync at %s: %s", clock.Now(), rep.Status))
		}
		return s.sim.Stats().Requests
	}
	ruleDB, walkDB := filepath.Join(dir, "fleet-rule.duckdb"), filepath.Join(dir, "fleet-walk.duckdb")
	rule, walk := runner(ruleDB, "7d"), runner(walkDB, "0")
	first := sync(rule)
	copyFile(ruleDB, walkDB)

	// Night 1: both; nights 2..8: the rule (its rechecks spread over the
	// period, so the mean of nights 1–7 is what a night costs).
	var perNight []map[string]int
	var today map[string]int
	for n := 1; n <= fleetNights; n++ {
		clock.Set(night0.Add(time.Duration(n) * 24 * time.Hour))
		if n == 1 {
			today = sync(walk)
		}
		perNight = append(perNight, sync(rule))
	}
	mean := map[string]float64{}
	peak := 0
	for _, m := range perNight[:7] {
		total := 0
		for _, ep := range []string{"devices", "usage", "connections", "rated"} {
			mean[ep] += float64(m[ep]) / 7
			total += m[ep]
		}
		peak = max(peak, total)
	}
	sum := func(m map[string]float64) float64 {
		return m["devices"] + m["usage"] + m["connections"] + m["rated"]
	}
	todayF := map[string]float64{}
	for k, v := range today {
		todayF[k] = float64(v)
	}
	tw, rw := sum(todayF), sum(mean)
	hours := func(req, rate float64) string { return fmt.Sprintf("%.2f", req/rate/3600) }
	// A million devices: the per-device counts of the data streams, plus
	// a device-list request per 2,000 devices.
	million := func(m map[string]float64) float64 {
		return (m["usage"]+m["connections"]+m["rated"])/fleetDevices*fleetMillion + fleetMillion/2000
	}
	tm, rm := million(todayF), million(mean)
	lost, settled := fleetLost(s.sim, ruleDB, clock.Now(), start, night0)
	firstTotal := first["devices"] + first["usage"] + first["connections"] + first["rated"]
	return []result{
		{"fleet, 10,000 devices, default mix", "first sync (7 d): requests", fmt.Sprint(firstTotal),
			"mix 25% daily, 25% intermittent, 40% dormant, 5% suspended, 5% deactivated"},
		{"  nightly, every device every stream", "usage / conn / rated", fmt.Sprintf("%d / %d / %d", today["usage"], today["connections"], today["rated"]),
			fmt.Sprintf("%.0f requests with the list", tw)},
		{"  nightly, idle rule (mean of nights 1–7)", "usage / conn / rated", fmt.Sprintf("%.0f / %.0f / %.0f", mean["usage"], mean["connections"], mean["rated"]),
			fmt.Sprintf("%.0f requests; night 1: %d; busiest: %d", rw, perNight[0]["usage"]+perNight[0]["connections"]+perNight[0]["rated"]+perNight[0]["devices"], peak)},
		{"", "rule / every device", fmt.Sprintf("%.2f×", rw/tw), "≤ 0.35×"},
		{"", "hours at 10 / 50 req/s", fmt.Sprintf("%s / %s", hours(rw, 10), hours(rw, 50)),
			fmt.Sprintf("every device: %s / %s", hours(tw, 10), hours(tw, 50))},
		{"  1,000,000 devices (from per-device counts)", "hours at 10 / 50 req/s", fmt.Sprintf("%s / %s", hours(rm, 10), hours(rm, 50)),
			fmt.Sprintf("≤ 8 h at 50; every device: %s / %s", hours(tm, 10), hours(tm, 50))},
		{fmt.Sprintf("  after %d nights (recheck 7d)", fleetNights), "rows lost vs truth", fmt.Sprint(lost),
			fmt.Sprintf("0 (of %d settled usage rows, events, rated)", settled)},
	}
}

// fleetLost compares the warehouse at db with the simulator's truth at now:
// every connection event since start; every usage row of a day a device's
// checkpoint has settled (later days are provisional or pending: read again
// by the rule); the rated usage of the current cycle (a deactivated
// device's as served when it was retired, by the first sync, at retired). It returns
// the truth's rows the warehouse lacks or holds otherwise, and how many
// were compared.
func fleetLost(sim *simulator.Simulator, db string, now, start, retired time.Time) (lost, compared int) {
	ctx := context.Background()
	rdb, err := load.OpenReadOnly(ctx, db)
	check(err)
	defer rdb.Close()
	held := map[string]bool{}
	scan := func(q string) {
		rows, err := rdb.QueryContext(ctx, q)
		check(err)
		defer rows.Close()
		for rows.Next() {
			var s string
			check(rows.Scan(&s))
			held[s] = true
		}
		check(rows.Err())
	}
	scan(`SELECT device_kind || ':' || device_id || ' ' || strftime(occurred_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') || ' ' || event || ' ' || account_session_id FROM connection_events`)
	scan(`SELECT u.device_kind || ':' || u.device_id || ' ' || strftime(u.usage_date, '%Y-%m-%d') || ' ' || u.bytes_used || ' ' || u.sms_used
		FROM usage_daily u JOIN sync_checkpoints c ON c.stream = 'usage' AND c.device_kind = u.device_kind AND c.device_id = u.device_id
		WHERE u.usage_date < c.settled_until`)
	scan(`SELECT device_kind || ':' || device_id || ' ' || strftime(max(billing_start_date) AT TIME ZONE 'UTC', '%Y-%m-%d') || ' ' || arg_max(data_usage_bytes, billing_start_date)
		FROM rated_usage GROUP BY device_kind, device_id`)
	settled := map[string]time.Time{}
	rows, err := rdb.QueryContext(ctx, `SELECT device_kind || ':' || device_id, settled_until FROM sync_checkpoints WHERE stream = 'usage'`)
	check(err)
	for rows.Next() {
		var id string
		var t time.Time
		check(rows.Scan(&id, &t))
		settled[id] = t.UTC()
	}
	rows.Close()
	want := func(s string) {
		compared++
		if !held[s] {
			lost++
		}
	}
	for _, e := range sim.TruthEvents(now, start, time.Time{}) {
		want(fmt.Sprintf("%s %s %s %s", e.Device, e.OccurredAt.Format(time.RFC3339), e.Attrs["Event"], e.Attrs["AccountSessionId"]))
	}
	for _, u := range sim.TruthUsage(now, start, time.Time{}) {
		if u.Date.Before(settled[u.Device.String()]) {
			want(fmt.Sprintf("%s %s %d %d", u.Device, u.Date.Format(time.DateOnly), u.BytesUsed, u.SMSUsed))
		}
	}
	deactivated := map[simulator.ID]bool{}
	for i := range fleetDevices {
		if d := sim.Device(i); d.Deactivated {
			deactivated[d.Identity] = true
		}
	}
	for _, at := range []time.Time{now, retired} {
		for _, r := range sim.TruthRated(at) {
			if deactivated[r.Device] == at.Equal(retired) {
				want(fmt.Sprintf("%s %s %d", r.Device, r.Start.Format(time.DateOnly), r.DataUsageBytes))
			}
		}
	}
	return lost, compared
}
