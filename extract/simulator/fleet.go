package simulator

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A fleet generated with a FleetMix gives each device an activity class, so
// that a large account looks like a real one: most devices idle most days,
// a quarter in daily use, a tenth no longer in service. Each device's class
// is a hash of (seed, device); each of its days a hash of (seed, device,
// day), so a fleet of a million devices costs nothing until asked about.

// Class is a device's activity class in a fleet generated with a FleetMix.
type Class int

const (
	// NoClass: the account was generated without a mix (the fixed rules:
	// about 5% deactive, a few suspend, 6% silent, the others use data
	// most days).
	NoClass Class = iota
	// Daily devices connect (one to three sessions) and use data every day.
	Daily
	// Intermittent devices have a data session every few days: gaps of 2
	// to 8 days between the days with one, a usage record on those days
	// only.
	Intermittent
	// Dormant devices have no data session for weeks (at least 22 days
	// between two; in about half of their 6- to 13-week spans, one
	// session), but an occasional SMS-only usage day (about one day in
	// twelve): a usage record with SMS and zero bytes, no connection
	// events. Such a record appears once its SMS have arrived (up to three
	// days late).
	Dormant
	// Suspended devices ("suspend") were daily until a day 10 to 59 days
	// before the account was generated, and have no activity from then on.
	Suspended
	// Deactivated devices ("deactive") likewise: history until the day
	// they went quiet, nothing from then on.
	Deactivated
	numClasses
)

var classNames = [numClasses]string{"", "daily", "intermittent", "dormant", "suspended", "deactivated"}

// String is the class's name in a --fleet-mix ("" for NoClass).
func (c Class) String() string {
	if c < 0 || c >= numClasses {
		return "class(" + strconv.Itoa(int(c)) + ")"
	}
	return classNames[c]
}

// FleetMix is the share of each activity class in a generated fleet, in
// parts of their sum (percentages, say). The zero value is no mix: the
// account of the fixed rules, as generated before fleets had classes.
type FleetMix struct {
	Daily, Intermittent, Dormant, Suspended, Deactivated int
}

// DefaultFleetMix is the mix benchmarks use (--fleet-mix default): 25%
// daily, 25% intermittent, 40% dormant, 5% suspended, 5% deactivated.
func DefaultFleetMix() FleetMix {
	return FleetMix{Daily: 25, Intermittent: 25, Dormant: 40, Suspended: 5, Deactivated: 5}
}

// IsZero tells whether no mix is set.
func (m FleetMix) IsZero() bool { return m == FleetMix{} }

func (m FleetMix) parts() [numClasses]int {
	return [numClasses]int{0, m.Daily, m.Intermittent, m.Dormant, m.Suspended, m.Deactivated}
}

func (m FleetMix) total() int {
	t := 0
	for _, p := range m.parts() {
		t += p
	}
	return t
}

// String is the mix as --fleet-mix takes it, classes of no share left out.
func (m FleetMix) String() string {
	var b strings.Builder
	for c, p := range m.parts() {
		if p > 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%d", Class(c), p)
		}
	}
	return b.String()
}

// Share is the fraction of the fleet class c is meant to hold.
func (m FleetMix) Share(c Class) float64 {
	if c <= NoClass || c >= numClasses || m.total() == 0 {
		return 0
	}
	return float64(m.parts()[c]) / float64(m.total())
}

// ParseFleetMix reads a mix: "default" (DefaultFleetMix) or
// class=parts pairs separated by commas, e.g.
// "daily=25,intermittent=25,dormant=40,suspended=5,deactivated=5"; a class
// not named has no share.
func ParseFleetMix(s string) (FleetMix, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "default") {
		return DefaultFleetMix(), nil
	}
	var m FleetMix
	fields := map[string]*int{"daily": &m.Daily, "intermittent": &m.Intermittent, "dormant": &m.Dormant,
		"suspended": &m.Suspended, "deactivated": &m.Deactivated}
	for _, f := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		p := fields[strings.ToLower(strings.TrimSpace(name))]
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if !ok || p == nil || err != nil || n < 0 {
			return FleetMix{}, fmt.Errorf("fleet mix %q: want \"default\" or class=parts pairs such as daily=25,intermittent=25,dormant=40,suspended=5,deactivated=5 (classes: daily, intermittent, dormant, suspended, deactivated)", s)
		}
		*p = n
	}
	if m.total() == 0 {
		return FleetMix{}, fmt.Errorf("fleet mix %q: every share is zero", s)
	}
	return m, nil
}

// classOf draws device i's class from the mix.
func (m FleetMix) classOf(seed uint64, i int) Class {
	x := int(mix(seed, uint64(i), 12) % uint64(m.total()))
	for c, p := range m.parts() {
		if x < p {
			return Class(c)
		}
		x -= p
	}
	return NoClass // unreachable: x < total
}

// Spans of the classes' schedules, in days. A device's span length and
// phase are fixed; which day of a span carries its session is drawn per
// span.
const (
	intermittentMin, intermittentSpread = 3, 3   // spans of 3–5 days
	dormantMin, dormantSpread           = 42, 49 // spans of 6–13 weeks
	dormantSMSOneIn                     = 12
)

// sessionCount is how many sessions dev starts on day d (midnight UTC).
func (s *Simulator) sessionCount(dev *device, d time.Time) int {
	if dev.silent || !dev.activeOn(d) {
		return 0
	}
	seed, dn := uint64(s.opts.Seed), d.Unix()/86400
	h := mix(seed, uint64(dev.index), uint64(dn), 3)
	switch dev.class {
	case NoClass:
		return int(h % 4)
	case Intermittent:
		if !s.sessionDay(dev, dn) {
			return 0
		}
		return 1 + int(h%2)
	case Dormant:
		if !s.sessionDay(dev, dn) {
			return 0
		}
		return 1
	default: // Daily; Suspended and Deactivated before they went quiet
		return 1 + int(h%3)
	}
}

