package simulator

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// The account is generated, never stored: every device is a pure function
// of (seed, device) and every device-day of (seed, device, day), so a
// million devices × 365 days cost no memory (a request generates the
// devices it needs) and every machine serves the same bytes for the same
// seed and clock.

// mix hashes its inputs (a splitmix64 chain): cheap and well distributed.
func mix(vals ...uint64) uint64 {
	var h uint64 = 0x9e3779b97f4a7c15
	for _, v := range vals {
		h ^= v + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2)
		z := h
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		h = z ^ (z >> 31)
	}
	return h
}

// ID is one identifier of a device, its kind lower-case.
type ID struct{ Kind, ID string }

func (i ID) String() string { return i.Kind + ":" + i.ID }

// device is a generated device.
type device struct {
	index    int
	apiID    int64 // the API's internal DeviceId, the device list's cursor
	ids      []ID  // lower-case kinds, in the order sent
	spelled  []string
	ident    ID // warehouse identity (identityOrder)
	identIdx int
	msisdn   string // as sent in connection events
	state    string
	offset   *time.Location // zone of its connection events
	silent   bool           // no usage, no sessions
	class    Class          // NoClass without a fleet mix
	intlPct  uint64         // share of international bytes, percent
	unit     string         // rated usage unit
	cycleDay int            // billing cycle start day
	// quietFrom is the day a deactivated (or, in a fleet, suspended)
	// device went quiet: it has history before, nothing from then on.
	quietFrom time.Time
	created   time.Time // createdAt; lastActivationDate is a day later
}

// activeOn tells whether the device could use the network on day.
func (d *device) activeOn(day time.Time) bool {
	return d.quietFrom.IsZero() || day.Before(d.quietFrom)
}

// The spellings of each kind real payloads use; a device keeps one.
var kindSpellings = map[string][]string{
	"iccid":  {"iccid", "ICCID", "iccId"},
	"imei":   {"imei", "IMEI", "Imei"},
	"mdn":    {"mdn", "MDN", "Mdn"},
	"msisdn": {"msisdn", "MSISDN", "MsIsdn"},
	"meid":   {"meid", "MEID", "Meid"},
	"esn":    {"esn", "ESN", "Esn"},
	"eid":    {"eid", "EID", "Eid"},
}

// zones of the devices' connection events: the API sends each event with
// the offset of the network element that saw it.
var zones = []*time.Location{
	time.FixedZone("", -5*3600),
	time.UTC,
	time.FixedZone("", 2*3600),
	time.UTC,
}

// identityOrder is the warehouse's identity rule: a device is addressed by
// the first of these kinds it has.
var identityOrder = []string{"iccid", "imei", "meid", "esn", "mdn", "msisdn", "eid"}

// apiID is device i's DeviceId: ascending with i, so the device list's
// cursor finds its place by bisection.
func (s *Simulator) apiID(i int) int64 {
	return 1_000_000 + int64(i)*7 + int64(mix(uint64(s.opts.Seed), uint64(i), 1)%5)
}

// device generates device i (0 ≤ i < Options.Devices).
func (s *Simulator) device(i int) device {
	seed := uint64(s.opts.Seed)
	h := mix(seed, uint64(i), 1)
	d := device{index: i, apiID: s.apiID(i)}
	u := uint64(i)
	iccid := fmt.Sprintf("8914800%013d", (seed%1000)*1_000_000_000+u)
	imei := fmt.Sprintf("35%013d", (seed%97)*10_000_000_000+u*3)
	mdn := fmt.Sprintf("%d%09d", 2+(seed%7), u)
	msisdn := "1" + mdn
	switch {
	case i%20 == 1: // a module without a SIM identifier
		d.ids = []ID{{"imei", imei}}
	case i%20 == 2: // an eSIM known only by its EID
		d.ids = []ID{{"eid", fmt.Sprintf("8904903200%022d", u)}}
	case i%20 == 3: // a CDMA device
		d.ids = []ID{{"meid", fmt.Sprintf("A10000%08X", u)}, {"esn", fmt.Sprintf("%011d", 80000000000+u)}, {"mdn", mdn}}
	case i%5 == 4: // data-only, no phone number
		d.ids = []ID{{"iccid", iccid}, {"imei", imei}}
	default:
		d.ids = []ID{{"imei", imei}, {"iccid", iccid}, {"mdn", mdn}, {"msisdn", msisdn}}
	}
	for _, id := range d.ids {
		sp := kindSpellings[id.Kind]
		d.spelled = append(d.spelled, sp[(i+len(id.ID))%len(sp)])
	}
	d.identIdx = -1
	for _, kind := range identityOrder {
		for j, id := range d.ids {
			if id.Kind == kind && d.identIdx < 0 {
				d.ident, d.identIdx = id, j
			}
		}
	}
	d.msisdn = d.id("msisdn")
	if d.msisdn == "" {
		// Devices without an MSISDN still show a calling number in their
		// events: the network's, derived from the device.
		d.msisdn = fmt.Sprintf("1%d%09d", 2+(seed%7), u)
	}
	d.created = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
	d.state = "active"
	if s.opts.Fleet.IsZero() {
		switch {
		case i%20 == 7:
			d.state = "deactive"
			d.quietFrom = s.epoch.AddDate(0, 0, -(10 + int(h>>32)%40))
		case i%33 == 5:
			d.state = "suspend"
		}
		d.silent = i%17 == 3
	} else {
		d.class = s.opts.Fleet.classOf(seed, i)
		// Added over two years before the history served.
		d.created = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(mix(seed, uint64(i), 18)%17520) * time.Hour)
		switch d.class {
		case Suspended:
			d.state = "suspend"
			d.quietFrom = s.epoch.AddDate(0, 0, -(10 + int(h>>32)%50))
		case Deactivated:
			d.state = "deactive"
			d.quietFrom = s.epoch.AddDate(0, 0, -(10 + int(h>>32)%50))
		}
	}
	d.offset = zones[i%len(zones)]
	if h%3 == 0 {
		d.intlPct = 1 + (h>>8)%15
	}
	d.unit = []string{"KB", "MB", "GB"}[(h>>16)%3]
	d.cycleDay = 1 + int((h>>24)%28)
	return d
}

