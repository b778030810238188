package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/schema"
)

// windowsBench is the fleet table's first sync: devices × 365 days with
// the default (wide) windows, against an API that refuses ranges over 90
// days and against one without a limit. It counts the history requests
// (usage and connections; logins and the device list aside) against the
// floor, one request a device-stream plus one per 500 records loaded, and,
// with the limit, against the least the limit allows: every device-stream
// needs a window per 90 days of its span whatever it holds.
func windowsBench(bin, dir string, devices int, now time.Time) []result {
	var rs []result
	for _, maxRange := range []time.Duration{90 * 24 * time.Hour, 0} {
		s := serve(simulator.Options{Seed: 1, Devices: devices, Clock: simulator.NewManualClock(now), Faults: simulator.Faults{MaxRange: maxRange}})
		db := filepath.Join(dir, "windows.duckdb")
		removeDB(db)
		wall, _ := sync(bin, s, db, nil)
		st := s.sim.Stats()
		s.close()
		requests := st.Requests["usage"] + st.Requests["connections"]
		rows, events := count(db, "usage_daily"), count(db, "connection_events")
		floor := 2*devices + int((rows+499)/500) + int((events+499)/500)
		name := fmt.Sprintf("first sync, %d devices × 365 d, no range limit", devices)
		target := fmt.Sprintf("%.2f× the floor (≤ 1.5×)", float64(requests)/float64(floor))
		if maxRange > 0 {
			name = fmt.Sprintf("first sync, %d devices × 365 d, --max-range %dd", devices, maxRange/(24*time.Hour))
			// The span of a first sync: the retention back from the start
			// of today, to a second past now.
			span := now.Add(time.Second).Sub(schema.RetentionFloor(now))
			windows := int((span + maxRange - 1) / maxRange)
			least := 2 * devices * windows
			target += fmt.Sprintf("; the least at %dd is %d (%d windows a device-stream), %.2f× the floor; %.2f× that least",
				maxRange/(24*time.Hour), least, windows, float64(least)/float64(floor), float64(requests)/float64(least))
		}
		rs = append(rs,
			result{name, "history requests / floor", fmt.Sprintf("%d / %d", requests, floor), target},
			result{"", "refused, wall", fmt.Sprintf("%d, %.1fs", st.RangesRefused, wall.Seconds()),
				fmt.Sprintf("%d usage rows, %d events", rows, events)})
	}
	return rs
}