// spans returns the length and phase of dev's spans: day dn lies in span
// (dn+phase)/k, at offset (dn+phase)%k.
func (s *Simulator) spans(dev *device) (k, phase int64) {
	seed, i := uint64(s.opts.Seed), uint64(dev.index)
	hk := mix(seed, i, 17)
	switch dev.class {
	case Intermittent:
		k = int64(intermittentMin + hk%intermittentSpread)
	case Dormant:
		k = int64(dormantMin + hk%dormantSpread)
	default:
		return 1, 0
	}
	return k, int64(mix(seed, i, 16) % uint64(k))
}

// spanSession returns the day (days since 1970) of the session day of
// span sp of an intermittent or dormant device; false if the span has
// none. An intermittent device's session day is one of the first k−1 days
// of each k-day span, so two lie 2 to 2k−2 days apart; a dormant device's,
// in half of its spans, one of the first k/2 days, so two lie more than
// k/2 days apart.
func (s *Simulator) spanSession(dev *device, sp int64) (int64, bool) {
	k, phase := s.spans(dev)
	h := mix(uint64(s.opts.Seed), uint64(dev.index), uint64(sp), 13)
	switch dev.class {
	case Intermittent:
		return sp*k - phase + int64(h%uint64(k-1)), true
	case Dormant:
		return sp*k - phase + int64((h>>1)%uint64(k/2)), h&1 == 0
	}
	return 0, false
}

// sessionDay tells whether an intermittent or dormant device has a data
// session on day dn.
func (s *Simulator) sessionDay(dev *device, dn int64) bool {
	k, phase := s.spans(dev)
	got, ok := s.spanSession(dev, (dn+phase)/k)
	return ok && got == dn
}

// smsDay tells whether a dormant device has an SMS-only day on d (one
// without a session).
func (s *Simulator) smsDay(dev *device, dn int64) bool {
	return dev.class == Dormant && mix(uint64(s.opts.Seed), uint64(dev.index), uint64(dn), 15)%dormantSMSOneIn == 0 &&
		!s.sessionDay(dev, dn)
}

// lastSession returns the latest session of dev that started at or before
// now, looking back as far as the history serves Starts (the retention
// floor); false if none. It visits only the days that can hold one: a
// device list page asks this of 2,000 devices.
func (s *Simulator) lastSession(dev *device, now time.Time) (session, bool) {
	floor, today := retentionFloor(now), dayOf(now)
	var buf [4]session
	latest := func(d time.Time) (session, bool) {
		sess := s.sessionsOn(dev, d, buf[:0])
		for j := len(sess) - 1; j >= 0; j-- {
			if !sess[j].start.After(now) {
				return sess[j], true
			}
		}
		return session{}, false
	}
	switch dev.class {
	case Intermittent, Dormant:
		k, phase := s.spans(dev)
		floorDN, todayDN := floor.Unix()/86400, today.Unix()/86400
		for sp := (todayDN + phase) / k; sp*k-phase+k-1 >= floorDN; sp-- {
			if dn, ok := s.spanSession(dev, sp); ok && dn <= todayDN && dn >= floorDN {
				if last, ok := latest(time.Unix(dn*86400, 0).UTC()); ok {
					return last, true
				}
			}
		}
		return session{}, false
	}
	d := today
	if q := dev.quietFrom; !q.IsZero() && !d.Before(q) {
		d = q.Add(-day)
	}
	for ; !d.Before(floor); d = d.Add(-day) {
		if s.sessionCount(dev, d) == 0 {
			continue
		}
		if last, ok := latest(d); ok {
			return last, true
		}
	}
	return session{}, false
}

// indexOf finds the device that has identifier id of kind (lower-case) by
// undoing genDevice's formats, and checks it: the account is never stored,
// so there is no table to look it up in.
func (s *Simulator) indexOf(kind, id string) (int, bool) {
	seed := uint64(s.opts.Seed)
	num := func(prefix string, base int) (uint64, bool) {
		rest, ok := strings.CutPrefix(id, prefix)
		if !ok || rest == "" {
			return 0, false
		}
		v, err := strconv.ParseUint(rest, base, 64)
		return v, err == nil
	}
	var u uint64
	var ok bool
	switch kind {
	case "iccid":
		if u, ok = num("8914800", 10); ok {
			base := (seed % 1000) * 1_000_000_000
			u, ok = u-base, u >= base
		}
	case "imei":
		if u, ok = num("35", 10); ok {
			base := (seed % 97) * 10_000_000_000
			u, ok = (u-base)/3, u >= base && (u-base)%3 == 0
		}
	case "mdn", "msisdn":
		lead := "1"
		if kind == "mdn" {
			lead = ""
		}
		u, ok = num(lead+strconv.FormatUint(2+seed%7, 10), 10)
	case "eid":
		u, ok = num("8904903200", 10)
	case "meid":
		u, ok = num("A10000", 16)
	case "esn":
		if u, ok = num("", 10); ok {
			u, ok = u-80_000_000_000, u >= 80_000_000_000
		}
	}
	if !ok || u >= uint64(s.opts.Devices) {
		return 0, false
	}
	d := s.device(int(u))
	return int(u), d.id(kind) == id
}
