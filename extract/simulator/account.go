package simulator

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The account is generated, never stored: every device-day is a pure
// function of (seed, device, day), so 10,000 devices × 365 days cost no
// memory and every machine serves the same bytes for the same seed.

// mix is splitmix64: a cheap, well-distributed hash of its inputs.
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

// ID is one identifier of a device, kind lower-case.
type ID struct{ Kind, ID string }

func (i ID) String() string { return i.Kind + ":" + i.ID }

// device is a generated device.
type device struct {
	index    int
	apiID    int64 // the API's internal DeviceId, the device list cursor
	ids      []ID  // lower-case kinds, in the order sent
	spelled  []string
	state    string
	offset   *time.Location // zone of its connection events
	silent   bool           // no usage, no sessions
	intlPct  uint64         // share of international bytes, percent
	unit     string         // rated usage unit
	cycleDay int            // billing cycle start day
	// deactivatedAt is the day a deactivated device went quiet: it has
	// history before, nothing from then on.
	deactivatedAt time.Time
}

// activeOn tells whether the device could use the network on day.
func (d device) activeOn(day time.Time) bool {
	return d.deactivatedAt.IsZero() || day.Before(d.deactivatedAt)
}

var kindSpellings = map[string][]string{
	"iccid":  {"iccid", "ICCID", "iccId"},
	"imei":   {"imei", "IMEI", "Imei"},
	"mdn":    {"mdn", "MDN", "Mdn"},
	"msisdn": {"msisdn", "MSISDN", "MsIsdn"},
	"meid":   {"meid", "MEID", "Meid"},
	"esn":    {"esn", "ESN", "Esn"},
	"eid":    {"eid", "EID", "Eid"},
}

var zones = []*time.Location{
	time.FixedZone("", -5*3600),
	time.UTC,
	time.FixedZone("", 2*3600),
	time.UTC,
}

func (s *Simulator) genDevice(i int) device {
	seed := uint64(s.opts.Seed)
	h := mix(seed, uint64(i), 1)
	d := device{index: i, apiID: 1_000_000 + int64(i)*7 + int64(h%5)}
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
	switch {
	case i%20 == 7:
		d.state = "deactive"
		d.deactivatedAt = s.epoch.AddDate(0, 0, -(10 + i%20))
	case i%33 == 5:
		d.state = "suspend"
	default:
		d.state = "active"
	}
	d.offset = zones[i%len(zones)]
	d.silent = i%17 == 3
	if h%3 == 0 {
		d.intlPct = 1 + (h>>8)%15
	}
	d.unit = []string{"KB", "MB", "GB"}[(h>>16)%3]
	d.cycleDay = 1 + int((h>>24)%28)
	return d
}

// identity is the warehouse's identity rule (SPEC §5).
func (d device) identity() ID {
	for _, kind := range []string{"iccid", "imei", "meid", "esn", "mdn", "msisdn", "eid"} {
		for _, id := range d.ids {
			if id.Kind == kind {
				return id
			}
		}
	}
	return ID{}
}

func (d device) id(kind string) string {
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

// day returns day d's usage of device dev as served at now: the most recent
// days are provisional (SMS arrives up to 3 days late; bytes a little too).
func (s *Simulator) usage(dev device, day time.Time, now time.Time) usageDay {
	h := mix(uint64(s.opts.Seed), uint64(dev.index), uint64(day.Unix()/86400), 2)
	var u usageDay
	if h%9 != 0 { // some days are idle
		u.bytes = int64(h>>8) % 50_000_000
		u.mo = int64((h >> 40) % 6)
		u.mt = int64((h >> 48) % 9)
	}
	age := int64(dayOf(now).Sub(day) / (24 * time.Hour))
	if age < 3 {
		u.mo = u.mo * (age + 1) / 4
		u.mt = u.mt * (age + 1) / 4
		u.bytes -= u.bytes / (10 * (age + 1))
	}
	u.intl = u.bytes * int64(dev.intlPct) / 100
	u.domestic = u.bytes - u.intl
	return u
}

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// retentionFloor is the oldest instant served: 12 months before today.
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

// sessionsOn returns the sessions that start on day.
func (s *Simulator) sessionsOn(dev device, day time.Time) []session {
	if dev.silent || !dev.activeOn(day) {
		return nil
	}
	dn := uint64(day.Unix() / 86400)
	n := int(mix(uint64(s.opts.Seed), uint64(dev.index), dn, 3) % 4)
	out := make([]session, n)
	for j := range out {
		h := mix(uint64(s.opts.Seed), uint64(dev.index), dn, 4, uint64(j))
		h2 := mix(h, 5)
		// Sessions of a day start in its j-th quarter, so they never overlap.
		start := day.Add(time.Duration(j*21600+int(h%20000)) * time.Second)
		dur := time.Duration(60+int((h>>16)%40000)) * time.Second
		out[j] = session{
			id:          strings.ToUpper(strconv.FormatUint(h>>32|1<<31, 16)),
			start:       start,
			stop:        start.Add(dur),
			in:          int64(h2 % 20_000_000),
			out:         int64((h2 >> 24) % 400_000_000),
			inPk:        int64((h2 >> 8) % 200_000),
			outPk:       int64((h2 >> 16) % 300_000),
			cause:       causes[(h2>>40)%uint64(len(causes))],
			correlation: strconv.FormatUint(h2>>20, 36),
			ip:          fmt.Sprintf("100.%d.%d.%d", 64+(h>>8)%64, (h>>20)%256, 1+(h>>28)%254),
			nasIP:       strconv.FormatUint(175505000+(h2>>50)%1000, 10),
			nasPort:     strconv.FormatUint(500000+(h2>>30)%100000, 10),
		}
	}
	return out
}

// event is one served connection event.
type event struct {
	at    time.Time
	start bool
	s     *session
}

// events returns the device's events with from ≤ at ≤ to that have happened
// by now, oldest first. A session whose Stop lies ahead of now is open.
func (s *Simulator) events(dev device, from, to, now time.Time) []event {
	if to.After(now) {
		to = now
	}
	if fl := retentionFloor(now); from.Before(fl) {
		from = fl
	}
	if from.After(to) {
		return nil
	}
	var out []event
	// Sessions last less than a day, so one that starts the day before can
	// still stop inside the range.
	for day := dayOf(from).AddDate(0, 0, -1); !day.After(to); day = day.AddDate(0, 0, 1) {
		ss := s.sessionsOn(dev, day)
		for j := range ss {
			sess := &ss[j]
			if !sess.start.Before(from) && !sess.start.After(to) {
				out = append(out, event{at: sess.start, start: true, s: sess})
			}
			if !sess.stop.Before(from) && !sess.stop.After(to) {
				out = append(out, event{at: sess.stop, s: sess})
			}
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].at.Before(out[b].at) })
	return out
}

