package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/aggregate"
	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// Spec says what one run does.
type Spec struct {
	Kind    string // sync, backfill or scheduled
	Streams []string
	// Backfill, if set, re-fetches this range instead of each device's
	// checkpoint onwards.
	Backfill *extract.Range
	// Only narrows the run to these devices (nil: every device).
	Only []extract.DeviceID
	// Ranges narrows a backfill to these ranges per stream and device.
	Ranges map[string]map[extract.DeviceID][]extract.Range
	// Serving: the daemon's server takes the callbacks; a one-shot run
	// listens itself and waits for them.
	Serving bool
	// Observer, if set, hears what the run does as it goes.
	Observer Observer
	// Budget, if not 0, is the longest the run hands out devices: then
	// it commits what it has and ends with StatusBudget, and the next run
	// starts after the last device it reached.
	Budget time.Duration
}

// Observer hears what a run does as it goes: its requests and rate
// ceiling, what each of its transactions wrote, and its devices done.
type Observer interface {
	extract.Observer
	Committed(load.Totals)
	Progress(extract.Progress)
}

// Report is what one run did.
type Report struct {
	RunID    string
	Kind     string
	Status   string // StatusOK, StatusPartial, StatusFailed, StatusInterrupted
	Started  time.Time
	Finished time.Time
	Result   extract.Result
	Counters extract.Counters
	Totals   load.Totals
	// RateLimit is the request rate ceiling the client kept at the end.
	RateLimit float64
	Agg       aggregate.Report
	Summary   string
}

