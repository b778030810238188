package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/query"
	"github.com/thingsync/thingsync/schema"
)

// PlanReport is what the next sync would ask for (sync --plan): the idle
// rule applied to the device list and the warehouse's checkpoints, without
// a history request.
type PlanReport struct {
	At      time.Time
	Devices int
	// ListRequests are the device-list requests the plan made (the next
	// sync makes as many).
	ListRequests int
	Streams      []PlanStream
	// Recheck is THINGSYNC_IDLE_RECHECK.
	Recheck time.Duration
	// Rate is THINGSYNC_RATE_LIMIT (with RateAuto, the most the adaptive
	// rate may reach); Learned the rate a run learned (0: none kept).
	Rate, Learned float64
	RateAuto      bool
	// NoWarehouse: THINGSYNC_DB does not exist yet, so every device is
	// due from THINGSYNC_START.
	NoWarehouse bool
}

// PlanStream is one stream's share of a plan.
type PlanStream struct {
	Stream string
	// Due devices are asked; Idle ones skipped by the rule; Retired ones
	// deactivated and fetched a last time; Maybe ones (rated) asked if
	// their usage fetch returns records.
	Due, Idle, Retired, Maybe int
	// Requests the due devices take (one per window; a window of more
	// than a page takes more); MaybeRequests those of the Maybe devices.
	Requests, MaybeRequests int
}

// Requests is what the next sync is expected to ask: the device list and
// the due devices' requests; with maybe, the Maybe devices' as well.
func (p PlanReport) Requests(maybe bool) int {
	n := p.ListRequests
	for _, s := range p.Streams {
		n += s.Requests
		if maybe {
			n += s.MaybeRequests
		}
	}
	return n
}

// Plan lists the account's devices and says, per stream, which the next
// sync would ask for: it reads the warehouse read-only (a missing one means
// every device is due from THINGSYNC_START), fetches no history and
// writes nothing.
func (r *Runner) Plan(ctx context.Context, streams []string) (PlanReport, error) {
	cfg := r.Config
	now := r.now()
	rep := PlanReport{At: now, Recheck: cfg.IdleRecheck, Rate: cfg.RateLimit, RateAuto: cfg.RateAuto}
	sink := &planSink{}
	learned := func(context.Context, string) (string, bool, error) { return "", false, nil }
	if _, err := os.Stat(cfg.DB); errors.Is(err, fs.ErrNotExist) {
		rep.NoWarehouse = true
	} else {
		db, err := load.OpenReadOnly(ctx, cfg.DB)
		if err != nil {
			return rep, cannotRun(err)
		}
		defer db.Close()
		sink.read = func(ctx context.Context, stream string, devices []extract.DeviceID) (map[extract.DeviceID]extract.State, error) {
			return load.ReadDeviceStates(ctx, db, stream, devices)
		}
		learned = func(ctx context.Context, name string) (string, bool, error) { return load.ReadLearned(ctx, db, name) }
		v, ok, err := learned(ctx, LearnedRate)
		if err != nil {
			return rep, cannotRun(err)
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); ok && err == nil && f > 0 {
			rep.Learned = f
		}
	}
	client, err := NewClient(cfg, cfg.Concurrency, r.TuneClient, nil, r.Log)
	if err != nil {
		return rep, cannotRun(err)
	}
	walked := Walked(streams)
	byStream := map[string]*PlanStream{}
	for _, s := range walked {
		rep.Streams = append(rep.Streams, PlanStream{Stream: s})
	}
	for i := range rep.Streams {
		byStream[rep.Streams[i].Stream] = &rep.Streams[i]
	}
	var mu sync.Mutex
	w := &extract.Walk{Client: client, Sink: sink, Log: r.Log, Concurrency: cfg.Concurrency, Streams: walked,
		Plans: walkPlans(cfg, now, rangeLimits(ctx, learned, cfg, r.Log)), Now: r.now, Idle: extract.IdleRule{Recheck: cfg.IdleRecheck},
		Dry: func(it extract.DryItem) {
			mu.Lock()
			defer mu.Unlock()
			s := byStream[it.Stream]
			switch d := it.Decision; {
			case d.Due:
				s.Due++
				s.Requests += it.Requests
			case d.Maybe:
				s.Maybe++
				s.MaybeRequests += it.Requests
			case d.Reason == extract.SkipRetired:
				s.Retired++
			default:
				s.Idle++
			}
		}}
	res, walkErr := w.Run(ctx)
	_ = client.Logout(context.WithoutCancel(ctx))
	rep.Devices = res.Devices
	rep.ListRequests = client.Counters().Requests["devices"]
	if walkErr != nil {
		// A plan of part of the list would mislead: it did not run.
		return rep, cannotRun(fmt.Errorf("plan: %w", walkErr))
	}
	return rep, nil
}

