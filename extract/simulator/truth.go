package simulator

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Ground truth: what a complete warehouse must hold for the simulated
// account at a given clock time. Every accessor is a pure function of the
// seed, the options and the time asked for (not of what was requested),
// returns plain structs in a documented order, and answers the values as the
// API serves them at that time (recent days' revisions included).

// TruthDevice is a device as the simulator knows it.
type TruthDevice struct {
	Identity ID   // the warehouse identity (extract.Identity's rule)
	IDs      []ID // every identifier, kinds lower-case, in the order sent
	// Kinds are the kinds as spelled on the wire, parallel to IDs
	// ("ICCID", "iccId", …).
	Kinds []string
	State string // "active", "deactive" or "suspend"
	APIID int64  // the DeviceId extended attribute, the device list cursor
	// Silent devices have no usage and no sessions at all.
	Silent bool
	// Class is the activity class of a fleet generated with a FleetMix
	// (NoClass without one).
	Class Class
	// Deactivated is State == "deactive"; such a device has history until
	// DeactivatedAt (midnight UTC) and nothing from then on.
	Deactivated   bool
	DeactivatedAt time.Time
	// SuspendedAt: in a fleet, a suspended device has history until this
	// day (midnight UTC) and nothing from then on (zero otherwise).
	SuspendedAt time.Time
	// Offset is the UTC offset its connection events are sent with, as it
	// appears in occurredAt ("Z", "-05:00", "+02:00").
	Offset string
	// RatedUnit is the unit of its rated usage (KB, MB or GB); empty for a
	// device without an MDN, which has no rated usage.
	RatedUnit string
}

// Devices lists every device, in device-list (DeviceId) order.
func (s *Simulator) Devices() []TruthDevice {
	out := make([]TruthDevice, s.opts.Devices)
	for i := range out {
		out[i] = s.Device(i)
	}
	return out
}

// Device is the i-th device of the device list (0 ≤ i < Options.Devices):
// for fleets too large to list at once.
func (s *Simulator) Device(i int) TruthDevice {
	d := s.device(i)
	td := TruthDevice{
		Identity: d.identity(), IDs: d.ids, Kinds: d.spelled,
		State: d.state, APIID: d.apiID, Silent: d.silent, Class: d.class,
		Deactivated: d.state == "deactive",
		Offset:      time.Date(2000, 1, 1, 0, 0, 0, 0, d.offset).Format("Z07:00"),
	}
	if td.Deactivated {
		td.DeactivatedAt = d.quietFrom
	} else if d.class == Suspended {
		td.SuspendedAt = d.quietFrom
	}
	if d.id("mdn") != "" {
		td.RatedUnit = d.unit
	}
	return td
}

// Connection is what the device list tells of a device's connection at
// some time.
type Connection struct {
	Device    ID
	Connected bool // a session is open: its Start is served, its Stop not yet
	// LastConnection is the start (UTC) of the latest session that started
	// by then, within the history served; zero when there is none.
	LastConnection time.Time
}

// TruthConnections returns connected and lastConnectionDate as the device
// list serves them at clock time at, sorted by device identity (its
// String). With only given, just those devices.
func (s *Simulator) TruthConnections(at time.Time, only ...ID) []Connection {
	keep := idSet(only)
	var out []Connection
	for _, i := range s.byIdentity(only...) {
		d := s.device(i)
		if keep != nil && !keep[d.ident] {
			continue
		}
		c := Connection{Device: d.ident}
		if last, ok := s.lastSession(&d, at); ok {
			c.Connected, c.LastConnection = last.stop.After(at), last.start.UTC()
		}
		out = append(out, c)
	}
	return out
}

// UsageDay is one usage record as served.
type UsageDay struct {
	Device        ID
	Date          time.Time // the record's day, midnight UTC
	BytesUsed     int64
	SMSUsed       int64
	MoSMS, MtSMS  int64
	Domestic      int64 // domesticUsage
	International int64 // internationalUsage
	Source        string
	// Extra holds the attributes the UnknownKeys quirk adds (RoamingSms and
	// the hostile key), nil otherwise.
	Extra map[string]string
	// Malformed marks a record a quirk made unloadable (bad timestamp or
	// value): a warehouse must reject it, not store it.
	Malformed bool
}