// identity is the warehouse's identity of the device.
func (d *device) identity() ID { return d.ident }

func (d *device) id(kind string) string {
	for _, id := range d.ids {
		if id.Kind == kind {
			return id.ID
		}
	}
	return ""
}

// usageDay is one day of usage as served at some clock time.
type usageDay struct {
	bytes, mo, mt, domestic, intl int64
}

func (u usageDay) sms() int64 { return u.mo + u.mt }

const day = 24 * time.Hour

// usage returns day's usage of dev as served at now, and whether dev has a
// usage record for that day at all (before the checks of usageSpan:
// retention, the clock, a device gone quiet). The three most recent days
// are provisional, as the usage page describes: SMS counts arrive up to
// three days late, and a little of the bytes too. Without a fleet mix
// every day of a device that is not silent has a record, idle days
// included; in a fleet a day has one when the device had a session that
// day (daily: every day), or, dormant, SMS that have arrived.
func (s *Simulator) usage(dev *device, d time.Time, now time.Time) (usageDay, bool) {
	dn := d.Unix() / 86400
	h := mix(uint64(s.opts.Seed), uint64(dev.index), uint64(dn), 2)
	var u usageDay
	smsOnly := false
	switch dev.class {
	case NoClass:
		if dev.silent {
			return u, false
		}
		if h%9 != 0 { // some days are idle
			u.bytes = int64(h>>8) % 50_000_000
			u.mo = int64((h >> 40) % 6)
			u.mt = int64((h >> 48) % 9)
		}
	case Intermittent, Dormant:
		if !s.sessionDay(dev, dn) {
			if !s.smsDay(dev, dn) {
				return u, false
			}
			smsOnly = true
			u.mo = int64((h >> 40) % 3)
			u.mt = 1 + int64((h>>48)%4)
			break
		}
		fallthrough
	default: // a day with data: Daily, Intermittent and Dormant session days
		if d.Equal(dayOf(now)) {
			// Today's record appears with its first session.
			var buf [4]session
			if sess := s.sessionsOn(dev, d, buf[:0]); len(sess) == 0 || sess[0].start.After(now) {
				return u, false
			}
		}
		u.bytes = 1 + int64(h>>8)%50_000_000
		u.mo = int64((h >> 40) % 6)
		u.mt = int64((h >> 48) % 9)
	}
	if age := int64(dayOf(now).Sub(d) / day); age < 3 {
		u.mo = u.mo * (age + 1) / 4
		u.mt = u.mt * (age + 1) / 4
		u.bytes -= u.bytes / (10 * (age + 1))
	}
	u.intl = u.bytes * int64(dev.intlPct) / 100
	u.domestic = u.bytes - u.intl
	if smsOnly && u.sms() == 0 {
		return u, false // its SMS have not arrived yet
	}
	return u, true
}

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// retentionFloor is the oldest instant served: 12 months before today.
// The simulator keeps its own copy of this and of dayOf rather than the
// client's (schema.RetentionFloor, schema.Day): it is the API's model and the
// tests' ground truth, so a mistake in the client's must not hide in it.
func retentionFloor(now time.Time) time.Time { return dayOf(now).AddDate(-1, 0, 0) }