// Runner runs syncs and backfills against one warehouse and account.
type Runner struct {
	Config *config.Config
	Log    zerolog.Logger
	// Gate holds the warehouse file; a run acquires it for its duration.
	Gate *load.Gate
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// TuneClient, if set, adjusts the API client's settings (tests shorten
	// backoffs and pauses with it).
	TuneClient func(*extract.ClientConfig)
	// TuneWriter, if set, adjusts a run's writer (tests commit every batch
	// with it, as a large fleet's run does).
	TuneWriter func(*load.WriterOptions)
	// Progress shows the walk's advance; finish is called when the walk
	// ends (nil: ProgressLog).
	Progress func(log zerolog.Logger, kind string) (update func(extract.Progress), finish func())
	// Callbacks are the callback listener's settings for the aggregate
	// step, which runs after a clean walk when the aggregate stream is on.
	Callbacks aggregate.Callbacks
	// AggregateDeadline is how long an aggregate request may wait for its
	// callback before it is asked again, AggregateWait how long a one-shot
	// run waits for its callbacks (0: the aggregate package's defaults).
	AggregateDeadline, AggregateWait time.Duration
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// NewClient builds the API client from cfg, adjusted by tune if set;
// concurrency sizes its connection pool, and obs (if not nil) hears its
// requests.
func NewClient(cfg *config.Config, concurrency int, tune func(*extract.ClientConfig), obs extract.Observer, log zerolog.Logger) (*extract.Client, error) {
	cc := extract.ClientConfig{
		BaseURL: cfg.BaseURL, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret.Reveal(),
		Username: cfg.Username, Password: cfg.Password.Reveal(), AccountName: cfg.AccountName,
		RateLimit: cfg.RateLimit, RateAuto: cfg.RateAuto, Concurrency: concurrency, MaxBodyBytes: cfg.MaxAnswerBytes, Observer: obs,
	}
	if tune != nil {
		tune(&cc)
	}
	return extract.NewClient(cc, log)
}

// Walked are the streams of streams fetched per device and window.
func Walked(streams []string) []string {
	var out []string
	for _, s := range streams {
		if s == schema.StreamUsage || s == schema.StreamConnections || s == schema.StreamRated {
			out = append(out, s)
		}
	}
	return out
}

// Run runs one sync or backfill: the walker feeds the writer through the
// transform, and the run's outcome is recorded in sync_runs. The warehouse
// is held through the Gate for the run's duration only. The error, when
// the run did not end ok, is an *Error.
func (r *Runner) Run(ctx context.Context, spec Spec) (Report, error) {
	cfg, log := r.Config, r.Log
	started := r.now()
	rep := Report{Kind: spec.Kind, Started: started, Status: StatusFailed}
	streams := Walked(spec.Streams)

	wh, release, err := r.Gate.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			rep.Status = StatusInterrupted
			return rep, partial(errors.New("interrupted before the run started"))
		}
		return rep, cannotRun(fmt.Errorf("open warehouse %s: %w", cfg.DB, err))
	}
	defer release()
	var wanted time.Time
	if spec.Backfill == nil {
		wanted = schema.RetentionFloor(started)
		if cfg.Start.After(wanted) {
			wanted = cfg.Start
		}
	}
	runID, err := wh.StartRun(ctx, spec.Kind, streams, started)
	if err == nil && !wanted.IsZero() {
		err = wh.SetWantedFrom(ctx, runID, wanted)
	}
	if err != nil {
		return rep, cannotRun(fmt.Errorf("record run: %w", err))
	}
	rep.RunID = runID
	log = log.With().Str(logging.RunID, runID).Logger()

	learned := startRate(ctx, wh, cfg, log)
	tune := func(cc *extract.ClientConfig) {
		cc.RateLearned = learned
		if r.TuneClient != nil {
			r.TuneClient(cc)
		}
	}
	// A nil spec.Observer stays nil as an extract.Observer.
	rates := newRateRecorder(r.now, spec.Observer)
	client, err := NewClient(cfg, cfg.Concurrency, tune, rates, log)
	if err != nil {
		return rep, cannotRun(err)
	}

	// The writer outlives ctx's cancellation long enough to commit what
	// is in flight: a first signal stops the walk, not the commit.
	wctx := context.WithoutCancel(ctx)
	wopts := load.WriterOptions{Now: r.now}
	if spec.Observer != nil {
		wopts.Committed = spec.Observer.Committed
	}
	if r.TuneWriter != nil {
		r.TuneWriter(&wopts)
	}
	wr := wh.NewWriter(wctx, runID, wopts)
	sink := load.NewPipeline(wh, wr, transform.New())
	limits := rangeLimits(ctx, wh.Learned, cfg, log)
	plans := walkPlans(cfg, started, limits)
	// Readers of the warehouse's state read this file while the run holds
	// the warehouse.
	pf := startProgressFile(cfg.DB, log, r.now, func() int { return client.Counters().TotalRequests() }, client.RateLimit, runID, spec.Kind, started)
	defer pf.remove()
	display := r.Progress
	if display == nil {
		display = func(log zerolog.Logger, kind string) (func(extract.Progress), func()) {
			return ProgressLog(log, kind), func() {}
		}
	}
	show, finishProgress := display(log, spec.Kind)
	progress := func(p extract.Progress) {
		p.RateLimit = client.RateLimit()
		pf.update(p)
		show(p)
		if spec.Observer != nil {
			spec.Observer.Progress(p)
		}
	}
	// A run over the whole fleet carries on where the last one stopped.
	inTurn := spec.Backfill == nil && len(spec.Only) == 0
	var resume *int64
	if inTurn {
		resume = readTurn(ctx, wh, log)
	}
	w := &extract.Walk{Client: client, Sink: sink, Log: log, Concurrency: cfg.Concurrency, Streams: streams,
		Plans: plans, Backfill: spec.Backfill, Ranges: spec.Ranges, Only: spec.Only, Now: r.now, Progress: progress,
		Idle: idleRule(cfg, spec), Resume: resume}
	if spec.Budget > 0 {
		w.Budget = started.Add(spec.Budget)
	}
	res, walkErr := w.Run(ctx)
	finishProgress()
	pf.phase("finishing")
	totals, closeErr := wr.Close(wctx)
	keepRangeLimits(wctx, wh, limits, r.now(), runID, log)
	if inTurn && closeErr == nil {
		keepTurn(wctx, wh, res, resume != nil, ctx.Err() != nil, started, r.now(), runID, log)
	}
	var (
		agg    aggregate.Report
		aggErr error
	)
	asksAggregate := slices.Contains(spec.Streams, schema.StreamAggregate) && spec.Backfill == nil
	if asksAggregate && closeErr == nil && walkErr == nil && ctx.Err() == nil && !res.Budget {
		step := aggregate.Step{Client: client, Callbacks: r.Callbacks, Gate: r.Gate, Start: cfg.Start,
			Deadline: r.AggregateDeadline, Wait: r.AggregateWait, Now: r.now, Log: log}
		// A one-shot run listens for its callbacks itself and waits for
		// them; the daemon's listener takes a scheduled run's.
		agg, aggErr = step.Run(ctx, wh, started, !spec.Serving)
		if aggErr != nil {
			log.Error().Err(aggErr).Str(logging.Stream, schema.StreamAggregate).Msg("aggregate usage step failed; the other streams are loaded")
		}
	}
	_ = client.Logout(wctx)
	keepRate(wctx, wh, client, r.now(), runID, log)
	rates.keep(wctx, wh, runID, log)

	counters := client.Counters()
	o := Decide(Ended{Result: res, WalkErr: walkErr, CloseErr: closeErr, AggErr: aggErr, Interrupted: ctx.Err() != nil})
	out := load.RunOutcome{
		Status: o.Status, Error: o.Detail, FinishedAt: r.now(), Devices: res.Devices, DevicesFailed: res.DevicesFailed,
		Requests: counters.TotalRequests(), Retries: counters.TotalRetries(),
	}
	o = o.Unrecorded(wh.FinishRun(wctx, runID, out))
	rep.Status, rep.Finished = o.Status, out.FinishedAt
	rep.Result, rep.Counters, rep.Totals, rep.Agg = res, counters, totals, agg
	var shown *aggregate.Report
	if asksAggregate {
		shown = &agg
	}
	rep.RateLimit = client.RateLimit()
	rep.Summary = Summary(spec.Kind, res, counters, totals, r.now().Sub(started), shown)
	if cfg.RateAuto {
		rep.Summary += fmt.Sprintf(", request rate %.1f/s at the end", rep.RateLimit)
	}
	return rep, o.Err
}

