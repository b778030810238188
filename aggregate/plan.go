package aggregate

import (
	"slices"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
)

// Default timings of the aggregate step.
const (
	// DefaultDeadline is how long a request may wait for its callback
	// before it is asked again.
	DefaultDeadline = 6 * time.Hour
	// DefaultWait bounds how long a one-shot run waits for its callbacks.
	DefaultWait = 2 * time.Minute
)

// Device is a device whose aggregate usage is asked for, by its ICCID.
type Device struct {
	ICCID string
	// Settled is where its aggregate checkpoint's settled_until stands
	// (zero: none); usage before it is final and not asked again.
	Settled time.Time
}

// Planner decides which aggregate requests a run sends.
type Planner struct {
	// Start is where a device without a settled checkpoint is asked from
	// (THINGSYNC_START); zero means as far back as the API answers.
	Start time.Time
	// Deadline is the age at which a request still waiting for its
	// callback is overdue.
	Deadline time.Duration
}

// Requests is what a run sends: the overdue requests to close, then the
// asks.
type Requests struct {
	// Closed are overdue requests for a period the API no longer answers
	// for (more than six months back): superseded, with no successor.
	Closed []string
	// Asks are the requests to send, in order: the re-asks first, then
	// new requests by period.
	Asks []Ask
}

// Ask is one request to send.
type Ask struct {
	Period  extract.Window
	Devices []extract.DeviceID // 1 to extract.MaxAggregateDevices ICCIDs
	// Replaces is the overdue request this one asks again (nil: a new
	// request); it is superseded by this one once sent.
	Replaces *load.AggregateRequest
}

// Reasks counts the asks that replace an overdue request.
func (r Requests) Reasks() int {
	n := 0
	for _, a := range r.Asks {
		if a.Replaces != nil {
			n++
		}
	}
	return n
}

// Plan decides the requests of a run at now. waiting are the requests
// still waiting for their data (pending or completed), oldest first:
// one younger than the deadline covers its devices for its period; an
// overdue one is asked again, same devices and period (the callback may
// have been lost), unless its period is too old for the API, then it is
// closed. Every device is then asked, month by month, from its settled
// checkpoint (or Start; never more than six months back) to the start of
// today, unless a waiting or re-asked request covers it; devices asked
// from the same day share requests of at most MaxAggregateDevices.
func (p Planner) Plan(now time.Time, devices []Device, waiting []load.AggregateRequest) Requests {
	floor := oldest(now)
	type key struct {
		dev   extract.DeviceID
		start int64
	}
	covered := map[key]bool{}
	cover := func(r load.AggregateRequest) {
		for _, d := range r.Devices {
			covered[key{d, r.Start.Unix()}] = true
		}
	}
	var out Requests
	for _, r := range waiting {
		switch {
		case now.Sub(r.RequestedAt) < p.Deadline:
			cover(r)
		case r.Start.Before(floor):
			out.Closed = append(out.Closed, r.ID)
		default:
			out.Asks = append(out.Asks, Ask{Period: extract.Window{From: r.Start, To: r.End}, Devices: r.Devices, Replaces: &r})
			cover(r)
		}
	}

	// Devices grouped by the day they are asked from, earliest first.
	groups := map[time.Time][]extract.DeviceID{}
	for _, d := range devices {
		from := p.Start
		if !d.Settled.IsZero() {
			from = d.Settled
		}
		if from.Before(floor) {
			from = floor
		}
		from = from.UTC()
		groups[from] = append(groups[from], extract.DeviceID{Kind: "iccid", ID: d.ICCID})
	}
	froms := make([]time.Time, 0, len(groups))
	for f := range groups {
		froms = append(froms, f)
	}
	slices.SortFunc(froms, func(a, b time.Time) int { return a.Compare(b) })
	for _, from := range froms {
		for _, period := range Periods(now, from) {
			var todo []extract.DeviceID
			for _, d := range groups[from] {
				if !covered[key{d, period.From.Unix()}] {
					todo = append(todo, d)
				}
			}
			for len(todo) > 0 {
				n := min(len(todo), extract.MaxAggregateDevices)
				out.Asks = append(out.Asks, Ask{Period: period, Devices: todo[:n:n]})
				todo = todo[n:]
			}
		}
	}
	return out
}

// oldest is the earliest day the API answers aggregate usage for: six
// months before today.
func oldest(now time.Time) time.Time { return schema.Day(now).AddDate(0, -6, 0) }

// Periods are the periods to ask aggregate usage for, from from up to the
// start of today (UTC): calendar months, the first starting at from, never
// before six months ago, the last cut at today. The API answers a period
// of at most a month, and usage of today is not final.
func Periods(now, from time.Time) []extract.Window {
	today := schema.Day(now)
	if floor := oldest(now); from.Before(floor) {
		from = floor
	}
	var out []extract.Window
	for p := from.UTC(); p.Before(today); {
		next := time.Date(p.Year(), p.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		if next.After(today) {
			next = today
		}
		out = append(out, extract.Window{From: p, To: next})
		p = next
	}
	return out
}
