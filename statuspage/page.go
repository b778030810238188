// Package statuspage decides what the status page shows and how a request
// may read it: one server-rendered page (html/template, inline SVG, no
// script, nothing fetched from elsewhere) over the published snapshot when
// there is one, else the warehouse opened read-only for the request, with
// drill-downs per day of the coverage ledger and per device. Every request
// is bounded: at most two render at once, each within a timeout, and
// every list within a fixed number of rows. Text from the warehouse
// (device IDs, error messages) is escaped by the template and has the
// configured secrets blanked out.
package statuspage

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/internal/clip"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/status"
)

// Paths are the paths the page serves; the callbacks need another.
var Paths = []string{"/", "/day", "/device"}

// RequestTimeout bounds the reading and rendering of one request.
const RequestTimeout = 10 * time.Second

// concurrent is how many requests read the warehouse at once; the others
// wait for their turn (or their timeout).
const concurrent = 2

// gateWait bounds how long a request waits for the daemon's gate.
const gateWait = 2 * time.Second

// ErrHeld is a source's answer while a run holds the warehouse and no
// snapshot has been published.
var ErrHeld = errors.New("a run holds the warehouse and no snapshot has been published (set THINGSYNC_SNAPSHOT to see the page during runs)")

// From says which file a page was read from.
type From struct {
	Path     string
	Snapshot bool
	ModTime  time.Time
}

// Source opens the file a request reads, read-only, and runs read on it.
type Source func(ctx context.Context, read func(db *sql.DB, from From) error) error

// FileSource reads the snapshot when it exists (kept open while it is
// the published one), else the warehouse, opened for the request; a
// warehouse a run holds is ErrHeld.
func FileSource(warehouse, snapshot string) Source {
	snaps := &snapshots{path: snapshot}
	return func(ctx context.Context, read func(*sql.DB, From) error) error {
		if ok, err := snaps.read(ctx, read); ok {
			return err
		}
		return readFile(ctx, warehouse, read)
	}
}

// GateSource is FileSource for the daemon, whose gate opens the warehouse
// for runs and callbacks: the warehouse is read only while the gate holds
// nothing, and runs wait for the read (DuckDB's lock does not keep two
// handles of one process apart).
func GateSource(g *load.Gate, warehouse, snapshot string) Source {
	snaps := &snapshots{path: snapshot}
	return func(ctx context.Context, read func(*sql.DB, From) error) error {
		if ok, err := snaps.read(ctx, read); ok {
			return err
		}
		// The gate is busy only for moments, unless a run is waiting
		// for another process to let go of the file: then it is held.
		wait, cancel := context.WithTimeout(ctx, gateWait)
		defer cancel()
		held, err := g.WhileIdle(wait, func() error { return readFile(ctx, warehouse, read) })
		if held {
			return ErrHeld
		}
		return err
	}
}

// readFile opens the warehouse for one read: kept open, it would lock
// out the runs.
func readFile(ctx context.Context, path string, read func(*sql.DB, From) error) error {
	db, err := openLimited(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	return read(db, From{Path: path})
}

// Options are what a Page reads and how it judges it.
type Options struct {
	Source Source
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Lookback is each stream's settlement period, for the devices behind.
	Lookback map[string]time.Duration
	// Redact blanks secrets out of stored text (nil: none).
	Redact func(string) string
}

// ConfigOptions are the options of cfg's page over src: the configured
// secrets are blanked out of what it shows.
func ConfigOptions(cfg *config.Config, src Source, now func() time.Time) Options {
	return Options{Source: src, Now: now, Redact: status.Redactor(cfg),
		Lookback: map[string]time.Duration{"usage": cfg.LookbackUsage, "connections": cfg.LookbackConnections}}
}

// Page serves the status page.
type Page struct {
	o    Options
	turn chan struct{}
}

// New returns the page over o.
func New(o Options) *Page {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Redact == nil {
		o.Redact = func(s string) string { return s }
	}
	return &Page{o: o, turn: make(chan struct{}, concurrent)}
}

// Routes mounts the page at / and its drill-downs.
func (p *Page) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", p.serveMain)
	mux.HandleFunc("GET /day", p.serveDay)
	mux.HandleFunc("GET /device", p.serveDevice)
}

// Handler is a mux with the page's routes only.
func (p *Page) Handler() http.Handler {
	mux := http.NewServeMux()
	p.Routes(mux)
	return mux
}

func (p *Page) now() time.Time { return p.o.Now().UTC() }