// idleRule is the rule a run applies: a sync of the whole account skips
// idle devices; a backfill, or a sync of named devices, asks what it names.
func idleRule(cfg *config.Config, spec Spec) extract.IdleRule {
	if spec.Backfill != nil || len(spec.Only) > 0 {
		return extract.IdleRule{}
	}
	return extract.IdleRule{Recheck: cfg.IdleRecheck}
}

// learnedTurn names, in sync_learned, the number of the device after which
// the next run starts (-1: from the start of the list).
const learnedTurn = "device_turn"

// readTurn is where the last run over the fleet stopped, if it stopped
// part-way (nil: start at the top of the list). A value that cannot be
// read starts at the top: every device is still visited.
func readTurn(ctx context.Context, wh *load.Warehouse, log zerolog.Logger) *int64 {
	v, ok, err := wh.Learned(ctx, learnedTurn)
	if err != nil {
		log.Warn().Err(err).Msg("where the last run stopped is unknown; this run starts at the top of the device list")
		return nil
	}
	n, perr := strconv.ParseInt(v, 10, 64)
	if !ok || perr != nil || n < 0 {
		return nil
	}
	log.Info().Int64("after_device_number", n).Msg("the last run stopped part-way: this run starts with the devices it did not reach")
	return &n
}

// keepTurn records where the next run starts: after the last device this
// one reached when it stopped part-way (its budget, or a signal), from the
// top once the list has come round. A run that read the whole list also
// records when it started: devices listed before then and not since have
// left the account, and their device_history periods end there.
func keepTurn(ctx context.Context, wh *load.Warehouse, res extract.Result, resumed, interrupted bool, started, now time.Time, runID string, log zerolog.Logger) {
	var err error
	switch {
	case res.ListEnd:
		err = wh.SetLearned(ctx, load.LearnedListRead, started.UTC().Format(time.RFC3339Nano), now, runID)
		if n, cerr := wh.CloseVanished(ctx, started, now); cerr != nil {
			log.Warn().Err(cerr).Msg("device_history: periods of devices the list no longer shows stay open until the next complete listing")
		} else if n > 0 {
			log.Info().Int64("devices", n).Msg("devices the device list no longer shows: their device_history periods end at this run")
		}
		if err == nil && resumed {
			err = wh.SetLearned(ctx, learnedTurn, "-1", now, runID)
		}
	case (res.Budget || interrupted) && res.ReachedNumber >= 0:
		err = wh.SetLearned(ctx, learnedTurn, strconv.FormatInt(res.ReachedNumber, 10), now, runID)
	}
	if err != nil {
		log.Warn().Err(err).Msg("could not record where the next run starts; it starts at the top of the device list")
	}
}