// attrs returns the event's attributes in the order the vendor's page shows
// them, every value a string.
func (e event) attrs(dev device) [][2]string {
	s := e.s
	kind, bytes, in, out, inPk, outPk, secs, cause, begin := "Stop", s.in+s.out, s.in, s.out, s.inPk, s.outPk, int64(s.stop.Sub(s.start)/time.Second), s.cause, "0"
	if e.start {
		kind, bytes, in, out, inPk, outPk, secs, cause, begin = "Start", 0, 0, 0, 0, 0, 0, "0", "1"
	}
	msisdn := dev.id("msisdn")
	if msisdn == "" {
		msisdn = "1" + dev.identity().ID[len(dev.identity().ID)-10:]
	}
	i := strconv.FormatInt
	return [][2]string{
		{"BytesUsed", i(bytes, 10)},
		{"Event", kind},
		{"Msisdn", msisdn},
		{"Username", msisdn + "@vzw3g.com"},
		{"Account3Gpp2BeginSession", begin},
		{"Account3Gpp2CorrelationId", s.correlation},
		{"Account3Gpp2OriginatingNumberSdbs", "0"},
		{"Account3Gpp2ReleaseIndicator", "0"},
		{"Account3Gpp2TerminatingNumberSdbs", "0"},
		{"InputBytes", i(in, 10)},
		{"OutputBytes", i(out, 10)},
		{"AccountSessionId", s.id},
		{"AccountSessionTime", i(secs, 10)},
		{"AccountTerminateCause", cause},
		{"CallingStationId", msisdn},
		{"FramedIpAddress", s.ip},
		{"Account3Gpp2ActiveTime", "0"},
		{"Account3Gpp2BadPppFrameCount", "0"},
		{"Account3Gpp2FchFrameSize", "0"},
		{"Account3Gpp2ForwardFchMuxOption", "0"},
		{"Account3Gpp2ForwardFchRc", "0"},
		{"Account3Gpp2ForwardTrafficType", "0"},
		{"Account3Gpp2InboundMobileIpSigBytes", "0"},
		{"Account3Gpp2IpTechnology", "0"},
		{"Account3Gpp2OriginatingSdbByteCount", "0"},
		{"Account3Gpp2OutboundMobileIpSigBytes", "0"},
		{"Account3Gpp2ReverseFchMuxOption", "0"},
		{"Account3Gpp2ReverseFchRc", "0"},
		{"Account3Gpp2ReverseTrafficType", "0"},
		{"Account3Gpp2ServiceOption", "595"},
		{"Account3Gpp2SessionContinue", "0"},
		{"Account3Gpp2TerminatingSdbByteCount", "0"},
		{"AccountInputPackets", i(inPk, 10)},
		{"AccountOutputPackets", i(outPk, 10)},
		{"AccountStatusType", kind},
		{"NasIpAddress", s.nasIP},
		{"NasPort", s.nasPort},
		{"Account3Gpp2CompulsoryTunnelIndicator", "0"},
		{"Account3Gpp2HomeAgentIpAddress", "66.174.20.198"},
	}
}

// rated is a device's rated usage for the billing cycle containing now.
type rated struct {
	start, end, reset time.Time
	usage             float64
	unit              string
}

func (s *Simulator) rated(dev device, now time.Time) rated {
	today := dayOf(now)
	start := time.Date(today.Year(), today.Month(), dev.cycleDay, 0, 0, 0, 0, time.UTC)
	if start.After(today) {
		start = start.AddDate(0, -1, 0)
	}
	end := start.AddDate(0, 1, -1)
	// Rated usage is about two days in arrears.
	var total int64
	for d := start; d.Before(today.AddDate(0, 0, -2)); d = d.AddDate(0, 0, 1) {
		total += s.usage(dev, d, now).bytes
	}
	factor := map[string]float64{"KB": 1e3, "MB": 1e6, "GB": 1e9}[dev.unit]
	return rated{start: start, end: end, reset: end.AddDate(0, 0, 1), usage: float64(total) / factor, unit: dev.unit}
}
