package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

func (a *App) aggregateDeadline() time.Duration {
	if a.AggregateDeadline > 0 {
		return a.AggregateDeadline
	}
	return 6 * time.Hour
}

func (a *App) aggregateWait() time.Duration {
	if a.AggregateWait > 0 {
		return a.AggregateWait
	}
	return 2 * time.Minute
}

// callbackPath is where the listener serves callbacks: the path of
// THINGSYNC_CALLBACK_URL (a proxy in front may rewrite the host).
func callbackPath(env *Env) string {
	u, err := url.Parse(env.Config.CallbackURL)
	if err != nil || u.Path == "" {
		return "/"
	}
	return u.Path
}

// callbackHandler is the callback listener; it commits through g, so it
// shares a run's open warehouse or opens the file for its own commit.
func (a *App) callbackHandler(env *Env, g *load.Gate) http.Handler {
	return &extract.Receiver{
		Username: env.Config.CallbackUsername,
		Password: env.Config.CallbackPassword.Reveal(),
		Store:    &callbackStore{a: a, g: g, tf: transform.New(), lookback: env.Config.LookbackUsage, log: env.Log},
		Log:      env.Log.With().Str("listener", "callbacks").Logger(),
	}
}

type callbackStore struct {
	a        *App
	g        *load.Gate
	tf       *transform.Transformer
	lookback time.Duration
	log      zerolog.Logger
}

func (s *callbackStore) StoreCallback(ctx context.Context, cb extract.AggregateCallback) error {
	// The request's context ends with a signal (the server's base
	// context): a callback waiting for the file gives up, answered 503, and
	// ThingSpace delivers it again.
	wh, release, err := s.g.Acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	// A commit under way finishes: it takes milliseconds.
	res, err := wh.AcceptCallback(context.WithoutCancel(ctx), cb, s.tf, s.a.now(), s.lookback)
	if errors.Is(err, load.ErrUnknownRequest) {
		return fmt.Errorf("%w: %v", extract.ErrNotPending, err)
	}
	if err != nil {
		return err
	}
	s.log.Info().Str("request_id", cb.RequestID).Bool("notice", res.Notice).Bool("duplicate", res.Duplicate).
		Int64("inserted", res.Rows.Inserted).Int64("updated", res.Rows.Updated).Int("rejected", res.Rejected).
		Msg("aggregate callback stored")
	return nil
}

