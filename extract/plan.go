package extract

import (
	"fmt"
	"time"

	"github.com/thingsync/thingsync/schema"
)

// Window is a half-open range [From, To) of one device's history to fetch.
type Window struct {
	From, To time.Time
	// Settle is where settled_until may move once the window is loaded:
	// the window's end, capped at the stream's settlement limit. Zero means
	// the window must not move it (a backfill range that leaves a gap).
	Settle time.Time
}

func (w Window) String() string {
	return w.From.UTC().Format(time.RFC3339) + "/" + w.To.UTC().Format(time.RFC3339)
}

// Latest is the inclusive "latest" to send for the window: the API answers
// records with earliest ≤ t ≤ latest, the window excludes To.
func (w Window) Latest() time.Time { return w.To.Add(-time.Second) }

// Plan describes how one stream is walked.
type Plan struct {
	Now time.Time
	// Start is the first instant to fetch for a device with no checkpoint
	// (THINGSYNC_START); never before the retention floor.
	Start time.Time
	// Ceiling is the widest range one request asks for
	// (THINGSYNC_WINDOW_*): windows are planned this wide, and Limit
	// narrows them where the API refuses.
	Ceiling time.Duration
	// Limit, if set, is the width the API answers, learned across the
	// fleet and across runs (nil: the ceiling, halved where refused).
	Limit *RangeLimit
	// Lookback is the settlement period: data younger than it when fetched
	// is provisional and read again by the next run.
	Lookback time.Duration
	// Daily streams settle whole UTC days (usage records are per day).
	Daily bool
}

// SettleLimit is how far settled_until may move in this run.
func (p Plan) SettleLimit() time.Time {
	s := p.Now.Add(-p.Lookback).UTC()
	if p.Daily {
		return schema.Day(s)
	}
	return s.Truncate(time.Second)
}

func (p Plan) floor() time.Time {
	f := schema.RetentionFloor(p.Now)
	if p.Start.After(f) {
		f = p.Start.UTC()
	}
	return f
}

// Incremental plans a sync run for one device: [settled_until, now), or
// [Start, now) without a checkpoint, in windows of up to Ceiling.
func (p Plan) Incremental(settledUntil time.Time) []Window {
	from := settledUntil.UTC()
	if fl := p.floor(); from.Before(fl) {
		// Nothing before the floor can be fetched (retention) or is wanted
		// (THINGSYNC_START).
		from = fl
	}
	return p.split(from, p.end(), true)
}

// end is the exclusive end of what a run fetches: a second past now, so a
// record stamped exactly now (a day that has just begun) is not left out.
func (p Plan) end() time.Time { return p.Now.UTC().Add(time.Second) }

// Backfill plans a re-fetch of [from, to) for one device. Settle is set only
// where moving settled_until leaves no gap: when the range starts at or
// before the device's current settled_until (or the floor without one).
func (p Plan) Backfill(from, to, settledUntil time.Time) []Window {
	if fl := schema.RetentionFloor(p.Now); from.Before(fl) {
		from = fl
	}
	if to.After(p.end()) {
		to = p.end()
	}
	reach := settledUntil
	if reach.IsZero() {
		reach = p.floor()
	}
	return p.split(from.UTC(), to.UTC(), !from.After(reach))
}

func (p Plan) split(from, to time.Time, settle bool) []Window {
	if !from.Before(to) || p.Ceiling <= 0 {
		return nil
	}
	limit := p.SettleLimit()
	var ws []Window
	for cur := from; cur.Before(to); {
		end := cur.Add(p.Ceiling)
		if end.After(to) {
			end = to
		}
		w := Window{From: cur, To: end}
		if settle {
			w.Settle = end
			if w.Settle.After(limit) {
				w.Settle = limit
			}
			if w.Settle.Before(from) {
				w.Settle = time.Time{}
			}
		}
		ws = append(ws, w)
		cur = end
	}
	return ws
}

// Cut divides a window at width from its start: head is the first width
// of it, tail the rest (zero when the window is no wider). Settle is kept
// as Split keeps it.
func Cut(w Window, width time.Duration) (head, tail Window) {
	if width <= 0 || w.To.Sub(w.From) <= width {
		return w, Window{}
	}
	end := w.From.Add(width)
	head, tail = Window{From: w.From, To: end}, Window{From: end, To: w.To}
	if !w.Settle.IsZero() {
		head.Settle, tail.Settle = minTime(end, w.Settle), w.Settle
	}
	return head, tail
}

// Split halves a window the API could not answer in time: in two while it is
// longer than a day, then into hours; ok is false once it is an hour or less.
func Split(w Window) (parts []Window, ok bool) {
	d := w.To.Sub(w.From)
	var step time.Duration
	switch {
	case d > 48*time.Hour:
		step = schema.Day(w.From.Add(d / 2)).Sub(w.From)
		if step <= 0 {
			step = d / 2
		}
	case d > 24*time.Hour:
		step = 24 * time.Hour
	case d > time.Hour:
		step = time.Hour
	default:
		return nil, false
	}
	for cur := w.From; cur.Before(w.To); cur = cur.Add(step) {
		end := cur.Add(step)
		if end.After(w.To) {
			end = w.To
		}
		part := Window{From: cur, To: end}
		if !w.Settle.IsZero() {
			part.Settle = minTime(end, w.Settle)
		}
		parts = append(parts, part)
	}
	return parts, true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// ParseDate reads a YYYY-MM-DD date as midnight UTC.
func ParseDate(s string) (time.Time, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return t, nil
}