// session is one generated connection session.
type session struct {
	id          string
	start, stop time.Time
	in, out     int64
	inPk, outPk int64
	cause       string
	correlation string
	ip          string
	nasIP       string
	nasPort     string
}

var causes = []string{"User_Request", "Idle_Timeout", "NAS_Request", "Admin_Reset", "Lost_Carrier"}

// Session layout of a day: the first starts after 03:00 (the previous
// day's last may run until then), the others follow without overlap; the
// last starts before 23:00 and may run past midnight.
const (
	firstStart  = 3 * time.Hour
	lastStartBy = 23 * time.Hour
	spillUntil  = 27 * time.Hour
)

// sessionsOn appends the sessions of dev that start on d.
func (s *Simulator) sessionsOn(dev *device, d time.Time, out []session) []session {
	n := s.sessionCount(dev, d)
	if n == 0 {
		return out
	}
	seed, dn := uint64(s.opts.Seed), uint64(d.Unix()/86400)
	t := d.Add(firstStart + time.Minute + time.Duration(mix(seed, uint64(dev.index), dn, 6)%3600)*time.Second)
	for j := 0; j < n; j++ {
		h := mix(seed, uint64(dev.index), dn, 4, uint64(j))
		h2 := mix(h, 5)
		var start, stop time.Time
		if j < n-1 {
			start = t.Add(time.Duration(60+h%5400) * time.Second)
			stop = start.Add(time.Duration(60+(h>>16)%14400) * time.Second)
		} else {
			room := int64(d.Add(lastStartBy).Sub(t) / time.Second)
			start = t.Add(time.Duration(60+int64(h%uint64(max(room, 1)))) * time.Second)
			stop = start.Add(time.Duration(60+(h>>16)%43200) * time.Second)
			if lim := d.Add(spillUntil); stop.After(lim) {
				stop = lim
			}
		}
		t = stop
		out = append(out, session{
			id:          sessionID(seed, uint64(dev.index), dn*4+uint64(j)),
			start:       start,
			stop:        stop,
			in:          int64(h2 % 20_000_000),
			out:         int64((h2 >> 24) % 400_000_000),
			inPk:        int64((h2 >> 8) % 200_000),
			outPk:       int64((h2 >> 16) % 300_000),
			cause:       causes[(h2>>40)%uint64(len(causes))],
			correlation: strconv.FormatUint(h2>>20|1<<43, 36)[1:],
			ip:          fmt.Sprintf("100.%d.%d.%d", 64+(h>>8)%64, (h>>20)%256, 1+(h>>28)%254),
			nasIP:       strconv.FormatUint(175505000+(h2>>50)%1000, 10),
			nasPort:     strconv.FormatUint(500000+(h2>>30)%100000, 10),
		})
	}
	return out
}

// sessionID is 8 upper-case hex digits, as the vendor's, unique within a
// device: a bijection of the session's ordinal (a collision would pair a
// Start with another session's Stop).
func sessionID(seed, dev, ordinal uint64) string {
	x := uint32(ordinal) ^ uint32(mix(seed, dev, 7))
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	const hexdigits = "0123456789ABCDEF"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = hexdigits[x&15]
		x >>= 4
	}
	return string(b[:])
}

// event is one served connection event: the Start or Stop of sess[si].
type event struct {
	at    time.Time
	start bool
	si    int32
}

// events returns dev's events with from ≤ at ≤ to that have happened by
// now (a session whose Stop lies ahead of now is open), oldest first, and
// the sessions they belong to. With limit > 0 it stops once it knows more
// than limit events exist, returns the first limit and more = true.
func (s *Simulator) events(dev *device, from, to, now time.Time, limit int) (evs []event, sess []session, more bool) {
	if to.After(now) {
		to = now
	}
	if fl := retentionFloor(now); from.Before(fl) {
		from = fl
	}
	if from.After(to) {
		return nil, nil, false
	}
	// A session lasts less than a day, so one that starts the day before
	// the range can still stop inside it.
	for d := dayOf(from).Add(-day); !d.After(to); d = d.Add(day) {
		first := len(sess)
		sess = s.sessionsOn(dev, d, sess)
		for j := first; j < len(sess); j++ {
			x := &sess[j]
			if !x.start.Before(from) && !x.start.After(to) {
				evs = append(evs, event{at: x.start, start: true, si: int32(j)})
			}
			if !x.stop.Before(from) && !x.stop.After(to) {
				evs = append(evs, event{at: x.stop, si: int32(j)})
			}
		}
		if limit > 0 && len(evs) > limit {
			// Every event before the next day is known now: only a Stop
			// can lie beyond it.
			next := d.Add(day)
			known := 0
			for _, e := range evs {
				if e.at.Before(next) {
					known++
				}
			}
			if known > limit {
				break
			}
		}
	}
	slices.SortStableFunc(evs, func(a, b event) int { return a.at.Compare(b.at) })
	if limit > 0 && len(evs) > limit {
		evs, more = evs[:limit], true
	}
	return evs, sess, more
}

