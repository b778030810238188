package aggregate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/transform"
)

// Callbacks are the callback listener's settings.
type Callbacks struct {
	// URL is registered with ThingSpace (THINGSYNC_CALLBACK_URL); its path
	// is the one served (a proxy in front may rewrite the host).
	URL string
	// Addr is where a one-shot run listens (THINGSYNC_HTTP_ADDR).
	Addr string
	// Username and Password are what every delivery must carry.
	Username, Password string
	// Lookback: a period that ended less than this before now is still
	// provisional, so it does not move the devices' settled checkpoint.
	Lookback time.Duration
}

// Path is the path the listener serves callbacks on.
func (cb Callbacks) Path() string {
	u, err := url.Parse(cb.URL)
	if err != nil || u.Path == "" {
		return "/"
	}
	return u.Path
}

// Handler is the callback listener. It commits each delivery through g,
// so it shares a run's open warehouse or opens the file for its own
// commit, and answers 2xx only once the delivery is committed.
func Handler(cb Callbacks, g *load.Gate, log zerolog.Logger, now func() time.Time) http.Handler {
	return handler(cb, &store{g: g, tf: transform.New(), lookback: cb.Lookback, now: now, log: log})
}

func handler(cb Callbacks, s *store) http.Handler {
	return &extract.Receiver{
		Username: cb.Username,
		Password: cb.Password,
		Store:    s,
		Log:      s.log.With().Str("listener", "callbacks").Logger(),
	}
}

// store commits callback deliveries.
type store struct {
	g        *load.Gate
	tf       *transform.Transformer
	lookback time.Duration
	now      func() time.Time
	log      zerolog.Logger
	// stored, when set, is signalled (without blocking) after each commit
	// that changed something: a one-shot run waits on it.
	stored chan<- struct{}
}

func (s *store) StoreCallback(ctx context.Context, cb extract.AggregateCallback) error {
	// The request's context ends with a signal (the server's base
	// context): a callback waiting for the file gives up, answered 503, and
	// ThingSpace delivers it again.
	wh, release, err := s.g.Acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	// A commit under way finishes: it takes milliseconds.
	res, err := wh.AcceptCallback(context.WithoutCancel(ctx), cb, s.tf, s.now(), s.lookback)
	if errors.Is(err, load.ErrUnknownRequest) {
		return fmt.Errorf("%w: %v", extract.ErrNotPending, err)
	}
	if err != nil {
		return err
	}
	s.log.Info().Str("request_id", cb.RequestID).Bool("notice", res.Notice).Bool("duplicate", res.Duplicate).
		Int64("inserted", res.Rows.Inserted).Int64("updated", res.Rows.Updated).Int("rejected", res.Rejected).
		Msg("aggregate callback stored")
	if s.stored != nil && !res.Duplicate {
		select {
		case s.stored <- struct{}{}:
		default: // one signal pending is enough: the waiter reads every state
		}
	}
	return nil
}

// Listen serves h on the callback path at cb.Addr until stop is called
// (a one-shot run's listener; the daemon serves h on its own server).
func Listen(ctx context.Context, cb Callbacks, h http.Handler, log zerolog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", cb.Addr)
	if err != nil {
		return nil, fmt.Errorf("callback listener on %s (THINGSYNC_HTTP_ADDR): %w", cb.Addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(cb.Path(), h)
	srv := extract.NewServer(ctx, mux, extract.ServerLimits{})
	go func() { _ = srv.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Str("path", cb.Path()).Msg("callback listener up")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// Register makes sure ThingSpace delivers callbacks to cb.URL: it
// registers the listener unless ThingSpace already lists it there. The
// list does not show credentials, so a changed password is registered
// only with a changed URL.
func Register(ctx context.Context, client *extract.Client, cb Callbacks, log zerolog.Logger) error {
	list, err := client.ListCallbacks(ctx)
	if err != nil {
		return fmt.Errorf("list callback listeners: %w", err)
	}
	for _, c := range list {
		if c.Name == extract.AggregateService && c.URL == cb.URL {
			return nil
		}
	}
	if err := client.RegisterCallback(ctx, extract.AggregateService, cb.URL, cb.Username, cb.Password); err != nil {
		return fmt.Errorf("register callback listener: %w", err)
	}
	log.Info().Str("service", extract.AggregateService).Str("url", cb.URL).Msg("callback listener registered")
	return nil
}

// RegisterAtStartup is Register for a daemon that starts: ThingSpace
// should know the listener before the first request. A rejected login is
// the error (not retried: five failures lock the account); any other
// failure is logged, and the next run's aggregate step tries again. The
// client is logged out.
func RegisterAtStartup(ctx context.Context, client *extract.Client, cb Callbacks, log zerolog.Logger) error {
	err := Register(ctx, client, cb, log)
	_ = client.Logout(context.WithoutCancel(ctx))
	switch {
	case errors.Is(err, extract.ErrLoginRejected):
		return err
	case err != nil:
		log.Warn().Err(err).Msg("could not make sure the callback listener is registered; the next run tries again")
	}
	return nil
}
