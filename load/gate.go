package load

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Gate holds the warehouse file only while something writes: a run keeps
// it open from start to end, a callback commit borrows the run's handle or
// opens the file for its own transaction. DuckDB lets one process hold a
// file, and an analyst's read-only session blocks every writer, so the
// daemon must not keep it open while idle: analysts are never locked out.
type Gate struct {
	path string
	log  zerolog.Logger
	// Retry is how long to wait between attempts while another process
	// holds the file; Patience bounds the wait (0: until ctx ends).
	Retry, Patience time.Duration

	// turn is the gate's lock, a channel so that waiting for it ends with
	// ctx: whoever opens the file keeps it while waiting for another
	// process to let go, and a signal must reach the others waiting behind.
	turn chan struct{}
	wh   *Warehouse
	refs int
}

// NewGate returns a gate over the warehouse file at path that waits for
// the file as long as ctx allows.
func NewGate(path string, log zerolog.Logger) *Gate {
	return &Gate{path: path, log: log, Retry: 2 * time.Second, turn: make(chan struct{}, 1)}
}

// Acquire opens the warehouse (or shares the open one) and returns a
// release function. Every wait in it (for the gate, for the file) ends
// when ctx does.
func (g *Gate) Acquire(ctx context.Context) (*Warehouse, func(), error) {
	select {
	case g.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("waiting for %s: %w", g.path, ctx.Err())
	}
	defer func() { <-g.turn }()
	if g.wh == nil {
		wh, err := g.open(ctx)
		if err != nil {
			return nil, nil, err
		}
		g.wh = wh
	}
	g.refs++
	wh := g.wh
	var once sync.Once
	return wh, func() { once.Do(g.release) }, nil
}

// release never waits long: while a holder has the file open, nobody
// keeps the gate's lock beyond counting a reference.
func (g *Gate) release() {
	g.turn <- struct{}{}
	defer func() { <-g.turn }()
	g.refs--
	if g.refs == 0 && g.wh != nil {
		if err := g.wh.Close(); err != nil {
			g.log.Warn().Err(err).Msg("close warehouse")
		}
		g.wh = nil
	}
}

// open waits, with a log line per attempt, while another process holds
// the file.
func (g *Gate) open(ctx context.Context) (*Warehouse, error) {
	start := time.Now()
	for {
		wh, err := Open(ctx, g.path, g.log)
		if err == nil {
			return wh, nil
		}
		if !errors.Is(err, ErrLocked) {
			return nil, err
		}
		if g.Patience > 0 && time.Since(start) > g.Patience {
			return nil, fmt.Errorf("waited %s: %w", time.Since(start).Round(time.Second), err)
		}
		g.log.Warn().Str("db", g.path).Float64("retry_in_s", g.Retry.Seconds()).
			Msg("the warehouse file is held by another process (an open read-only session blocks writers); waiting")
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", g.path, ctx.Err())
		case <-time.After(g.Retry):
		}
	}
}

// WhileIdle runs fn while the gate holds no warehouse, keeping any run or
// callback from opening it until fn returns (they wait for the gate);
// held says the gate held it, or was still busy opening or closing it when
// ctx ended, and fn did not run. A reader of this process opens the file
// read-only in fn: DuckDB's lock does not keep two handles of one process
// apart.
func (g *Gate) WhileIdle(ctx context.Context, fn func() error) (held bool, err error) {
	select {
	case g.turn <- struct{}{}:
	case <-ctx.Done():
		return true, nil
	}
	defer func() { <-g.turn }()
	if g.wh != nil {
		return true, nil
	}
	return false, fn()
}
