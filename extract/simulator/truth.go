package simulator

import (
	"sort"
	"strconv"
	"time"
)

// Ground truth: what a complete warehouse must hold for the simulator's
// account at a given clock time.

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TruthDevice is a device as the simulator knows it.
type TruthDevice struct {
	Identity ID   // the warehouse identity (SPEC §5)
	IDs      []ID // every identifier, kinds lower-case
	State    string
	APIID    int64 // the DeviceId extended attribute
	Silent   bool  // no usage and no sessions at all
}

// Devices lists every device in device-list order.
func (s *Simulator) Devices() []TruthDevice {
	out := make([]TruthDevice, len(s.devices))
	for i, d := range s.devices {
		out[i] = TruthDevice{Identity: d.identity(), IDs: append([]ID(nil), d.ids...), State: d.state, APIID: d.apiID, Silent: d.silent}
	}
	return out
}

// UsageDay is one served usage record.
type UsageDay struct {
	Device        ID
	Date          time.Time // midnight UTC
	BytesUsed     int64
	SMSUsed       int64
	MoSMS, MtSMS  int64
	Domestic      int64
	International int64
	Source        string
	// Malformed marks a record the quirks made unloadable (bad timestamp or
	// value): a warehouse must reject it, not store it.
	Malformed bool
}

// TruthUsage returns the usage records served at clock time at for days in
// [from, to) (zero values: the whole retention), sorted by device then
// date. Only devices in only are included, when given.
func (s *Simulator) TruthUsage(at, from, to time.Time, only ...ID) []UsageDay {
	keep := idSet(only)
	if from.IsZero() {
		from = retentionFloor(at)
	}
	if to.IsZero() {
		to = at.Add(time.Nanosecond)
	}
	var out []UsageDay
	for _, d := range s.devices {
		id := d.identity()
		if d.silent || (keep != nil && !keep[id]) {
			continue
		}
		for _, day := range usageDays(from, to.Add(-time.Nanosecond), at) {
			if !d.activeOn(day) {
				continue
			}
			u := s.usage(d, day, at)
			age := int(dayOf(at).Sub(day) / (24 * time.Hour))
			q := s.opts.Quirks
			out = append(out, UsageDay{
				Device: id, Date: day, BytesUsed: u.bytes, SMSUsed: u.sms(), MoSMS: u.mo, MtSMS: u.mt,
				Domestic: u.domestic, International: u.intl, Source: "Raw Usage",
				Malformed: d.index == 0 && ((q.BadTimestamp && age == 10) || (q.BadValue && age == 11)),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Device != out[j].Device {
			return out[i].Device.String() < out[j].Device.String()
		}
		return out[i].Date.Before(out[j].Date)
	})
	return out
}

// Event is one served connection event.
type Event struct {
	Device     ID
	OccurredAt time.Time // UTC
	Offset     string    // the offset it is sent with, e.g. "-05:00" or "Z"
	Attrs      map[string]string
}

// TruthEvents returns the connection events served at clock time at with
// from ≤ occurredAt < to (zero: the whole retention), by device then time.
func (s *Simulator) TruthEvents(at, from, to time.Time, only ...ID) []Event {
	keep := idSet(only)
	if from.IsZero() {
		from = retentionFloor(at)
	}
	if to.IsZero() {
		to = at.Add(time.Nanosecond)
	}
	var out []Event
	for _, d := range s.devices {
		id := d.identity()
		if keep != nil && !keep[id] {
			continue
		}
		for _, e := range s.events(d, from, to.Add(-time.Nanosecond), at) {
			attrs := map[string]string{}
			for _, kv := range e.attrs(d) {
				attrs[kv[0]] = kv[1]
			}
			if s.opts.Quirks.UnknownKeys && d.index == 0 {
				attrs["NasPortType"] = "Wireless-Other"
			}
			off := e.at.In(d.offset).Format("Z07:00")
			out = append(out, Event{Device: id, OccurredAt: e.at.UTC(), Offset: off, Attrs: attrs})
		}
	}
	return out
}

// Rated is a device's rated usage as served at some time.
type Rated struct {
	Device            ID
	MDN               string
	Start, End, Reset time.Time
	DataUsage         float64
	Unit              string
	DataUsageBytes    int64
}

// TruthRated returns the rated usage of every device with an MDN at at.
func (s *Simulator) TruthRated(at time.Time) []Rated {
	var out []Rated
	for _, d := range s.devices {
		if d.id("mdn") == "" {
			continue
		}
		r := s.rated(d, at)
		factor := map[string]float64{"KB": 1e3, "MB": 1e6, "GB": 1e9}[r.unit]
		out = append(out, Rated{Device: d.identity(), MDN: d.id("mdn"), Start: r.start, End: r.end, Reset: r.reset,
			DataUsage: r.usage, Unit: r.unit, DataUsageBytes: int64(r.usage*factor + 0.5)})
	}
	return out
}

// Aggregate is one device's promo aggregate usage for a period.
type Aggregate struct {
	Device       ID
	Start, End   time.Time
	Data, SMS    int64
	MoSMS, MtSMS int64
}

type aggregate struct{ data, sms, mo, mt int64 }

func (s *Simulator) aggregate(d device, start, end, now time.Time) aggregate {
	var a aggregate
	if d.silent {
		return a
	}
	for day := dayOf(start); day.Before(end); day = day.AddDate(0, 0, 1) {
		if day.Before(start) || day.After(now) || !d.activeOn(day) {
			continue
		}
		u := s.usage(d, day, now)
		a.data += u.bytes
		a.sms += u.sms()
		a.mo += u.mo
		a.mt += u.mt
	}
	return a
}

// TruthAggregate returns the aggregate usage the simulator would deliver
// for the device with this ICCID over [start, end) at at.
func (s *Simulator) TruthAggregate(iccid string, start, end, at time.Time) (Aggregate, bool) {
	i, ok := s.byID[iccid]
	if !ok || s.devices[i].id("iccid") != iccid {
		return Aggregate{}, false
	}
	d := s.devices[i]
	a := s.aggregate(d, start, end, at)
	return Aggregate{Device: d.identity(), Start: start.UTC(), End: end.UTC(), Data: a.data, SMS: a.sms, MoSMS: a.mo, MtSMS: a.mt}, true
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

// UsagePageJSON is the usage history page the simulator serves for the
// i-th device over [earliest, latest] at at, for benchmarks that load the
// API's own bytes another way.
func (s *Simulator) UsagePageJSON(i int, earliest, latest, at time.Time) []byte {
	b, _ := s.usagePage(s.devices[i], earliest, latest, at)
	return b
}
