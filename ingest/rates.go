package ingest

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
)

// maxRateMinutes bounds the minutes a run's rate series holds: past it,
// the series keeps its first minutes (a run longer than a day is not
// what the status page's chart is for).
const maxRateMinutes = 48 * 60

// rateRecorder counts a run's API requests and throttled answers per
// minute, and the ceiling the client keeps, for sync_run_rates; it passes
// everything on to next.
type rateRecorder struct {
	now  func() time.Time
	next extract.Observer

	mu      sync.Mutex
	limit   float64
	minutes []load.RateMinute
}

func newRateRecorder(now func() time.Time, next extract.Observer) *rateRecorder {
	return &rateRecorder{now: now, next: next}
}

// at returns the minute now falls in, appending it when new (nil when the
// series is full).
func (r *rateRecorder) at() *load.RateMinute {
	m := r.now().UTC().Truncate(time.Minute)
	if n := len(r.minutes); n > 0 && r.minutes[n-1].Minute.Equal(m) {
		return &r.minutes[n-1]
	}
	if len(r.minutes) >= maxRateMinutes {
		return nil
	}
	r.minutes = append(r.minutes, load.RateMinute{Minute: m, RateLimit: r.limit})
	return &r.minutes[len(r.minutes)-1]
}

func (r *rateRecorder) Attempt(endpoint string, status int, retry bool) {
	r.mu.Lock()
	if m := r.at(); m != nil {
		m.Requests++
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			m.Throttled++
		}
	}
	r.mu.Unlock()
	if r.next != nil {
		r.next.Attempt(endpoint, status, retry)
	}
}

func (r *rateRecorder) RateLimit(perSecond float64) {
	r.mu.Lock()
	r.limit = perSecond
	if n := len(r.minutes); n > 0 && r.minutes[n-1].Minute.Equal(r.now().UTC().Truncate(time.Minute)) {
		r.minutes[n-1].RateLimit = perSecond
	}
	r.mu.Unlock()
	if r.next != nil {
		r.next.RateLimit(perSecond)
	}
}

// keep writes the series to the warehouse; a failure costs the status
// page its chart, not the run.
func (r *rateRecorder) keep(ctx context.Context, wh *load.Warehouse, runID string, log zerolog.Logger) {
	r.mu.Lock()
	minutes := append([]load.RateMinute(nil), r.minutes...)
	r.mu.Unlock()
	if err := wh.RecordRates(ctx, runID, minutes); err != nil {
		log.Warn().Err(err).Msg("the run's request rate per minute is not kept (the status page shows no rate chart for it)")
	}
}
