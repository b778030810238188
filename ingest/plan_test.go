package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

// sync --plan lists the devices and asks no history; the warehouse file is
// unchanged; the next sync then asks exactly what the plan said, per
// stream (rated: between the due devices and those whose usage fetch finds
// records).
func TestPlanAgreesWithTheNextSync(t *testing.T) {
	f := newFleet(t, 100, "7d")
	f.night(t)
	f.clock.Set(fleetNight.Add(24 * time.Hour))
	before := fileSum(t, f.db)
	f.sim.ResetStats()
	streams := []string{"usage", "connections", "rated"}
	rep, err := f.r.Plan(context.Background(), streams)
	if err != nil {
		t.Fatal(err)
	}
	st := f.sim.Stats()
	if st.Requests["usage"]+st.Requests["connections"]+st.Requests["rated"] != 0 || st.Requests["devices"] != rep.ListRequests || rep.ListRequests == 0 {
		t.Errorf("plan requests %v, want device-list requests only (%d)", st.Requests, rep.ListRequests)
	}
	if after := fileSum(t, f.db); !bytes.Equal(before, after) {
		t.Error("the plan changed the warehouse file")
	}
	if rep.Devices != 100 || rep.NoWarehouse {
		t.Errorf("plan: %d devices, no warehouse %v; want 100 and a warehouse", rep.Devices, rep.NoWarehouse)
	}
	by := map[string]PlanStream{}
	for _, s := range rep.Streams {
		by[s.Stream] = s
		if s.Due+s.Idle+s.Retired+s.Maybe == 0 || (s.Stream != "rated" && s.Idle == 0) {
			t.Errorf("plan of %s: %+v; want idle devices skipped", s.Stream, s)
		}
	}
	f.sim.ResetStats()
	f.night(t)
	got := f.sim.Stats().Requests
	for _, s := range []string{"usage", "connections"} {
		if got[s] != by[s].Requests {
			t.Errorf("%s: the sync made %d requests, the plan said %d", s, got[s], by[s].Requests)
		}
	}
	if r := by["rated"]; got["rated"] < r.Requests || got["rated"] > r.Requests+r.MaybeRequests {
		t.Errorf("rated: the sync made %d requests, the plan said %d to %d", got["rated"], r.Requests, r.Requests+r.MaybeRequests)
	}
	if got["devices"] != rep.ListRequests {
		t.Errorf("device list: the sync made %d requests, the plan said %d", got["devices"], rep.ListRequests)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Log(text.String())
	for _, want := range []string{"100 devices listed", "THINGSYNC_IDLE_RECHECK=7d", "skipped idle", "At 5000 req/s (THINGSYNC_RATE_LIMIT): "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("plan text lacks %q:\n%s", want, text.String())
		}
	}
}

// Without a warehouse every device is due from THINGSYNC_START, and the
// plan creates no file.
func TestPlanWithoutWarehouse(t *testing.T) {
	f := newFleet(t, 40, "7d")
	rep, err := f.r.Plan(context.Background(), []string{"usage", "connections"})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.NoWarehouse || rep.Devices != 40 {
		t.Errorf("plan: %+v; want no warehouse, 40 devices", rep)
	}
	for _, s := range rep.Streams {
		if s.Due != 40 || s.Requests < 40 {
			t.Errorf("plan of %s: %+v; want every device due", s.Stream, s)
		}
	}
	if _, err := os.Stat(f.db); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the plan created %s: %v", f.db, err)
	}
}

func fileSum(t *testing.T, path string) []byte {
	t.Helper()
	h := sha256.New()
	for _, p := range []string{path, path + ".wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		h.Write(b)
	}
	return h.Sum(nil)
}
