package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
)

// Serve serves mux on ln and starts runs on sched until ctx ends (or the
// listener fails), then stops taking work, lets the run in flight commit,
// and shuts the listener down. spec is the schedule as configured, for the
// log; runNow starts a run at once as well. The error is the listener's
// failure; a signal is a clean stop.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener, mux http.Handler, sched cron.Schedule, spec string, runNow bool) error {
	// runs ends when ctx does, or when the listener fails.
	ctx, cancelRuns := context.WithCancel(ctx)
	defer cancelRuns()
	// The schedule is set before the listener starts: /healthz reads it.
	c := cron.New(cron.WithLogger(cronLogger{d.log}))
	id := c.Schedule(sched, cron.FuncJob(func() { d.Trigger(ctx, "schedule") }))
	d.mu.Lock()
	d.next = func() time.Time { return c.Entry(id).Next }
	d.mu.Unlock()

	// A signal ends every request's context: a callback waiting for the
	// warehouse file gives up instead of holding the exit.
	srv := extract.NewServer(ctx, mux, extract.ServerLimits{})
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	// Tests and operators learn the bound address (":0" picks a port) here.
	d.log.Info().Str("addr", ln.Addr().String()).Msg("listening")

	c.Start()
	d.log.Info().Str("schedule", spec).Time("next_run", c.Entry(id).Next).Msg("scheduled")
	if runNow {
		go d.Trigger(ctx, "--now")
	}

	var failure error
	select {
	case <-ctx.Done():
		d.log.Info().Msg("signal: stopping (a second signal exits at once)")
	case err := <-serveErr:
		failure = fmt.Errorf("serve %s: %w", ln.Addr(), err)
		d.log.Error().Err(err).Msg("the listener failed; stopping")
		cancelRuns()
	}

	// No new work: the schedule stops and Trigger refuses from here on.
	c.Stop()
	stopped := make(chan struct{})
	go func() { d.Stop(); close(stopped) }()
	// Callback commits in flight finish; new connections are refused
	// (ThingSpace delivers again later).
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		d.log.Warn().Err(err).Msg("shut down the listener")
	}
	<-stopped
	d.log.Info().Msg("stopped")
	return failure
}

// cronLogger sends the scheduler's messages to the program's log.
type cronLogger struct{ log zerolog.Logger }

func (l cronLogger) Info(msg string, kv ...any) {
	l.log.Debug().Fields(kv).Msg("cron: " + msg)
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error().Err(err).Fields(kv).Msg("cron: " + msg)
}
