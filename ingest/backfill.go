package ingest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
)

// BackfillRequest is a backfill as asked.
type BackfillRequest struct {
	// From and To are UTC dates (YYYY-MM-DD), To included; both empty
	// with Gaps.
	From, To string
	// Streams are the streams to re-fetch, comma-separated; empty: the
	// history streams of the configuration.
	Streams string
	// Gaps: re-fetch the missing device-days of the coverage ledger.
	Gaps bool
}

// Backfill is a backfill request checked.
type Backfill struct {
	Range   *extract.Range // the days to re-fetch, To excluded; nil with Gaps
	Streams []string
	// Clipped: the request's To was after today; Range ends today.
	Clipped bool
}

// PlanBackfill checks a backfill request. Only usage and connection
// history have dates to re-fetch (rated usage is the current billing
// cycle, which every sync fetches; aggregate usage is asked by sync). A
// From after today has nothing to fetch and is refused; a To after today
// is fetched up to today. The error lists every problem found.
func PlanBackfill(req BackfillRequest, configured []string, today time.Time) (Backfill, error) {
	var problems []string
	var b Backfill
	var from, to time.Time
	var err error
	switch {
	case req.Gaps && (req.From != "" || req.To != ""):
		problems = append(problems, "--gaps takes no --from or --to (the ledger says which days)")
	case !req.Gaps:
		if from, err = extract.ParseDate(req.From); err != nil {
			problems = append(problems, "--from: "+err.Error())
		} else if from.After(today) {
			problems = append(problems, fmt.Sprintf("--from %s is after today (%s): there is no data to fetch yet", req.From, today.Format(time.DateOnly)))
		}
		if to, err = extract.ParseDate(req.To); err != nil {
			problems = append(problems, "--to: "+err.Error())
		}
		if len(problems) == 0 && to.Before(from) {
			problems = append(problems, "--to is before --from")
		}
	}
	if req.Streams != "" {
		if b.Streams, err = config.ParseStreams(req.Streams); err != nil {
			problems = append(problems, "--streams: "+err.Error())
		}
		for _, s := range b.Streams {
			if s != schema.StreamUsage && s != schema.StreamConnections {
				problems = append(problems, fmt.Sprintf("--streams: %s has no dates to re-fetch (backfill takes usage and connections; sync fetches %s)", s, s))
			}
		}
	} else {
		for _, s := range configured {
			if s == schema.StreamUsage || s == schema.StreamConnections {
				b.Streams = append(b.Streams, s)
			}
		}
		if len(b.Streams) == 0 {
			problems = append(problems, "THINGSYNC_STREAMS has neither usage nor connections; name them with --streams")
		}
	}
	if len(problems) > 0 {
		return Backfill{}, errors.New(strings.Join(problems, "; "))
	}
	if !req.Gaps {
		if to.After(today) {
			to, b.Clipped = today, true
		}
		b.Range = &extract.Range{From: from, To: to.AddDate(0, 0, 1)}
	}
	return b, nil
}
