package extract

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/schema"
)

// State is where a device's stream stands before a run.
type State struct {
	SettledUntil time.Time
	// FetchedUntil is the end of the furthest window ever stored for the
	// device (sync or backfill): nothing at or after it is in the warehouse.
	FetchedUntil time.Time
	// Retired devices (deactivated, fetched a last time) are not asked again
	// while they stay deactivated.
	Retired bool
	// IdleSince: since then the walk skips the stream as idle (zero: the
	// last run that reached the device fetched it).
	IdleSince time.Time
	// OpenSince (connections): start of a session whose Start is stored
	// and whose Stop is not, as of FetchedUntil; zero when none.
	OpenSince time.Time
	// RecordsAt: when a fetch of the stream last returned records.
	RecordsAt time.Time
	// CycleEnd (rated): the billing end date of the cycle last fetched.
	CycleEnd time.Time
}

// Batch is what one fetch of one device's stream produced: the records of a
// window, and how far settled_until may move once they are stored.
type Batch struct {
	Stream string
	Device DeviceID
	Window Window
	// FetchedUntil is the device-stream's State.FetchedUntil when the run
	// began: a window starting at or after it holds only records the
	// warehouse has never seen (the loader can insert them unchecked).
	FetchedUntil time.Time
	Usage        []UsageRecord
	Rated        *RatedUsage
	Events       []ConnectionEvent
	// Retire marks the last batch of a deactivated device: store it and do
	// not ask for the device again.
	Retire bool
	// Idle marks a stream skipped as idle (no window, no records): its
	// checkpoint records since when.
	Idle bool
	// RecordsAt, when set, is when the fetch returned records.
	RecordsAt time.Time
	// Sessions says OpenSince is known (an incremental connections fetch):
	// the start of the earliest session left open as of the window's end.
	Sessions  bool
	OpenSince time.Time
	// CycleEnd (rated): the billing end date of the cycle fetched.
	CycleEnd time.Time
}

// Sink receives what the walker fetches. Calls come from many goroutines;
// Batch may block (back-pressure from the writer).
type Sink interface {
	// States gives the checkpoints of a stream for a chunk of listed
	// devices (absent: none yet); it is asked while earlier chunks are
	// fetched and stored, and must not wait for their open transaction.
	States(ctx context.Context, stream string, devices []DeviceID) (map[DeviceID]State, error)
	Devices(ctx context.Context, page []Device, seenAt time.Time) error
	Batch(ctx context.Context, b Batch) error
	Failed(ctx context.Context, stream string, dev DeviceID, err error) error
	// Visited says the walk reached a device: its streams were fetched
	// (or failed, or were found to have nothing due).
	Visited(ctx context.Context, dev DeviceID) error
}

