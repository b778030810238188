package ingest

import (
	"math"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
)

// ProgressLog reports the walk's advance as a log line every few seconds,
// and once when the last device is done: devices done, failed and listed,
// records, the request rate ceiling (rate_limit), and once devices are done
// the rate (devices_per_s) and the time left (eta_s).
func ProgressLog(log zerolog.Logger, kind string) func(extract.Progress) {
	var mu sync.Mutex
	last := time.Now()
	start := last
	return func(p extract.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 5*time.Second && (p.Listing || p.DevicesDone < p.DevicesTotal) {
			return
		}
		last = time.Now()
		ev := log.Info().Int("devices_done", p.DevicesDone).Int("devices_total", p.DevicesTotal).Bool("listing", p.Listing).
			Int("devices_failed", p.DevicesFailed).Int64("records", p.Records)
		if p.RateLimit > 0 {
			ev = ev.Float64(logging.RateLimit, math.Round(p.RateLimit*10)/10)
		}
		if el := time.Since(start).Seconds(); el > 0 && p.DevicesDone > 0 && !p.Listing {
			rate := float64(p.DevicesDone) / el
			ev = ev.Float64("devices_per_s", rate).Float64("eta_s", math.Round(float64(p.DevicesTotal-p.DevicesDone)/rate))
		}
		ev.Msg(kind + " progress")
	}
}