// TruthUsage returns the usage records served at clock time at for days
// in [from, to) (zero from: the retention floor; zero to: everything up to
// at), sorted by device identity (its String) then date. With only given,
// just those devices.
func (s *Simulator) TruthUsage(at, from, to time.Time, only ...ID) []UsageDay {
	keep := idSet(only)
	if from.IsZero() {
		from = retentionFloor(at)
	}
	if to.IsZero() {
		to = at.Add(time.Nanosecond)
	}
	q := s.opts.Quirks
	today := dayOf(at)
	var out []UsageDay
	for _, i := range s.byIdentity(only...) {
		dev := s.device(i)
		d := &dev
		if keep != nil && !keep[d.ident] {
			continue
		}
		s.usageDays(d, from, to.Add(-time.Nanosecond), at, func(day time.Time, u usageDay) bool {
			age := int(today.Sub(day) / (24 * time.Hour))
			rec := UsageDay{
				Device: d.ident, Date: day, BytesUsed: u.bytes, SMSUsed: u.sms(), MoSMS: u.mo, MtSMS: u.mt,
				Domestic: u.domestic, International: u.intl, Source: "Raw Usage",
			}
			if d.index == quirkDevUnknown {
				rec.Malformed = (q.BadTimestamp && age == badTimestampAge) || (q.BadValue && age == badValueAge) ||
					(q.Implausible && implausibleAge(age) != "")
				if q.UnknownKeys {
					rec.Extra = map[string]string{"RoamingSms": strconv.FormatInt(u.mt%3, 10), hostileKey: "1"}
				}
			}
			out = append(out, rec)
			return true
		})
	}
	return out
}

// Event is one connection event as served.
type Event struct {
	Device     ID
	OccurredAt time.Time // UTC
	Offset     string    // the offset it is sent with: "Z", "-05:00", …
	// Attrs are all its connectionEventAttributes, values as strings
	// (whatever the NumbersAsNumbers quirk puts on the wire).
	Attrs map[string]string
}

// Start tells whether the event is a session's Start.
func (e Event) Start() bool { return e.Attrs["Event"] == "Start" }

type mapSink map[string]string

func (m mapSink) str(k, v string)       { m[k] = v }
func (m mapSink) num(k string, v int64) { m[k] = strconv.FormatInt(v, 10) }

// TruthEvents returns the connection events served at clock time at with
// from ≤ occurredAt < to (zero from: the retention floor; zero to:
// everything up to at), sorted by device identity (its String) then time.
// A session whose Stop lies after at shows only its Start. With only given,
// just those devices.
func (s *Simulator) TruthEvents(at, from, to time.Time, only ...ID) []Event {
	keep := idSet(only)
	if from.IsZero() {
		from = retentionFloor(at)
	}
	if to.IsZero() {
		to = at.Add(time.Nanosecond)
	}
	var out []Event
	for _, i := range s.byIdentity(only...) {
		dev := s.device(i)
		d := &dev
		if keep != nil && !keep[d.ident] {
			continue
		}
		evs, sess, _ := s.events(d, from, to.Add(-time.Nanosecond), at, 0)
		for _, e := range evs {
			attrs := make(mapSink, 42)
			eventAttrs(d, e, sess, attrs)
			if s.opts.Quirks.UnknownKeys && d.index == quirkDevUnknown {
				attrs["NasPortType"] = "Wireless-Other"
			}
			out = append(out, Event{Device: d.ident, OccurredAt: e.at.UTC(), Offset: e.at.In(d.offset).Format("Z07:00"), Attrs: attrs})
		}
	}
	return out
}

// Session is one connection session as the served events describe it.
type Session struct {
	Device                  ID
	ID                      string    // AccountSessionId
	StartedAt               time.Time // UTC; zero when only its Stop is served (it started before the range)
	StoppedAt               time.Time // UTC; zero while open
	InputBytes, OutputBytes int64
	TerminateCause          string // "" while open
}

// TruthSessions pairs TruthEvents(at, from, to, only...) into sessions by
// device and AccountSessionId, ordered as their first event.
func (s *Simulator) TruthSessions(at, from, to time.Time, only ...ID) []Session {
	var out []Session
	idx := map[ID]map[string]int{}
	for _, e := range s.TruthEvents(at, from, to, only...) {
		m := idx[e.Device]
		if m == nil {
			m = map[string]int{}
			idx[e.Device] = m
		}
		sid := e.Attrs["AccountSessionId"]
		k, ok := m[sid]
		if !ok {
			k = len(out)
			m[sid] = k
			out = append(out, Session{Device: e.Device, ID: sid})
		}
		if e.Start() {
			out[k].StartedAt = e.OccurredAt
			continue
		}
		out[k].StoppedAt = e.OccurredAt
		out[k].InputBytes, _ = strconv.ParseInt(e.Attrs["InputBytes"], 10, 64)
		out[k].OutputBytes, _ = strconv.ParseInt(e.Attrs["OutputBytes"], 10, 64)
		out[k].TerminateCause = e.Attrs["AccountTerminateCause"]
	}
	return out
}

