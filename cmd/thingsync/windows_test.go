package main

import (
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
)

// A first sync with the default (wide) windows against an API that refuses
// ranges over 90 days: the warehouse equals the truth, the width is
// learned once for the fleet and kept in sync_learned; the next run
// starts from it (one refusal a stream, the run's probe of the ceiling),
// and a lower ceiling still caps it.
func TestSyncWideWindowsLearnTheRange(t *testing.T) {
	const devices = 8
	w := newWorld(t, simulator.Options{Devices: devices, Faults: simulator.Faults{MaxRange: 90 * 24 * time.Hour}})
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("sync exit %d: %s", code, out)
	}
	diffLines(t, "usage_daily", w.gotUsage(), w.wantUsage(t0))
	diffLines(t, "connection_events", w.gotEvents(), w.wantEvents(t0))
	first := w.sim.Stats()
	// Four devices in flight may each pay the halvings before the width
	// is known; 16 device-streams paying them all would be 48.
	if first.RangesRefused < 2 || first.RangesRefused > 30 {
		t.Errorf("first sync: %d ranges refused, want 2-30", first.RangesRefused)
	}
	learned := w.query(`SELECT name, value FROM sync_learned WHERE name LIKE 'window_%' ORDER BY name`)
	if len(learned) != 2 || !strings.HasPrefix(learned[0], "window_connections|answered=2160h0m0s refused=") ||
		!strings.HasPrefix(learned[1], "window_usage|answered=2160h0m0s refused=") {
		t.Fatalf("sync_learned = %v, want both streams answered at 90 days", learned)
	}

	// A backfill of the whole retention starts from the learned width.
	w.sim.ResetStats()
	if code, out := w.run("backfill", "--from", "2025-11-22", "--to", "2026-11-22"); code != 0 {
		t.Fatalf("backfill exit %d: %s", code, out)
	}
	st := w.sim.Stats()
	if st.RangesRefused != 2 || st.Requests["usage"] != devices*5+1 {
		t.Errorf("backfill: %d ranges refused, %d usage requests; want 2 (the probe of each stream) and %d (365 days in five of 90, and the probe)",
			st.RangesRefused, st.Requests["usage"], devices*5+1)
	}
	diffLines(t, "usage_daily after backfill", w.gotUsage(), w.wantUsage(t0))
	diffLines(t, "connection_events after backfill", w.gotEvents(), w.wantEvents(t0))
	w.noDuplicateKeys()

	// The ceiling caps the learned width.
	w.sim.ResetStats()
	w.env["THINGSYNC_WINDOW_USAGE"] = "30d"
	if code, out := w.run("backfill", "--from", "2025-11-22", "--to", "2026-11-22", "--streams", "usage"); code != 0 {
		t.Fatalf("backfill exit %d: %s", code, out)
	}
	if st := w.sim.Stats(); st.RangesRefused != 0 || st.Requests["usage"] != devices*13 {
		t.Errorf("backfill under a 30-day ceiling: %d ranges refused, %d usage requests; want none and %d (13 windows a device)",
			st.RangesRefused, st.Requests["usage"], devices*13)
	}
}
