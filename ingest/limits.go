package ingest

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
)

// learnedWindow is the sync_learned name of what runs learned about the
// widest range the API answers for a stream: "window_usage",
// "window_connections".
func learnedWindow(stream string) string { return "window_" + stream }

// rangeLimits starts each history stream's range limit from what earlier
// runs learned, under the configured ceilings. What cannot be read is
// learned again: it costs a few refused requests, not the run.
func rangeLimits(ctx context.Context, learned func(ctx context.Context, name string) (string, bool, error), cfg *config.Config, log zerolog.Logger) map[string]*extract.RangeLimit {
	out := map[string]*extract.RangeLimit{}
	for stream, ceiling := range map[string]time.Duration{schema.StreamUsage: cfg.WindowUsage, schema.StreamConnections: cfg.WindowConnections} {
		var known extract.RangeLearned
		v, ok, err := learned(ctx, learnedWindow(stream))
		if err == nil && ok {
			known, err = extract.ParseRangeLearned(v)
		}
		if err != nil {
			log.Warn().Err(err).Str(logging.Stream, stream).Msg("cannot read the range width earlier runs learned; learning it again")
		}
		out[stream] = extract.NewRangeLimit(ceiling, known)
	}
	return out
}

// keepRangeLimits keeps what the run learned for the next one; a failure
// to keep it is logged, the run's data is committed already.
func keepRangeLimits(ctx context.Context, wh *load.Warehouse, limits map[string]*extract.RangeLimit, at time.Time, runID string, log zerolog.Logger) {
	for stream, l := range limits {
		learned, changed := l.Learned()
		if !changed {
			continue
		}
		if err := wh.SetLearned(ctx, learnedWindow(stream), learned.String(), at, runID); err != nil {
			log.Warn().Err(err).Str(logging.Stream, stream).Msg("cannot keep the range width this run learned")
		}
	}
}