// attrSink receives a connection event's attributes in the order the
// vendor's page shows them. Numeric ones come as numbers so a sink can
// write them without formatting a string.
type attrSink interface {
	str(key, val string)
	num(key string, val int64)
}

// eventAttrs sends e's attributes to sink: the full set of the connection
// history page, every value a string on the wire.
func eventAttrs(dev *device, e event, sess []session, sink attrSink) {
	x := &sess[e.si]
	kind, bytes, in, out, inPk, outPk, secs, cause, begin := "Stop", x.in+x.out, x.in, x.out, x.inPk, x.outPk, int64(x.stop.Sub(x.start)/time.Second), x.cause, int64(0)
	if e.start {
		kind, bytes, in, out, inPk, outPk, secs, cause, begin = "Start", 0, 0, 0, 0, 0, 0, "0", 1
	}
	sink.num("BytesUsed", bytes)
	sink.str("Event", kind)
	sink.str("Msisdn", dev.msisdn)
	sink.str("Username", dev.msisdn+"@vzw3g.com")
	sink.num("Account3Gpp2BeginSession", begin)
	sink.str("Account3Gpp2CorrelationId", x.correlation)
	sink.num("Account3Gpp2OriginatingNumberSdbs", 0)
	sink.num("Account3Gpp2ReleaseIndicator", 0)
	sink.num("Account3Gpp2TerminatingNumberSdbs", 0)
	sink.num("InputBytes", in)
	sink.num("OutputBytes", out)
	sink.str("AccountSessionId", x.id)
	sink.num("AccountSessionTime", secs)
	sink.str("AccountTerminateCause", cause)
	sink.str("CallingStationId", dev.msisdn)
	sink.str("FramedIpAddress", x.ip)
	for _, k := range zeroAttrs {
		sink.num(k, 0)
	}
	sink.num("Account3Gpp2ServiceOption", 595)
	sink.num("Account3Gpp2SessionContinue", 0)
	sink.num("Account3Gpp2TerminatingSdbByteCount", 0)
	sink.num("AccountInputPackets", inPk)
	sink.num("AccountOutputPackets", outPk)
	sink.str("AccountStatusType", kind)
	sink.str("NasIpAddress", x.nasIP)
	sink.str("NasPort", x.nasPort)
	sink.num("Account3Gpp2CompulsoryTunnelIndicator", 0)
	sink.str("Account3Gpp2HomeAgentIpAddress", "66.174.20.198")
}

var zeroAttrs = []string{
	"Account3Gpp2ActiveTime", "Account3Gpp2BadPppFrameCount", "Account3Gpp2FchFrameSize",
	"Account3Gpp2ForwardFchMuxOption", "Account3Gpp2ForwardFchRc", "Account3Gpp2ForwardTrafficType",
	"Account3Gpp2InboundMobileIpSigBytes", "Account3Gpp2IpTechnology", "Account3Gpp2OriginatingSdbByteCount",
	"Account3Gpp2OutboundMobileIpSigBytes", "Account3Gpp2ReverseFchMuxOption", "Account3Gpp2ReverseFchRc",
	"Account3Gpp2ReverseTrafficType",
}

// rated is a device's rated usage for the billing cycle containing now.
type rated struct {
	start, end, reset time.Time
	usage             float64
	unit              string
}

var unitBytes = map[string]float64{"KB": 1e3, "MB": 1e6, "GB": 1e9}

// cycle is the billing cycle containing now: its first and last day.
func cycle(dev *device, now time.Time) (start, end time.Time) {
	today := dayOf(now)
	start = time.Date(today.Year(), today.Month(), dev.cycleDay, 0, 0, 0, 0, time.UTC)
	if start.After(today) {
		start = start.AddDate(0, -1, 0)
	}
	return start, start.AddDate(0, 1, -1)
}

func (s *Simulator) rated(dev *device, now time.Time) rated {
	today := dayOf(now)
	start, end := cycle(dev, now)
	// Rated usage is about two days in arrears.
	var total int64
	for d := start; d.Before(today.AddDate(0, 0, -2)); d = d.Add(day) {
		if u, ok := s.usage(dev, d, now); ok && dev.activeOn(d) {
			total += u.bytes
		}
	}
	return rated{start: start, end: end, reset: end.Add(day), usage: float64(total) / unitBytes[dev.unit], unit: dev.unit}
}
