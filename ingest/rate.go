package ingest

import (
	"context"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
)

// LearnedRate is the sync_learned entry that holds the request rate the
// adaptive rate (THINGSYNC_RATE_LIMIT=auto) learned: the rate just below
// the API's last throttle (extract.AdaptiveRate.Learned). The next run
// starts there rather than at 10 or by hammering the API.
const LearnedRate = "rate_limit"

// startRate is the rate an auto-rate run starts at: what an earlier run
// learned (0: nothing, the client's default). Not being able to read it
// costs only a slower start, so it is said and the run goes on.
func startRate(ctx context.Context, wh *load.Warehouse, cfg *config.Config, log zerolog.Logger) float64 {
	if !cfg.RateAuto {
		return 0
	}
	v, ok, err := wh.Learned(ctx, LearnedRate)
	var learned float64
	if err == nil && ok {
		learned, err = strconv.ParseFloat(v, 64)
		if err == nil && !(learned > 0) {
			learned = 0
		}
	}
	if err != nil {
		log.Warn().Err(err).Msg("the request rate an earlier run learned is unreadable; starting at the default")
		learned = 0
	}
	start := extract.RateStart
	if learned > 0 {
		start = learned
	}
	log.Info().Float64("rate_start", min(start, cfg.RateLimit)).Float64("rate_max", cfg.RateLimit).Bool("learned", learned > 0).
		Msg("adaptive request rate")
	return learned
}

// keepRate keeps the rate the run learned for the next one.
func keepRate(ctx context.Context, wh *load.Warehouse, client *extract.Client, at time.Time, runID string, log zerolog.Logger) {
	r, ok := client.LearnedRate()
	if !ok {
		return
	}
	if err := wh.SetLearned(ctx, LearnedRate, strconv.FormatFloat(r, 'f', 3, 64), at, runID); err != nil {
		log.Warn().Err(err).Msg("the request rate this run learned is not kept; the next run starts lower")
		return
	}
	log.Info().Float64(logging.RateLimit, r).Msg("request rate learned for the next run")
}