// Walk is one pass over the account's devices.
type Walk struct {
	Client      *Client
	Sink        Sink
	Log         zerolog.Logger
	Concurrency int
	Streams     []string        // schema.StreamUsage, schema.StreamConnections
	Plans       map[string]Plan // by stream
	// Backfill, when set, re-fetches [From, To) instead of walking from
	// the checkpoints.
	Backfill *Range
	// Ranges, with Backfill, re-fetches only these ranges of each stream
	// and device (backfill --gaps): a device-stream without one is skipped.
	Ranges map[string]map[DeviceID][]Range
	// Only restricts the walk to these devices (any of their identifiers).
	Only []DeviceID
	// Progress, if set, is called after each device completes.
	Progress func(Progress)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Idle decides which streams of each device are asked (the zero
	// rule asks every device for every stream); not applied to a backfill.
	Idle IdleRule
	// Dry, if set, makes the walk fetch nothing but the device list: each
	// device-stream's decision goes to Dry instead (sync --plan).
	Dry func(DryItem)
	// Budget, if set, is when the run stops handing out devices: the
	// devices in flight finish, the run ends with Result.Budget.
	Budget time.Time
	// Resume, if set, lists the devices after this device number first
	// (where an earlier run stopped), then from the start of the list up
	// to it: every device is visited in turn across runs that each reach
	// only part of the fleet.
	Resume *int64
	// StateChunk is how many devices' checkpoints are read at once
	// (default 10,000): each read scans the checkpoint table, so smaller
	// reads make a large account's run slower, while 10,000 devices and
	// their checkpoints are a few megabytes (docs/design.md).
	StateChunk int
}

func (w *Walk) now() time.Time {
	if w.Now != nil {
		return w.Now().UTC()
	}
	return time.Now().UTC()
}

// Range is a half-open range of instants.
type Range struct{ From, To time.Time }

// Progress is a snapshot of a walk's advance.
type Progress struct {
	// DevicesTotal counts the devices listed so far; Listing says the
	// device list is still being read, so more may come.
	DevicesTotal, DevicesDone, DevicesFailed int
	Listing                                  bool
	Records                                  int64
	// RateLimit is the client's request rate ceiling, per second (set by
	// the run that shows the progress, not by the walk).
	RateLimit float64
}

// Result is what a walk did.
type Result struct {
	Devices int // listed
	// DevicesDone counts the devices whose every stream was fetched (or
	// failed): fewer than Devices when the run was cut short.
	DevicesDone   int
	DevicesFailed int
	Records       int64
	// Failures holds one error per failed device and stream, by device.
	Failures map[DeviceID]error
	// Unmatched are the devices of Walk.Only that no device of the
	// account's list matched (known once the whole list is read).
	Unmatched []DeviceID
	// Budget: the run stopped handing out devices at Walk.Budget.
	Budget bool
	// ListEnd: every device of the list was handed out (from Walk.Resume
	// round to it, when set).
	ListEnd bool
	// ReachedNumber is the number of the last device handed out, in list
	// order (-1: none); a run cut short resumes after it.
	ReachedNumber int64
}

type target struct {
	id       DeviceID
	number   int64  // the device's number in the list (Device.Number)
	mdn      string // rated usage is asked by MDN; empty: the device has none
	iccid    string
	deactive bool
	listing  Listing
}

// DryItem is what a dry walk would ask for one stream of one device.
type DryItem struct {
	Stream   string
	Device   DeviceID
	Decision Decision
	// Requests is how many requests the stream would take if due (its
	// windows; more when a window holds more than a page).
	Requests int
}

// errStop marks errors after which the run cannot go on (the sink failed).
var errStop = errors.New("walk stopped")

// errRoundDone ends the second reading of the list of a walk that resumed
// part-way: it has come round to where the walk began.
var errRoundDone = errors.New("the list has come round")

// ListIncompleteError is a device list that broke off after Listed devices
// (its page requests exhausted their retries): those devices were fetched
// and stored, the rest of the account was not reached.
type ListIncompleteError struct {
	Listed int
	Err    error
}

func (e *ListIncompleteError) Error() string {
	return fmt.Sprintf("device list incomplete after %d devices: %v", e.Listed, e.Err)
}

func (e *ListIncompleteError) Unwrap() error { return e.Err }

// Run lists the devices page by page and fetches them, Concurrency at a
// time, a chunk of StateChunk devices after another while the next pages
// are listed: what a run holds is a chunk of devices and their
// checkpoints, not the account's list (which, with one stream's
// checkpoints, grows with the fleet without bound). A device that fails
// is recorded through the sink and skipped; the others complete. Run
// returns an error only when the run as a whole cannot go on (login
// rejected, the device list or the sink failed, ctx cancelled); the devices
// already handed out complete first. A device list that fails after some
// pages is a *ListIncompleteError: the devices of those pages are loaded.
func (w *Walk) Run(ctx context.Context) (Result, error) {
	res := Result{Failures: map[DeviceID]error{}, ReachedNumber: -1}
	var (
		mu      sync.Mutex
		listed  atomic.Int64
		done    atomic.Int64
		records atomic.Int64
		all     atomic.Bool // the device list is complete
	)
	g, gctx := errgroup.WithContext(ctx)
	// A device is handed out once a slot is free, and the budget is
	// checked then: a device waiting for a slot may not start after it.
	slots := make(chan struct{}, max(1, w.Concurrency))
	// only holds the devices w.Only names, each true once a listed device
	// matched it.
	only := make(map[DeviceID]bool, len(w.Only))
	for _, id := range w.Only {
		only[DeviceID{Kind: strings.ToLower(id.Kind), ID: id.ID}] = false
	}
	// A lister reads device pages and their checkpoints one chunk ahead
	// of the workers, so that they do not wait while the next chunk is
	// listed.
	type chunk struct {
		devices []target
		states  map[string]map[DeviceID]State
	}
	size := w.StateChunk
	if size <= 0 {
		size = 10_000
	}
	chunks := make(chan chunk, 1)
	var listErr error
	lister := make(chan struct{})
	// The list stops when the budget does: the lister reads one chunk
	// ahead of the devices handed out, no further.
	lctx, stopListing := context.WithCancel(gctx)
	defer stopListing()
	go func() {
		defer close(lister)
		defer close(chunks)
		seen := make(map[[16]byte]struct{})
		var (
			pending []target
			listing []Device // the pages of pending, for the sink
		)
		send := func() error {
			// The chunk's pages go to the sink in one piece: the devices
			// upsert joins the whole devices table, so page by page, mixed
			// with other batches, it would run that join several times as
			// often (docs/design.md).
			if err := w.Sink.Devices(lctx, listing, w.now()); err != nil {
				if lctx.Err() != nil {
					return lctx.Err()
				}
				return fmt.Errorf("%w: store device page: %v", errStop, err)
			}
			listing = nil
			states, err := w.pageStates(lctx, pending)
			if err != nil {
				if lctx.Err() != nil {
					return lctx.Err()
				}
				return err
			}
			// Counted before the workers can have them, so that done
			// never passes listed.
			listed.Add(int64(len(pending)))
			select {
			case chunks <- chunk{pending, states}:
			case <-lctx.Done():
				listed.Add(-int64(len(pending)))
				return lctx.Err()
			}
			pending = nil
			return nil
		}
		visit := func(page []Device, more bool) error {
			targets, fresh := w.pageTargets(page, only, seen)
			if more && len(page) > 0 && fresh == 0 {
				// A list that says there is more but lists only devices it
				// already listed would never end: the run goes on with
				// what it has, as with a list that breaks off.
				return fmt.Errorf("%w: none of the page's %d devices is new", ErrListRepeats, len(page))
			}
			listing = append(listing, page...)
			pending = append(pending, targets...)
			if len(pending) < size && len(listing) < size {
				return nil
			}
			return send()
		}
		from := int64(-1)
		if w.Resume != nil {
			from = *w.Resume
		}
		listErr = w.Client.DevicesAfter(lctx, from, visit)
		if listErr == nil && from >= 0 {
			// Round to where this run began: the devices numbered up to
			// from, then the list has been read once.
			listErr = w.Client.DevicesAfter(lctx, -1, func(page []Device, more bool) error {
				kept := slices.DeleteFunc(slices.Clone(page), func(d Device) bool { return d.Number() > from })
				if len(kept) < len(page) {
					if err := visit(kept, false); err != nil {
						return err
					}
					return errRoundDone
				}
				return visit(page, more)
			})
			if errors.Is(listErr, errRoundDone) {
				listErr = nil
			}
		}
		// The devices of the pages listed before a failure are fetched
		// all the same: the run loads what it can and says the list broke.
		if len(listing) > 0 && lctx.Err() == nil && !errors.Is(listErr, errStop) {
			if err := send(); err != nil && (listErr == nil || errors.Is(err, errStop)) {
				listErr = err
			}
		}
		all.Store(true)
	}()
dispatch:
	for c := range chunks {
		for _, dev := range c.devices {
			select {
			case slots <- struct{}{}:
			case <-gctx.Done():
				break dispatch
			}
			if gctx.Err() != nil {
				break dispatch
			}
			if !w.Budget.IsZero() && !w.now().Before(w.Budget) {
				res.Budget = true
				stopListing()
				break dispatch
			}
			res.ReachedNumber = dev.number
			g.Go(func() error {
				defer func() { <-slots }()
				n, failed, err := w.deviceSafely(gctx, dev, c.states)
				records.Add(n)
				if err == nil && w.Dry == nil {
					if verr := w.Sink.Visited(gctx, dev.id); verr != nil {
						err = fmt.Errorf("%w: record the visit of %s: %v", errStop, dev.id, verr)
					}
				}
				if err != nil {
					return err
				}
				mu.Lock()
				if failed != nil {
					res.Failures[dev.id] = failed
				}
				nFailed := len(res.Failures)
				mu.Unlock()
				d := done.Add(1)
				if w.Progress != nil {
					w.Progress(Progress{DevicesTotal: int(listed.Load()), Listing: !all.Load(), DevicesDone: int(d), DevicesFailed: nFailed, Records: records.Load()})
				}
				return nil
			})
		}
	}
	// The lister may be waiting to hand over its next chunk.
	for range chunks {
	}
	<-lister
	err := g.Wait()
	if res.Budget && errors.Is(listErr, context.Canceled) {
		listErr = nil
	}
	res.Devices = int(listed.Load())
	res.DevicesDone = int(done.Load())
	res.Records = records.Load()
	res.DevicesFailed = len(res.Failures)
	res.ListEnd = err == nil && listErr == nil && ctx.Err() == nil && !res.Budget
	if res.ListEnd {
		for _, id := range w.Only {
			if id = (DeviceID{Kind: strings.ToLower(id.Kind), ID: id.ID}); !only[id] && !slices.Contains(res.Unmatched, id) {
				res.Unmatched = append(res.Unmatched, id)
			}
		}
	}
	switch {
	case err != nil:
	case errors.Is(listErr, errStop):
		err = listErr
	case listErr != nil && ctx.Err() == nil && res.Devices > 0 && !errors.Is(listErr, ErrLoginRejected):
		err = &ListIncompleteError{Listed: res.Devices, Err: listErr}
	case listErr != nil && ctx.Err() == nil:
		err = fmt.Errorf("list devices: %w", listErr)
	default:
		err = ctx.Err()
	}
	return res, err
}

// pageTargets picks the devices of a page to fetch: each identity once a
// run (seen holds a 128-bit digest of every identity listed, 16 bytes a
// device instead of the list), those w.Only names if it names any. fresh
// counts the page's identities not listed before.
func (w *Walk) pageTargets(page []Device, only map[DeviceID]bool, seen map[[16]byte]struct{}) (out []target, fresh int) {
	for _, d := range page {
		id, ok := Identity(d.DeviceIDs)
		if !ok {
			continue
		}
		h := sha256.Sum256([]byte(id.Kind + "\x00" + id.ID))
		key := [16]byte(h[:16])
		if _, dup := seen[key]; dup {
			continue
		}
		seen[key] = struct{}{}
		fresh++
		if len(only) > 0 && !matchesAny(d, only) {
			continue
		}
		l := ListingOf(d)
		out = append(out, target{id: id, number: d.Number(), mdn: idOf(d, "mdn"), iccid: idOf(d, "iccid"), deactive: l.Deactive, listing: l})
	}
	return out, fresh
}

// pageStates reads where the devices of a chunk stand, by stream.
func (w *Walk) pageStates(ctx context.Context, devices []target) (map[string]map[DeviceID]State, error) {
	out := make(map[string]map[DeviceID]State, len(w.Streams))
	if len(devices) == 0 {
		return out, nil
	}
	ids := make([]DeviceID, len(devices))
	for i, d := range devices {
		ids[i] = d.id
	}
	for _, s := range w.Streams {
		st, err := w.Sink.States(ctx, s, ids)
		if err != nil {
			return nil, fmt.Errorf("%w: read %s checkpoints: %v", errStop, s, err)
		}
		out[s] = st
	}
	return out, nil
}

func idOf(d Device, kind string) string {
	for _, id := range d.DeviceIDs {
		if strings.EqualFold(id.Kind, kind) {
			return id.ID
		}
	}
	return ""
}

// matchesAny tells whether one of the device's identifiers is in only,
// and marks those that are as matched.
func matchesAny(d Device, only map[DeviceID]bool) bool {
	hit := false
	for _, id := range d.DeviceIDs {
		if _, ok := only[id]; ok {
			only[id] = true
			hit = true
		}
	}
	return hit
}

func deactivated(d Device) bool {
	for _, c := range d.CarrierInformations {
		if strings.EqualFold(strings.TrimSpace(c.State), "deactive") ||
			strings.EqualFold(strings.TrimSpace(c.State), "deactivated") {
			return true
		}
	}
	return false
}

// deviceSafely is device with a panic (a defect, or a record shape nothing
// foresaw) turned into a failure of that device, recorded like any other:
// the run and, in the daemon, the process go on.
func (w *Walk) deviceSafely(ctx context.Context, dev target, states map[string]map[DeviceID]State) (records int64, failed error, err error) {
	defer func() {
		if p := recover(); p != nil {
			failed = fmt.Errorf("panic while fetching %s: %v", dev.id, p)
			w.Log.Error().Str(logging.Device, dev.id.String()).Str("stack", string(debug.Stack())).Msg("panic while fetching a device; recorded as its failure")
			for _, stream := range w.Streams {
				if serr := w.Sink.Failed(ctx, stream, dev.id, failed); serr != nil {
					err = serr
				}
			}
		}
	}()
	return w.device(ctx, dev, states)
}

// device fetches every stream of one device that the idle rule says is
// due (usage before rated: rated asks whether usage found records). failed
// is the first stream error of the device (already recorded through the
// sink); err is a reason to stop the whole run.
func (w *Walk) device(ctx context.Context, dev target, states map[string]map[DeviceID]State) (records int64, failed error, err error) {
	log := w.Log.With().Str(logging.Device, dev.id.String()).Logger()
	found := FoundNone
	for _, stream := range walkOrder(w.Streams) {
		st := states[stream][dev.id]
		if stream == schema.StreamRated && dev.mdn == "" {
			continue // the API knows rated usage by MDN only
		}
		var windows []Window
		if stream != schema.StreamRated {
			var skip bool
			if windows, skip = w.windows(stream, dev, st); skip {
				continue
			}
		}
		if w.Backfill == nil {
			f := Facts{Device: dev.id, Listing: dev.listing, Usage: states[schema.StreamUsage][dev.id],
				Connections: states[schema.StreamConnections][dev.id], Rated: states[schema.StreamRated][dev.id], UsageFound: found}
			if w.Dry != nil && found == FoundNone && stream == schema.StreamRated && slices.Contains(w.Streams, schema.StreamUsage) {
				f.UsageFound = FoundUnknown
				if u := w.Idle.Decide(schema.StreamUsage, f, w.now()); !u.Due {
					f.UsageFound = FoundNone
				}
			}
			d := w.Idle.Decide(stream, f, w.now())
			if w.Dry != nil {
				n := len(windows)
				if stream == schema.StreamRated {
					n = 1
				}
				w.Dry(DryItem{Stream: stream, Device: dev.id, Decision: d, Requests: n})
				continue
			}
			if !d.Due {
				if d.Idle && st.IdleSince.IsZero() {
					if err := w.Sink.Batch(ctx, Batch{Stream: stream, Device: dev.id, Idle: true}); err != nil {
						return records, nil, fmt.Errorf("%w: mark %s of %s idle: %v", errStop, stream, dev.id, err)
					}
				}
				continue
			}
		}
		var (
			n    int64
			ferr error
		)
		if stream == schema.StreamRated {
			n, ferr = w.rated(ctx, dev)
		} else {
			n, ferr = w.stream(ctx, stream, dev, windows, st, log)
		}
		records += n
		if stream == schema.StreamUsage && ferr == nil && n > 0 {
			found = FoundRecords
		}
		if ferr == nil {
			continue
		}
		if isFatal(ctx, ferr) {
			return records, nil, ferr
		}
		log.Warn().Err(ferr).Str(logging.Stream, stream).Msg("device failed; continuing with the others")
		if err := w.Sink.Failed(ctx, stream, dev.id, ferr); err != nil {
			return records, nil, fmt.Errorf("record failure of %s: %w", dev.id, err)
		}
		if failed == nil {
			failed = fmt.Errorf("%s: %w", stream, ferr)
		}
	}
	return records, failed, nil
}

// windows plans what a history stream of the device fetches; skip when
// the run has nothing to ask of it (a backfill of other ranges).
func (w *Walk) windows(stream string, dev target, st State) (windows []Window, skip bool) {
	plan := w.Plans[stream]
	switch {
	case w.Backfill != nil && w.Ranges != nil:
		for _, r := range w.Ranges[stream][dev.id] {
			windows = append(windows, plan.Backfill(r.From, r.To, st.SettledUntil)...)
		}
		return windows, len(windows) == 0
	case w.Backfill != nil:
		return plan.Backfill(w.Backfill.From, w.Backfill.To, st.SettledUntil), false
	}
	return plan.Incremental(st.SettledUntil), false
}

// walkOrder is streams with usage before rated.
func walkOrder(streams []string) []string {
	var out []string
	for _, s := range []string{schema.StreamUsage, schema.StreamConnections, schema.StreamRated} {
		if slices.Contains(streams, s) {
			out = append(out, s)
		}
	}
	return out
}

// isFatal tells errors that end the run from errors that end one device.
func isFatal(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	return errors.Is(err, ErrLoginRejected) || errors.Is(err, errStop)
}

// rated asks for the device's current billing cycle: one request.
func (w *Walk) rated(ctx context.Context, dev target) (int64, error) {
	r, err := w.Client.RatedUsage(ctx, DeviceID{Kind: "mdn", ID: dev.mdn})
	if err != nil {
		return 0, err
	}
	now := w.now()
	b := Batch{Stream: schema.StreamRated, Device: dev.id, Window: Window{To: now}, Rated: &r,
		Retire: dev.deactive && w.Backfill == nil}
	if end, err := ParseTime(r.BillingEndDate); err == nil {
		b.CycleEnd = end
	}
	if err := w.Sink.Batch(ctx, b); err != nil {
		return 1, fmt.Errorf("%w: store rated usage of %s: %v", errStop, dev.id, err)
	}
	return 1, nil
}

func (w *Walk) stream(ctx context.Context, stream string, dev target, windows []Window, st State, log zerolog.Logger) (int64, error) {
	var records int64
	loaded := st.FetchedUntil
	var open *openSessions
	if stream == schema.StreamConnections && w.Backfill == nil {
		open = newOpenSessions(st.OpenSince)
	}
	if len(windows) == 0 && dev.deactive && w.Backfill == nil {
		// Nothing new to fetch, but the device must still be retired.
		if err := w.Sink.Batch(ctx, Batch{Stream: stream, Device: dev.id, Retire: true}); err != nil {
			return 0, fmt.Errorf("%w: retire %s: %v", errStop, dev.id, err)
		}
		return 0, nil
	}
	limit := w.Plans[stream].Limit
	for i := 0; i < len(windows); i++ {
		win := windows[i]
		if limit != nil {
			// Ask as wide as the API is known to answer: the rest of the
			// window stays in the list, cut again when its turn comes.
			if head, tail := Cut(win, limit.Width(win.To.Sub(win.From))); !tail.From.IsZero() {
				windows = slices.Insert(windows, i+1, tail)
				windows[i], win = head, head
			}
		}
		b := Batch{Stream: stream, Device: dev.id, Window: win, FetchedUntil: loaded}
		var err error
		switch stream {
		case schema.StreamUsage:
			b.Usage, err = w.Client.UsageHistory(ctx, dev.id, win.From, win.Latest())
			if len(b.Usage) > 0 {
				records += int64(len(b.Usage))
				b.RecordsAt = w.now()
			}
		case schema.StreamConnections:
			b.Events, err = w.Client.ConnectionHistory(ctx, dev.id, win.From, win.Latest())
			if len(b.Events) > 0 {
				records += int64(len(b.Events))
				b.RecordsAt = w.now()
			}
		default:
			return records, fmt.Errorf("stream %q is not walked per window", stream)
		}
		if errors.Is(err, ErrRangeRefused) {
			parts, ok := w.narrow(win, limit)
			if !ok {
				return records, fmt.Errorf("window %s: %w (THINGSYNC_WINDOW_%s sets the widest range asked)", win, err, strings.ToUpper(stream))
			}
			log.Info().Str(logging.Stream, stream).Str(logging.Window, win.String()).Str("width", parts[0].To.Sub(parts[0].From).String()).
				Msg("window refused as too long; asking narrower ones")
			windows = slices.Replace(windows, i, i+1, parts...)
			i--
			continue
		}
		if errors.Is(err, ErrRangeTimeout) || overfull(err, win) {
			// A timeout is about this window's data, not the API's limit:
			// the window is split, the learned width left alone. So is a
			// wide window whose pages pass the memory cap or the page
			// ceiling.
			parts, ok := Split(win)
			if !ok {
				return records, fmt.Errorf("window %s: %w", win, err)
			}
			msg := "window timed out; splitting"
			switch {
			case errors.Is(err, ErrTooManyPages):
				msg = "window's pages pass the page ceiling; splitting"
			case !errors.Is(err, ErrRangeTimeout):
				msg = "window's pages pass the memory cap; splitting"
			}
			log.Info().Str(logging.Stream, stream).Str(logging.Window, win.String()).Int("parts", len(parts)).Msg(msg)
			// Replace the window by its parts and go on from the first.
			windows = slices.Replace(windows, i, i+1, parts...)
			i--
			continue
		}
		if err != nil {
			return records, fmt.Errorf("window %s: %w", win, err)
		}
		if limit != nil {
			limit.Answered(win.To.Sub(win.From))
		}
		b.Retire = dev.deactive && i == len(windows)-1 && w.Backfill == nil
		if open != nil {
			open.window(win, b.Events)
			b.Sessions, b.OpenSince = true, open.since()
		}
		if err := w.Sink.Batch(ctx, b); err != nil {
			return records, fmt.Errorf("%w: store %s window %s: %v", errStop, stream, win, err)
		}
	}
	return records, nil
}

// narrow replaces a window the API refused as too long: by two windows,
// the first as wide as limit now allows (it has learned the refusal), or
// by Split's halves without a limit or when the limit would not narrow it.
// ok is false once the window is an hour or less.
func (w *Walk) narrow(win Window, limit *RangeLimit) (parts []Window, ok bool) {
	d := win.To.Sub(win.From)
	if d <= time.Hour {
		return nil, false
	}
	if limit != nil {
		if head, tail := Cut(win, limit.Refused(d)); !tail.From.IsZero() {
			return []Window{head, tail}, true
		}
	}
	return Split(win)
}

// splitAbove is the narrowest window that is split, not failed, when its
// pages together pass the memory cap (ClientConfig.MaxBodyBytes) or the
// page ceiling: three days, the width windows had before they were asked
// wide (and the widest the page ceiling grows with), so a device whose
// three days fit is fetched as it always was, and a history that fills the
// cap or the ceiling at any width (the API answering without end) costs a
// cap or a ceiling of pages per halving before its device fails.
const splitAbove = pageDays * 24 * time.Hour

// overfull tells whether err is a window's pages passing the memory cap or
// the page ceiling, in a window wide enough to split.
func overfull(err error, win Window) bool {
	var big *TooLargeError
	return (errors.Is(err, ErrTooManyPages) || errors.As(err, &big) && big.Window) && win.To.Sub(win.From) > splitAbove
}