// walkPlans are the history streams' window plans of a run at now.
func walkPlans(cfg *config.Config, now time.Time, limits map[string]*extract.RangeLimit) map[string]extract.Plan {
	return map[string]extract.Plan{
		schema.StreamUsage: {Now: now, Start: cfg.Start, Ceiling: cfg.WindowUsage, Limit: limits[schema.StreamUsage],
			Lookback: cfg.LookbackUsage, Daily: true},
		schema.StreamConnections: {Now: now, Start: cfg.Start, Ceiling: cfg.WindowConnections, Limit: limits[schema.StreamConnections],
			Lookback: cfg.LookbackConnections},
	}
}

// planSink reads checkpoints (none without a warehouse) and stores nothing.
type planSink struct {
	read func(ctx context.Context, stream string, devices []extract.DeviceID) (map[extract.DeviceID]extract.State, error)
}

func (p *planSink) States(ctx context.Context, stream string, devices []extract.DeviceID) (map[extract.DeviceID]extract.State, error) {
	if p.read == nil {
		return map[extract.DeviceID]extract.State{}, nil
	}
	return p.read(ctx, stream, devices)
}

func (p *planSink) Devices(context.Context, []extract.Device, time.Time) error { return nil }

func (p *planSink) Batch(context.Context, extract.Batch) error {
	return errors.New("a plan stores nothing")
}

func (p *planSink) Failed(context.Context, string, extract.DeviceID, error) error { return nil }

func (p *planSink) Visited(context.Context, extract.DeviceID) error { return nil }

// WriteText prints the plan: a table per stream, then the requests and the
// time they take at the configured rate (and the learned one).
func (p PlanReport) WriteText(w io.Writer) {
	rule := "THINGSYNC_IDLE_RECHECK=" + wholeDays(p.Recheck)
	if p.Recheck <= 0 {
		rule = "THINGSYNC_IDLE_RECHECK=0: every device, every stream"
	}
	fmt.Fprintf(w, "Plan at %s: %d devices listed in %d device-list requests; %s\n", p.At.UTC().Format(time.RFC3339), p.Devices, p.ListRequests, rule)
	if p.NoWarehouse {
		fmt.Fprintln(w, "No warehouse yet: every device is due from THINGSYNC_START.")
	}
	var body [][]string
	for _, s := range p.Streams {
		maybe := "-"
		if s.Stream == schema.StreamRated {
			maybe = strconv.Itoa(s.Maybe)
		}
		body = append(body, []string{s.Stream, strconv.Itoa(s.Due), strconv.Itoa(s.Idle), maybe, strconv.Itoa(s.Retired), strconv.Itoa(s.Requests)})
	}
	query.WriteColumns(w, []string{"stream", "due", "skipped idle", "if usage found", "retired", "requests"}, body, []bool{false, true, true, true, true, true})
	lo, hi := p.Requests(false), p.Requests(true)
	span := strconv.Itoa(lo)
	if hi > lo {
		span = fmt.Sprintf("%d to %d (rated usage of devices whose usage fetch finds records)", lo, hi)
	}
	fmt.Fprintf(w, "Requests expected: %s\n", span)
	at := func(rate float64, what string) {
		if rate <= 0 {
			return
		}
		line := fmt.Sprintf("At %g req/s (%s): %s", rate, what, took(lo, rate))
		if hi > lo {
			line += " to " + took(hi, rate)
		}
		fmt.Fprintln(w, line)
	}
	if p.RateAuto {
		at(p.Rate, "THINGSYNC_RATE_LIMIT=auto, its most")
	} else {
		at(p.Rate, "THINGSYNC_RATE_LIMIT")
	}
	at(p.Learned, "learned by the last run")
}

// wholeDays writes whole days as THINGSYNC_IDLE_RECHECK takes them ("7d").
func wholeDays(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// took is how long n requests take at rate, to the second (to the
// millisecond under a minute).
func took(n int, rate float64) string {
	d := time.Duration(float64(n) / rate * float64(time.Second))
	if d < time.Minute {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