// serve renders tmpl with what fill reads, within the request's bounds.
func (p *Page) serve(w http.ResponseWriter, r *http.Request, tmpl string, fill func(ctx context.Context, db *sql.DB, v *view) error) {
	ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
	defer cancel()
	select {
	case p.turn <- struct{}{}:
		defer func() { <-p.turn }()
	case <-ctx.Done():
		http.Error(w, "the status page is busy; try again", http.StatusServiceUnavailable)
		return
	}
	v := &view{At: p.now()}
	err := p.o.Source(ctx, func(db *sql.DB, from From) error {
		v.From = from
		return fill(ctx, db, v)
	})
	var buf bytes.Buffer
	status := http.StatusOK
	if err != nil {
		status = http.StatusServiceUnavailable
		if !errors.Is(err, ErrHeld) {
			status = http.StatusInternalServerError
		}
		v = &view{At: p.now(), Problem: p.o.Redact(err.Error())}
		tmpl = "problem"
	}
	if terr := templates.ExecuteTemplate(&buf, tmpl, v); terr != nil {
		http.Error(w, "render the status page: "+terr.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// No script runs and nothing loads from elsewhere: the page is its
	// own styles and inline SVG.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Vary", "Accept-Encoding")
	body := buf.Bytes()
	// The heatmap repeats itself a column per day: compressed, a year's
	// page is a tenth of its size.
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		_, _ = zw.Write(body)
		if zw.Close() == nil {
			h.Set("Content-Encoding", "gzip")
			body = z.Bytes()
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (p *Page) serveMain(w http.ResponseWriter, r *http.Request) {
	days := FleetDays[0]
	if d, err := strconv.Atoi(r.URL.Query().Get("days")); err == nil && slices.Contains(FleetDays, d) {
		days = d
	}
	p.serve(w, r, "main", func(ctx context.Context, db *sql.DB, v *view) error {
		return p.fillMain(ctx, db, v, days)
	})
}

func (p *Page) serveDay(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stream, state := q.Get("stream"), q.Get("state")
	day, err := time.Parse(time.DateOnly, q.Get("day"))
	if err != nil || (stream != "usage" && stream != "connections") || (state != "" && !slices.Contains(coverageStates, state)) {
		http.Error(w, "want /day?stream=usage|connections&day=YYYY-MM-DD[&state=settled|provisional|pending|missing]", http.StatusBadRequest)
		return
	}
	p.serve(w, r, "day", func(ctx context.Context, db *sql.DB, v *view) error {
		dd, err := readDay(ctx, db, stream, day, state)
		v.Day = dd
		return err
	})
}

func (p *Page) serveDevice(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind, id := q.Get("kind"), q.Get("id")
	if kind == "" || id == "" || len(kind) > 64 || len(id) > 256 {
		http.Error(w, "want /device?kind=KIND&id=ID", http.StatusBadRequest)
		return
	}
	p.serve(w, r, "device", func(ctx context.Context, db *sql.DB, v *view) error {
		dv, err := readDevice(ctx, db, kind, id, p.o.Redact)
		v.Device = dv
		return err
	})
}

// fillMain reads every panel of the main page.
func (p *Page) fillMain(ctx context.Context, db *sql.DB, v *view, days int) error {
	st, err := load.ReadStatus(ctx, db, load.StatusOptions{Now: v.At, Lookback: p.o.Lookback, Redact: p.o.Redact, NoWriter: !v.From.Snapshot, Runs: RunsShown})
	if err != nil {
		return err
	}
	v.Status = st
	if v.LastSuccess, err = lastSuccess(ctx, db); err != nil {
		return err
	}
	cov, err := readCoverageDays(ctx, db)
	if err != nil {
		return err
	}
	v.Heat = heatmaps(cov)
	runs := runsOf(st.Runs)
	v.Runs = runRows(runs, v.At, p.o.Redact)
	if len(runs) > 0 {
		last := runs[0]
		rates, err := readRates(ctx, db, last.ID)
		if err != nil {
			return err
		}
		v.Rate = rateChart(last, rates)
	}
	today := v.At.Truncate(24 * time.Hour)
	fleet, err := readFleet(ctx, db, today, days)
	if err != nil {
		return err
	}
	v.Fleet = fleetCharts(fleet, days)
	if v.Top, err = readTop(ctx, db, today, TopShown); err != nil {
		return err
	}
	v.Month = today.Format("January 2006")
	return nil
}

// oneLine makes stored text one line of at most n bytes.
func oneLine(s string, n int) string {
	return clip.Text(strings.Join(strings.Fields(s), " "), n)
}

// DefaultAddr is where `thingsync serve` listens unless told: loopback
// only, for a proxy on the same host to put authentication in front.
const DefaultAddr = "127.0.0.1:8081"

// Serve serves cfg's page (over the snapshot when there is one, else the
// warehouse) on addr until ctx ends.
func Serve(ctx context.Context, addr string, cfg *config.Config, now func() time.Time, log zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (--addr): %w", addr, err)
	}
	p := New(ConfigOptions(cfg, FileSource(cfg.DB, cfg.Snapshot), now))
	srv := extract.NewServer(ctx, p.Handler(), extract.ServerLimits{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	// Operators and tests learn the bound address (":0" picks a port) here.
	log.Info().Str("addr", ln.Addr().String()).Str("db", cfg.DB).Str("snapshot", cfg.Snapshot).Msg("listening")
	select {
	case err := <-done:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down the status page: %w", err)
	}
	return nil
}