// Rated is a device's rated usage as served at some time.
type Rated struct {
	Device            ID
	MDN               string
	Start, End, Reset time.Time // billingStartDate, billingEndDate, billingResetDate (UTC)
	DataUsage         float64   // in Unit, as sent
	Unit              string    // KB, MB or GB
	DataUsageBytes    int64     // DataUsage × the unit (10³, 10⁶, 10⁹), rounded
}

// TruthRated returns the rated usage served at at for every device with an
// MDN, sorted by device identity (its String).
func (s *Simulator) TruthRated(at time.Time) []Rated {
	var out []Rated
	for _, i := range s.byIdentity() {
		dev := s.device(i)
		d := &dev
		mdn := d.id("mdn")
		if mdn == "" {
			continue
		}
		r := s.rated(d, at)
		out = append(out, Rated{Device: d.ident, MDN: mdn, Start: r.start, End: r.end, Reset: r.reset,
			DataUsage: r.usage, Unit: r.unit, DataUsageBytes: int64(r.usage*unitBytes[r.unit] + 0.5)})
	}
	return out
}

// Aggregate is one device's promo aggregate usage for a period, as the
// data callback carries it.
type Aggregate struct {
	Device       ID
	ICCID        string
	Start, End   time.Time // the request's startTime and endTime (UTC)
	Data, SMS    int64     // dataUsage (bytes), smsUsage
	MoSMS, MtSMS int64
}

type aggregate struct{ data, sms, mo, mt int64 }

// aggregate sums the usage of the days whose midnight lies in [start, end)
// as served at now.
func (s *Simulator) aggregate(d *device, start, end, now time.Time) aggregate {
	var a aggregate
	s.usageDays(d, start, end.Add(-time.Nanosecond), now, func(_ time.Time, u usageDay) bool {
		a.data += u.bytes
		a.sms += u.sms()
		a.mo += u.mo
		a.mt += u.mt
		return true
	})
	return a
}

// TruthAggregate returns the aggregate usage the simulator delivers for the
// device with this ICCID over [start, end) when asked at at; false for an
// unknown ICCID.
func (s *Simulator) TruthAggregate(iccid string, start, end, at time.Time) (Aggregate, bool) {
	i, ok := s.indexOf("iccid", iccid)
	if !ok {
		return Aggregate{}, false
	}
	dev := s.device(i)
	d := &dev
	a := s.aggregate(d, start, end, at)
	return Aggregate{Device: d.ident, ICCID: iccid, Start: start.UTC(), End: end.UTC(), Data: a.data, SMS: a.sms, MoSMS: a.mo, MtSMS: a.mt}, true
}

// TruthAggregates returns TruthAggregate for every device with an ICCID
// (or those of iccids, when given), sorted by device identity.
func (s *Simulator) TruthAggregates(start, end, at time.Time, iccids ...string) []Aggregate {
	want := map[string]bool{}
	for _, id := range iccids {
		want[id] = true
	}
	var out []Aggregate
	for _, i := range s.byIdentity() {
		dev := s.device(i)
		iccid := dev.id("iccid")
		if iccid == "" || (len(want) > 0 && !want[iccid]) {
			continue
		}
		a, _ := s.TruthAggregate(iccid, start, end, at)
		out = append(out, a)
	}
	return out
}

// byIdentity returns device indexes ordered by their identity's String:
// every device, or with only given, those it names (a device not named by
// its identity is left to the caller's filter).
func (s *Simulator) byIdentity(only ...ID) []int {
	type keyed struct {
		key string
		i   int
	}
	var ks []keyed
	if len(only) > 0 {
		seen := map[int]bool{}
		for _, id := range only {
			if i, ok := s.indexOf(strings.ToLower(id.Kind), id.ID); ok && !seen[i] {
				seen[i] = true
				d := s.device(i)
				ks = append(ks, keyed{d.ident.String(), i})
			}
		}
	} else {
		ks = make([]keyed, s.opts.Devices)
		for i := range ks {
			d := s.device(i)
			ks[i] = keyed{d.ident.String(), i}
		}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	idx := make([]int, len(ks))
	for j, k := range ks {
		idx[j] = k.i
	}
	return idx
}

func idSet(ids []ID) map[ID]bool {
	if len(ids) == 0 {
		return nil
	}
	m := make(map[ID]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// UsagePageJSON returns the usage history page the simulator serves for the
// i-th device (device-list order) over [earliest, latest] at at: the API's
// own bytes, for benchmarks that load them another way.
func (s *Simulator) UsagePageJSON(i int, earliest, latest, at time.Time) []byte {
	d := s.device(i)
	b, _ := s.appendUsagePage(nil, &d, earliest, latest, at)
	return b
}