// listen serves the callback path on THINGSYNC_HTTP_ADDR for a one-shot
// run; stop shuts it down.
func (a *App) listen(ctx context.Context, env *Env, g *load.Gate) (stop func(), err error) {
	ln, err := net.Listen("tcp", env.Config.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("callback listener on %s: %w", env.Config.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(callbackPath(env), a.callbackHandler(env, g))
	srv := extract.NewServer(ctx, mux, extract.ServerLimits{})
	go func() { _ = srv.Serve(ln) }()
	env.Log.Info().Str("addr", ln.Addr().String()).Str("path", callbackPath(env)).Msg("callback listener up")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// ensureCallback registers the listener unless ThingSpace already lists
// it at the configured URL. The list does not show credentials, so a
// changed password is registered only with a changed URL (README).
func ensureCallback(ctx context.Context, env *Env, client *extract.Client) error {
	list, err := client.ListCallbacks(ctx)
	if err != nil {
		return fmt.Errorf("list callback listeners: %w", err)
	}
	for _, c := range list {
		if c.Name == extract.AggregateService && c.URL == env.Config.CallbackURL {
			return nil
		}
	}
	if err := client.RegisterCallback(ctx, extract.AggregateService, env.Config.CallbackURL,
		env.Config.CallbackUsername, env.Config.CallbackPassword.Reveal()); err != nil {
		return fmt.Errorf("register callback listener: %w", err)
	}
	env.Log.Info().Str("service", extract.AggregateService).Str("url", env.Config.CallbackURL).Msg("callback listener registered")
	return nil
}

// aggregateReport is what the aggregate step of a run did.
type aggregateReport struct {
	Requested, Reasked, Received, Pending int
}

// requestAggregates asks for every device's promo aggregate usage from its
// checkpoint on, re-asks requests whose callback is overdue, and records
// each requestId before anything else happens. It returns the requests
// sent.
func (a *App) requestAggregates(ctx context.Context, env *Env, wh *load.Warehouse, client *extract.Client, started time.Time, log zerolog.Logger) ([]string, int, error) {
	now := a.now()
	var sent []string
	record := func(devs []extract.DeviceID, p extract.Window) (string, error) {
		id, err := client.RequestAggregateUsage(ctx, devs, p.From, p.To)
		if err != nil {
			return "", fmt.Errorf("request aggregate usage %s: %w", p, err)
		}
		if err := wh.AddAggregateRequest(context.WithoutCancel(ctx), load.AggregateRequest{ID: id, Start: p.From, End: p.To, Devices: devs, RequestedAt: now}); err != nil {
			return "", err
		}
		sent = append(sent, id)
		return id, nil
	}

	// Overdue requests are asked again; live ones cover their devices.
	live, err := wh.AggregateRequests(ctx, load.RequestPending, load.RequestCompleted)
	if err != nil {
		return nil, 0, err
	}
	floor := schema.Day(now).AddDate(0, -6, 0)
	covered := map[string]bool{} // device|period start
	reasked := 0
	for _, r := range live {
		if now.Sub(r.RequestedAt) < a.aggregateDeadline() {
			for _, d := range r.Devices {
				covered[d.String()+"|"+r.Start.Format(time.RFC3339)] = true
			}
			continue
		}
		if r.Start.Before(floor) {
			// Too old to ask again: the API refuses it.
			if err := wh.Supersede(ctx, r.ID, ""); err != nil {
				return sent, reasked, err
			}
			continue
		}
		id, err := record(r.Devices, extract.Window{From: r.Start, To: r.End})
		if err != nil {
			return sent, reasked, err
		}
		if err := wh.Supersede(ctx, r.ID, id); err != nil {
			return sent, reasked, err
		}
		reasked++
		log.Warn().Str("request_id", r.ID).Str("new_request_id", id).Float64("age_s", now.Sub(r.RequestedAt).Seconds()).
			Msg("aggregate request got no callback before its deadline; asked again")
		for _, d := range r.Devices {
			covered[d.String()+"|"+r.Start.Format(time.RFC3339)] = true
		}
	}

	// The devices of this run's device list that have an ICCID, grouped by
	// where their aggregate checkpoint stands.
	devs, err := wh.DevicesWithICCID(ctx, started)
	if err != nil {
		return sent, reasked, err
	}
	cps, err := wh.Checkpoints(ctx, schema.StreamAggregate)
	if err != nil {
		return sent, reasked, err
	}
	groups := map[time.Time][]extract.DeviceID{}
	for _, d := range devs {
		from := env.Config.Start
		if cp, ok := cps[d.Identity]; ok && !cp.SettledUntil.IsZero() {
			from = cp.SettledUntil
		}
		if from.IsZero() || from.Before(floor) {
			from = floor
		}
		groups[from] = append(groups[from], extract.DeviceID{Kind: "iccid", ID: d.ICCID})
	}
	froms := make([]time.Time, 0, len(groups))
	for f := range groups {
		froms = append(froms, f)
	}
	sort.Slice(froms, func(i, j int) bool { return froms[i].Before(froms[j]) })
	for _, from := range froms {
		for _, p := range extract.AggregatePeriods(now, from) {
			var todo []extract.DeviceID
			for _, d := range groups[from] {
				if !covered[d.String()+"|"+p.From.Format(time.RFC3339)] {
					todo = append(todo, d)
				}
			}
			for len(todo) > 0 {
				n := min(len(todo), extract.MaxAggregateDevices)
				if _, err := record(todo[:n], p); err != nil {
					return sent, reasked, err
				}
				todo = todo[n:]
			}
		}
	}
	return sent, reasked, nil
}

// awaitCallbacks waits, bounded, until the requests are received.
func (a *App) awaitCallbacks(ctx context.Context, wh *load.Warehouse, ids []string, log zerolog.Logger) (received, pending int) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.Now().Add(a.aggregateWait())
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
		if pending == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if pending > 0 {
		log.Warn().Int("pending", pending).Float64("waited_s", a.aggregateWait().Seconds()).
			Msg("aggregate callbacks still pending; a later run stores them or asks again")
	}
	return received, pending
}

// aggregate is a run's aggregate step: make sure the listener is
// registered, send the requests, and (for a one-shot run) wait for their
// callbacks.
func (a *App) aggregate(ctx context.Context, env *Env, wh *load.Warehouse, client *extract.Client, started time.Time, wait bool, log zerolog.Logger) (aggregateReport, error) {
	var rep aggregateReport
	log = log.With().Str(logging.Stream, schema.StreamAggregate).Logger()
	if err := ensureCallback(ctx, env, client); err != nil {
		return rep, err
	}
	ids, reasked, err := a.requestAggregates(ctx, env, wh, client, started, log)
	rep.Requested, rep.Reasked = len(ids), reasked
	if err != nil {
		return rep, err
	}
	if wait && len(ids) > 0 {
		rep.Received, rep.Pending = a.awaitCallbacks(ctx, wh, ids, log)
	} else {
		rep.Pending = len(ids)
	}
	return rep, nil
}
