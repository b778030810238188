package extract

import (
	"hash/fnv"
	"strings"
	"time"

	"github.com/thingsync/thingsync/schema"
)

// The idle rule: which streams of a device a run asks for. A large fleet is
// mostly idle on any night; asking every device for every stream costs
// about three requests a device whether or not it did anything. The device
// list already says whether a device connected since the last fetch
// (connected, lastConnectionDate), so an idle device costs:
//
//   - connections: nothing, until the list shows it connected again;
//   - usage: one request per recheck period, because SMS arrive without a
//     data session (the list does not show them);
//   - rated: a request only after new usage, and once after its billing
//     cycle closes.
//
// Decide is pure: the walk applies it to every listed device, and sync
// --plan applies it to count what a run would ask for.

// Listing is what the device list says of a device that the rule reads.
type Listing struct {
	Connected bool
	// LastConnection is lastConnectionDate (UTC); zero when the list gives
	// none (no session within the history served).
	LastConnection time.Time
	// LastConnectionBad: lastConnectionDate was sent but could not be read;
	// the rule cannot tell whether the device connected, so it is due.
	LastConnectionBad bool
	// CycleEnd is billingCycleEndDate (UTC), zero when absent.
	CycleEnd time.Time
	// Deactive: the carrier state is deactive.
	Deactive bool
}

// ListingOf reads a device's list entry for the rule.
func ListingOf(d Device) Listing {
	l := Listing{Connected: d.Connected, Deactive: deactivated(d)}
	if s := strings.TrimSpace(d.LastConnectionDate); s != "" {
		t, err := ParseTime(s)
		l.LastConnection, l.LastConnectionBad = t, err != nil
	}
	if s := strings.TrimSpace(d.BillingCycleEndDate); s != "" {
		if t, err := ParseTime(s); err == nil {
			l.CycleEnd = t
		}
	}
	return l
}

// Found is what this run's usage fetch of a device returned, for its rated
// decision.
type Found int

const (
	// FoundUnknown: not fetched yet (sync --plan).
	FoundUnknown Found = iota
	// FoundNone: not fetched, failed, or no record.
	FoundNone
	// FoundRecords: at least one usage record.
	FoundRecords
)

// Reason says why a stream of a device is due or skipped.
type Reason string

// The reasons Decide gives.
const (
	DueEveryRun       Reason = "every run (THINGSYNC_IDLE_RECHECK=0)"
	DueFirst          Reason = "no checkpoint yet"
	DueConnected      Reason = "connected"
	DueConnectedSince Reason = "connected since it was settled"
	DueUnreadable     Reason = "lastConnectionDate unreadable"
	DueOpenSession    Reason = "open session in the warehouse"
	DueLastFetch      Reason = "deactivated: fetched a last time"
	DueRecheck        Reason = "idle, recheck due"
	DueNewUsage       Reason = "new usage since the last rated fetch"
	DueCycleClosed    Reason = "billing cycle closed since the last rated fetch"
	SkipRetired       Reason = "retired"
	SkipIdle          Reason = "idle: not connected since it was settled"
	SkipRecheckLater  Reason = "idle: usage rechecked once per THINGSYNC_IDLE_RECHECK"
	SkipNoNewUsage    Reason = "no new usage since the last rated fetch"
	// MaybeNewUsage: due if this run's usage fetch returns records (known
	// only once it ran: sync --plan counts these apart).
	MaybeNewUsage Reason = "due if its usage fetch finds records"
)

// Decision is the rule's answer for one stream of one device.
type Decision struct {
	Due bool
	// Maybe: not due unless this run's usage fetch finds records (rated
	// under FoundUnknown only).
	Maybe  bool
	Reason Reason
	// Idle: skipped because the device is idle (not retired, not a
	// rated stream without new usage): its days after the last fetch are
	// pending in the coverage ledger.
	Idle bool
}

// Facts are a device's inputs to the rule: its list entry and its
// checkpoints by stream.
type Facts struct {
	Device      DeviceID
	Listing     Listing
	Usage       State
	Connections State
	Rated       State
	// UsageFound is what this run's usage fetch returned (rated only).
	UsageFound Found
}

// IdleRule decides per device and stream whether a run asks for it.
type IdleRule struct {
	// Recheck is how often an idle device's usage is asked; 0 asks every
	// device for every stream on every run (the rule off).
	Recheck time.Duration
}

