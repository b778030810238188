package aggregate

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// Report is what the aggregate step of a run did.
type Report struct {
	Requested int // requests sent, re-asks included
	Reasked   int // overdue requests asked again
	Received  int // requests sent whose data arrived while the run waited
	Pending   int // requests sent still waiting for their data
}

// Step is the aggregate step of a run.
type Step struct {
	Client    *extract.Client
	Callbacks Callbacks
	// Gate is what a one-shot run's own listener commits through.
	Gate *load.Gate
	// Start is where a device without a settled checkpoint is asked from.
	Start time.Time
	// Deadline (0: DefaultDeadline) is when a request still waiting is
	// asked again; Wait (0: DefaultWait) bounds a one-shot run's wait.
	Deadline, Wait time.Duration
	Now            func() time.Time
	Log            zerolog.Logger
}

// Run is the aggregate step of a run that started at started: it makes
// sure the listener is registered and sends the requests. A one-shot run
// (oneShot) has nobody else to take the callbacks: Run listens on
// Callbacks.Addr for its own duration, committing through Gate, and waits,
// up to Wait, until the data of every request it sent is stored.
// Otherwise the daemon's listener takes them and Run returns once they
// are sent.
func (s Step) Run(ctx context.Context, wh *load.Warehouse, started time.Time, oneShot bool) (Report, error) {
	if !oneShot {
		return s.run(ctx, wh, started, nil)
	}
	stored := make(chan struct{}, 1)
	h := handler(s.Callbacks, &store{g: s.Gate, tf: transform.New(), lookback: s.Callbacks.Lookback, now: s.Now, log: s.Log, stored: stored})
	stop, err := Listen(ctx, s.Callbacks, h, s.Log)
	if err != nil {
		return Report{}, err
	}
	defer stop()
	return s.run(ctx, wh, started, &wake{stored: stored})
}

// wake says when a waiting step reads the states of its requests again.
type wake struct {
	stored <-chan struct{} // the step's own listener stored a delivery
}

// run sends the requests and, unless w is nil, waits for their data.
func (s Step) run(ctx context.Context, wh *load.Warehouse, started time.Time, w *wake) (Report, error) {
	var rep Report
	log := s.Log.With().Str(logging.Stream, schema.StreamAggregate).Logger()
	if err := Register(ctx, s.Client, s.Callbacks, log); err != nil {
		return rep, err
	}
	ids, reasked, err := s.send(ctx, wh, started, log)
	rep.Requested, rep.Reasked = len(ids), reasked
	if err != nil {
		return rep, err
	}
	if w != nil && len(ids) > 0 {
		rep.Received, rep.Pending = s.await(ctx, wh, ids, w, log)
	} else {
		rep.Pending = len(ids)
	}
	return rep, nil
}

// send plans the requests from the devices of this run's device list
// (seen since started) and sends them, recording each requestId before
// anything else happens: the callback may arrive at any moment after the
// API answered. It returns the requestIds sent.
func (s Step) send(ctx context.Context, wh *load.Warehouse, started time.Time, log zerolog.Logger) (sent []string, reasked int, err error) {
	now := s.Now()
	waiting, err := wh.AggregateRequests(ctx, load.RequestPending, load.RequestCompleted)
	if err != nil {
		return nil, 0, err
	}
	devs, err := wh.DevicesWithICCID(ctx, started)
	if err != nil {
		return nil, 0, err
	}
	cps, err := wh.Checkpoints(ctx, schema.StreamAggregate)
	if err != nil {
		return nil, 0, err
	}
	devices := make([]Device, len(devs))
	for i, d := range devs {
		devices[i] = Device{ICCID: d.ICCID, Settled: cps[d.Identity].SettledUntil}
	}
	plan := Planner{Start: s.Start, Deadline: cmp.Or(s.Deadline, DefaultDeadline)}.Plan(now, devices, waiting)

	for _, id := range plan.Closed {
		// Too old to ask again: the API refuses it.
		if err := wh.Supersede(ctx, id, ""); err != nil {
			return sent, reasked, err
		}
	}
	for _, a := range plan.Asks {
		id, err := s.Client.RequestAggregateUsage(ctx, a.Devices, a.Period.From, a.Period.To)
		if err != nil {
			return sent, reasked, fmt.Errorf("request aggregate usage %s: %w", a.Period, err)
		}
		if err := wh.AddAggregateRequest(context.WithoutCancel(ctx), load.AggregateRequest{ID: id, Start: a.Period.From, End: a.Period.To,
			Devices: a.Devices, RequestedAt: now}); err != nil {
			return sent, reasked, err
		}
		sent = append(sent, id)
		if old := a.Replaces; old != nil {
			if err := wh.Supersede(ctx, old.ID, id); err != nil {
				return sent, reasked, err
			}
			reasked++
			log.Warn().Str("request_id", old.ID).Str("new_request_id", id).Float64("age_s", now.Sub(old.RequestedAt).Seconds()).
				Msg("aggregate request got no callback before its deadline; asked again")
		}
	}
	return sent, reasked, nil
}

// await waits, bounded by Wait, until the requests are received,
// reading their states at the start and each time w says so.
func (s Step) await(ctx context.Context, wh *load.Warehouse, ids []string, w *wake, log zerolog.Logger) (received, pending int) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	wait := cmp.Or(s.Wait, DefaultWait)
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		rs, err := wh.AggregateRequests(context.WithoutCancel(ctx), load.RequestReceived)
		if err == nil {
			received = 0
			for _, r := range rs {
				if want[r.ID] {
					received++
				}
			}
		}
		pending = len(want) - received
		if pending == 0 {
			return received, 0
		}
		select {
		case <-w.stored:
			continue
		case <-ctx.Done():
		case <-timeout.C:
		}
		break
	}
	log.Warn().Int("pending", pending).Float64("waited_s", wait.Seconds()).
		Msg("aggregate callbacks still pending; a later run stores them or asks again")
	return received, pending
}
