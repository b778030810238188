package load

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/transform"
)

// historyTimer sums the device_history statements' time from the
// writer's debug log lines.
type historyTimer struct {
	mu      sync.Mutex
	ms      float64
	batches int
}

func (h *historyTimer) Write(p []byte) (int, error) {
	var l struct {
		Msg string  `json:"message"`
		MS  float64 `json:"duration_ms"`
	}
	if json.Unmarshal(p, &l) == nil && l.Msg == "device_history kept" {
		h.mu.Lock()
		h.ms += l.MS
		h.batches++
		h.mu.Unlock()
	}
	return len(p), nil
}

func (h *historyTimer) take() (float64, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms, n := h.ms, h.batches
	h.ms, h.batches = 0, 0
	return ms, n
}

// BenchmarkDeviceListing100k stores a simulated device list of 100,000
// devices three times, in chunks of 10,000 as a run hands them over: new
// (every device opens a period), a day later (churn: 5% of the active
// devices changed, 1% left out), and an hour after that (the same
// listing: nothing changes). It reports each listing's writer time and,
// of it, the device_history statements' time, and the close of the
// periods of devices a complete listing left out.
//
//	go test ./load -run '^$' -bench DeviceListing100k -benchtime 1x
func BenchmarkDeviceListing100k(b *testing.B) {
	const devices, chunk = 100_000, 10_000
	sim := simulator.New(simulator.Options{Seed: 7, Devices: devices, Churn: simulator.Churn{Change: 0.05, Leave: 0.01}})
	defer sim.Close()
	truth := sim.Devices()
	timer := &historyTimer{}
	for range b.N {
		w, err := Open(ctx, filepath.Join(b.TempDir(), "w.duckdb"), zerolog.New(timer).Level(zerolog.DebugLevel))
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
		for n, at := range []time.Time{t0, t0.Add(24 * time.Hour), t0.Add(25 * time.Hour)} {
			wr := w.NewWriter(ctx, "", WriterOptions{Now: func() time.Time { return at }})
			p := NewPipeline(w, wr, transform.New())
			start := time.Now()
			for lo := 0; lo < devices; lo += chunk {
				page := make([]extract.Device, 0, chunk)
				for i := lo; i < lo+chunk; i++ {
					l := sim.Listing(i, at)
					if !l.Listed {
						continue
					}
					d := truth[i]
					ids := make([]extract.DeviceID, len(d.IDs))
					for j, id := range d.IDs {
						ids[j] = extract.DeviceID{Kind: d.Kinds[j], ID: id.ID}
					}
					page = append(page, extract.Device{AccountName: sim.AccountName(), DeviceIDs: ids,
						CarrierInformations: []extract.CarrierInfo{{CarrierName: "Verizon Wireless", ServicePlan: l.ServicePlan, State: l.State}},
						CreatedAt:           "2023-01-01T00:00:00Z", GroupNames: l.GroupNames, IPAddress: "0.0.0.0",
						ExtendedAttributes: []extract.Attribute{{Key: "DeviceId", Value: strconv.FormatInt(d.APIID, 10)}}})
				}
				if err := p.Devices(ctx, page, at); err != nil {
					b.Fatal(err)
				}
			}
			tot, err := wr.Close(ctx)
			if err != nil {
				b.Fatal(err)
			}
			total := time.Since(start)
			ms, batches := timer.take()
			closeStart := time.Now()
			closed, err := w.CloseVanished(ctx, at, at)
			if err != nil {
				b.Fatal(err)
			}
			closeMS := float64(time.Since(closeStart).Microseconds()) / 1000
			h := tot.Tables["device_history"]
			b.Logf("listing %d: %d devices rows written, writer %.0f ms, of it device_history %.0f ms in %d batches (%d opened, %d closed by a change); CloseVanished %.0f ms (%d closed)",
				n+1, tot.Tables["devices"].Inserted+tot.Tables["devices"].Updated, float64(total.Microseconds())/1000, ms, batches, h.Inserted, h.Updated, closeMS, closed)
			b.ReportMetric(ms, "history-ms/listing"+strconv.Itoa(n+1))
			b.ReportMetric(float64(total.Microseconds())/1000, "writer-ms/listing"+strconv.Itoa(n+1))
		}
		var periods, open int64
		if err := w.DB().QueryRow(`SELECT count(*), count(*) FILTER (WHERE valid_to IS NULL) FROM device_history`).Scan(&periods, &open); err != nil {
			b.Fatal(err)
		}
		b.Logf("device_history: %d periods, %d open", periods, open)
		w.Close()
	}
}