// Decide says whether a run at now asks for stream of the device.
func (r IdleRule) Decide(stream string, f Facts, now time.Time) Decision {
	st := f.state(stream)
	l := f.Listing
	switch {
	case st.Retired && l.Deactive:
		return Decision{Reason: SkipRetired}
	case l.Deactive:
		return Decision{Due: true, Reason: DueLastFetch}
	case r.Recheck <= 0:
		return Decision{Due: true, Reason: DueEveryRun}
	case st.FetchedUntil.IsZero():
		return Decision{Due: true, Reason: DueFirst}
	}
	if stream == schema.StreamRated {
		return r.rated(f, now)
	}
	switch {
	case l.Connected:
		return Decision{Due: true, Reason: DueConnected}
	case l.LastConnectionBad:
		return Decision{Due: true, Reason: DueUnreadable}
	case st.SettledUntil.IsZero():
		return Decision{Due: true, Reason: DueFirst}
	case !l.LastConnection.IsZero() && !l.LastConnection.Before(st.SettledUntil):
		// It connected at or after what is settled: records may have come
		// since the last fetch, or not be final yet. (No LastConnection:
		// no session within the history served, older than anything.)
		return Decision{Due: true, Reason: DueConnectedSince}
	}
	if !f.Connections.OpenSince.IsZero() {
		// A session whose Start is stored but not its Stop ended after the
		// last fetch (the list says not connected): its Stop is still to
		// fetch, and its usage with it.
		return Decision{Due: true, Reason: DueOpenSession}
	}
	if stream == schema.StreamUsage {
		if r.slot(f.Device, now) > r.slot(f.Device, st.FetchedUntil) {
			return Decision{Due: true, Reason: DueRecheck}
		}
		return Decision{Reason: SkipRecheckLater, Idle: true}
	}
	return Decision{Reason: SkipIdle, Idle: true}
}

func (r IdleRule) rated(f Facts, now time.Time) Decision {
	st := f.Rated
	switch {
	case st.CycleEnd.IsZero() || !now.Before(st.CycleEnd.Add(24*time.Hour)) ||
		schema.Day(f.Listing.CycleEnd).After(schema.Day(st.CycleEnd)):
		// The billing end date is the cycle's last day: the cycle last
		// fetched closed at its end (unknown: fetched before the rule
		// kept it).
		return Decision{Due: true, Reason: DueCycleClosed}
	case f.UsageFound == FoundRecords || f.Usage.RecordsAt.After(st.FetchedUntil):
		return Decision{Due: true, Reason: DueNewUsage}
	case f.UsageFound == FoundUnknown:
		return Decision{Maybe: true, Reason: MaybeNewUsage}
	}
	return Decision{Reason: SkipNoNewUsage}
}

func (f Facts) state(stream string) State {
	switch stream {
	case schema.StreamUsage:
		return f.Usage
	case schema.StreamConnections:
		return f.Connections
	}
	return f.Rated
}

// slot numbers the recheck periods of a device: its usage is due when a
// period has begun since its last fetch. Each device's periods start at its
// own phase (a hash of its identity), so that a fleet synced at once is
// rechecked a share each night rather than all on one.
func (r IdleRule) slot(dev DeviceID, t time.Time) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(dev.Kind + "\x00" + dev.ID))
	p := int64(r.Recheck)
	phase := int64(h.Sum64() % uint64(p))
	x := t.UnixNano() - phase
	if x < 0 {
		return x/p - 1
	}
	return x / p
}

// NextRecheck is when an idle device whose usage was last fetched at
// fetched is asked again.
func (r IdleRule) NextRecheck(dev DeviceID, fetched time.Time) time.Time {
	if r.Recheck <= 0 {
		return fetched
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(dev.Kind + "\x00" + dev.ID))
	phase := time.Duration(h.Sum64() % uint64(r.Recheck))
	return time.Unix(0, 0).UTC().Add(time.Duration(r.slot(dev, fetched)+1)*r.Recheck + phase)
}

// openSessions follows, through the windows of one connections fetch, the
// sessions left open: a Start without its Stop. The device list says a
// device is not connected once its session ended, yet the session's Stop is
// fetched only if the device is asked again: the rule asks it while its
// checkpoint holds an open session.
type openSessions struct {
	// carried is the open session of the last fetch while its Start is
	// not read again (zero once closed or re-read).
	carried time.Time
	open    map[string]time.Time
	stopped map[string]bool
}

func newOpenSessions(carried time.Time) *openSessions {
	return &openSessions{carried: carried, open: map[string]time.Time{}, stopped: map[string]bool{}}
}

// window takes the events of one window, oldest first.
func (o *openSessions) window(win Window, evs []ConnectionEvent) {
	if !o.carried.IsZero() && !o.carried.Before(win.From) {
		o.carried = time.Time{} // its Start is read again
	}
	for _, e := range evs {
		if e.Err != nil {
			continue
		}
		id, kind := sessionEvent(e)
		switch {
		case id == "" || o.stopped[id]:
		case strings.EqualFold(kind, "Start"):
			o.open[id] = e.OccurredAt
		case strings.EqualFold(kind, "Stop"):
			if _, ok := o.open[id]; !ok {
				// The Stop of a session started before the fetch: the
				// one carried over.
				o.carried = time.Time{}
			}
			delete(o.open, id)
			o.stopped[id] = true
		}
	}
}

// since is the start of the earliest session left open; zero when none.
func (o *openSessions) since() time.Time {
	s := o.carried
	for _, t := range o.open {
		if s.IsZero() || t.Before(s) {
			s = t
		}
	}
	return s
}

// sessionEvent reads an event's session id and kind (Start, Stop).
func sessionEvent(e ConnectionEvent) (id, kind string) {
	for _, a := range e.Attributes {
		switch a.Key {
		case "AccountSessionId":
			id = a.Value
		case "Event", "AccountStatusType":
			if kind == "" {
				kind = a.Value
			}
		}
	}
	return id, kind
}
