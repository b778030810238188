package simulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The history pages are appended by hand into pooled buffers: benchmarks
// push tens of thousands of requests a second through the simulator, and
// reflection-based encoding of 40 attributes an event would dominate.

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 4<<20 {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

// needsEscape marks the bytes a JSON string cannot carry as they are (or
// that encoding/json escapes, to stay byte-identical with it).
var needsEscape = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&'
	}
	return t
}()

// appendStr appends s as a JSON string.
func appendStr(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if needsEscape[s[i]] {
			q, _ := json.Marshal(s) // rare: only the hostile quirk key needs escaping
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendKV appends a key/value attribute. The key must be a constant that
// needs no escaping (every key the simulator sends but the hostile quirk
// key, which goes through appendKVEscaped): scanning 40 constant keys an
// event was most of the cost of a connection page.
func appendKV(b []byte, key, val string) []byte {
	b = append(b, `{"key":"`...)
	b = append(b, key...)
	b = append(b, `","value":`...)
	b = appendStr(b, val)
	return append(b, '}')
}

func appendKVEscaped(b []byte, key, val string) []byte {
	b = append(b, `{"key":`...)
	b = appendStr(b, key)
	b = append(b, `,"value":`...)
	b = appendStr(b, val)
	return append(b, '}')
}

// appendKVInt appends an attribute whose value is an integer: a string, as
// the API sends it, or a bare JSON number. The key is as for appendKV.
func appendKVInt(b []byte, key string, v int64, asNumber bool) []byte {
	b = append(b, `{"key":"`...)
	b = append(b, key...)
	b = append(b, `","value":`...)
	if !asNumber {
		b = append(b, '"')
	}
	b = strconv.AppendInt(b, v, 10)
	if !asNumber {
		b = append(b, '"')
	}
	return append(b, '}')
}

func appendInt(b []byte, v int64, asString bool) []byte {
	if asString {
		b = append(b, '"')
	}
	b = strconv.AppendInt(b, v, 10)
	if asString {
		b = append(b, '"')
	}
	return b
}

func (s *Simulator) appendDeviceID(b []byte, dev *device) []byte {
	b = append(b, `"deviceId":{"id":`...)
	b = appendStr(b, dev.ident.ID)
	b = append(b, `,"kind":`...)
	b = appendStr(b, dev.spelled[dev.identIdx])
	return append(b, '}')
}

// usageSpan returns the days dev may have usage records for in [earliest,
// latest] at now: whole days whose midnight lies in the range, within
// retention, up to today, before a device gone quiet went quiet. n is 0
// when there are none. Which of them have a record, usage tells.
func usageSpan(dev *device, earliest, latest, now time.Time) (from time.Time, n int) {
	if dev.silent {
		return time.Time{}, 0
	}
	from = dayOf(earliest)
	if from.Before(earliest) {
		from = from.Add(day)
	}
	if fl := retentionFloor(now); from.Before(fl) {
		from = fl
	}
	to := latest
	if to.After(now) {
		to = now
	}
	if q := dev.quietFrom; !q.IsZero() && !to.Before(q) {
		to = q.Add(-time.Nanosecond)
	}
	if to.Before(from) {
		return from, 0
	}
	return from, int(to.Sub(from)/day) + 1
}

// usageDays calls fn with each usage record of dev in [earliest, latest]
// as served at now, oldest first, while fn returns true.
func (s *Simulator) usageDays(dev *device, earliest, latest, now time.Time, fn func(d time.Time, u usageDay) bool) {
	first, n := usageSpan(dev, earliest, latest, now)
	for k := 0; k < n; k++ {
		d := first.Add(time.Duration(k) * day)
		if u, ok := s.usage(dev, d, now); ok && !fn(d, u) {
			return
		}
	}
}

// Quirk devices: which device each data quirk affects.
const (
	quirkDevUnknown   = 0 // UnknownKeys, BadTimestamp, BadValue, HostileKeys, KeySeed, Implausible
	quirkDevOccuredAt = 1
	quirkDevNumbers   = 4
	quirkDevStrings   = 5
	badTimestampAge   = 10
	badValueAge       = 11
)

// implausibleAge says what the Implausible quirk makes of device 0's usage
// record of age days ago: a negative byte count, a date in year 9999, the
// zero date, or "" for none.
func implausibleAge(age int) string {
	switch age {
	case 12:
		return "negative"
	case 13:
		return "9999-12-31T00:00:00Z"
	case 14:
		return "0001-01-01T00:00:00Z"
	}
	return ""
}

// usageRec is a usage record of a page.
type usageRec struct {
	d time.Time
	u usageDay
}

func (s *Simulator) appendUsagePage(b []byte, dev *device, earliest, latest, now time.Time) ([]byte, bool) {
	// hasMoreData comes first on the wire: gather the page, and one more
	// record to know.
	var recs [pageSize + 1]usageRec
	n := 0
	s.usageDays(dev, earliest, latest, now, func(d time.Time, u usageDay) bool {
		recs[n] = usageRec{d, u}
		n++
		return n <= s.opts.HistoryPageSize
	})
	more := n > s.opts.HistoryPageSize
	if more {
		n = s.opts.HistoryPageSize
	}
	q := s.opts.Quirks
	numbers := q.NumbersAsNumbers && dev.index == quirkDevNumbers
	strs := q.NumbersAsStrings && dev.index == quirkDevStrings
	today := dayOf(now)
	b = append(b, `{"hasMoreData":`...)
	b = strconv.AppendBool(b, more)
	b = append(b, ',')
	b = s.appendDeviceID(b, dev)
	b = append(b, `,"usageHistory":[`...)
	for i := 0; i < n; i++ {
		d, u := recs[i].d, recs[i].u
		if i > 0 {
			b = append(b, ',')
		}
		age := int(today.Sub(d) / day)
		odd := ""
		if q.Implausible && dev.index == quirkDevUnknown {
			odd = implausibleAge(age)
		}
		b = append(b, `{"bytesUsed":`...)
		if odd == "negative" {
			b = appendInt(b, -u.bytes-1, strs)
		} else {
			b = appendInt(b, u.bytes, strs)
		}
		b = append(b, `,"extendedAttributes":[`...)
		if q.BadValue && dev.index == quirkDevUnknown && age == badValueAge {
			b = appendKV(b, "MoSms", "lots")
		} else {
			b = appendKVInt(b, "MoSms", u.mo, numbers)
		}
		b = append(b, ',')
		b = appendKVInt(b, "MtSms", u.mt, numbers)
		b = append(b, ',')
		b = appendKVInt(b, "domesticUsage", u.domestic, numbers)
		b = append(b, ',')
		b = appendKVInt(b, "internationalUsage", u.intl, numbers)
		if q.UnknownKeys && dev.index == quirkDevUnknown {
			b = append(b, ',')
			b = appendKVInt(b, "RoamingSms", u.mt%3, false)
			b = append(b, ',')
			b = appendKVEscaped(b, hostileKey, "1")
		}
		if dev.index == quirkDevUnknown {
			for _, k := range s.oddKeys {
				b = append(b, `,{"key":`...)
				b = append(b, k.JSON...)
				b = append(b, `,"value":`...)
				b = appendStr(b, k.Value)
				b = append(b, '}')
			}
		}
		b = append(b, `],"smsUsed":`...)
		b = appendInt(b, u.sms(), strs)
		b = append(b, `,"source":"Raw Usage","timestamp":"`...)
		switch {
		case q.BadTimestamp && dev.index == quirkDevUnknown && age == badTimestampAge:
			b = append(b, "2026-13-45T99:00:00Z"...)
		case odd != "" && odd != "negative":
			b = append(b, odd...)
		default:
			b = d.AppendFormat(b, time.RFC3339)
		}
		b = append(b, `"}`...)
	}
	b = append(b, "]}"...)
	return b, more
}

// hostileKey is the UnknownKeys quirk's attribute key that would break a
// loader that builds SQL from keys.
const hostileKey = `x"; DROP TABLE usage_daily; --`

// eventWriter appends a connection event's attributes as JSON.
type eventWriter struct {
	b       []byte
	n       int
	numbers bool
}

func (w *eventWriter) sep() {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
}

func (w *eventWriter) str(key, val string) { w.sep(); w.b = appendKV(w.b, key, val) }
func (w *eventWriter) num(key string, val int64) {
	w.sep()
	w.b = appendKVInt(w.b, key, val, w.numbers)
}

func (s *Simulator) appendConnectionPage(b []byte, dev *device, earliest, latest, now time.Time) ([]byte, bool) {
	evs, sess, more := s.events(dev, earliest, latest, now, s.opts.HistoryPageSize)
	q := s.opts.Quirks
	w := eventWriter{numbers: q.NumbersAsNumbers && dev.index == quirkDevNumbers}
	b = append(b, `{"connectionHistory":[`...)
	for i, e := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"connectionEventAttributes":[`...)
		w.b, w.n = b, 0
		eventAttrs(dev, e, sess, &w)
		if q.UnknownKeys && dev.index == quirkDevUnknown {
			w.str("NasPortType", "Wireless-Other")
		}
		b = w.b
		b = append(b, `],"extendedAttributes":null,`...)
		if q.OccuredAt && dev.index == quirkDevOccuredAt {
			b = append(b, `"occuredAt":"`...)
		} else {
			b = append(b, `"occurredAt":"`...)
		}
		b = e.at.In(dev.offset).AppendFormat(b, time.RFC3339)
		b = append(b, `"}`...)
	}
	b = append(b, `],"hasMoreData":`...)
	b = strconv.AppendBool(b, more)
	return append(b, '}'), more
}

// writePage answers a history page: 202 when there is more to fetch.
func writePage(w http.ResponseWriter, b []byte, more bool) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if more {
		w.WriteHeader(http.StatusAccepted)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	_, _ = w.Write(b)
}

// ratedLayout is the rated usage page's zone-less timestamp.
const ratedLayout = "2006-01-02T15:04:05.000"

type ratedJSON struct {
	DeviceInformation struct {
		BillingEndDate   string  `json:"billingEndDate"`
		BillingResetDate string  `json:"billingResetDate"`
		BillingStartDate string  `json:"billingStartDate"`
		DataUsage        float64 `json:"dataUsage"`
		MDN              int64   `json:"mdn"`
		Unit             string  `json:"unit"`
	} `json:"deviceInformation"`
}

type deviceJSON struct {
	AccountName         string              `json:"accountName"`
	BillingCycleEndDate *string             `json:"billingCycleEndDate"`
	CarrierInformations []carrierJSON       `json:"carrierInformations"`
	Connected           bool                `json:"connected"`
	CreatedAt           string              `json:"createdAt"`
	CustomFields        []map[string]string `json:"customFields"`
	DeviceIDs           []idJSON            `json:"deviceIds"`
	ExtendedAttributes  []kvJSON            `json:"extendedAttributes"`
	GroupNames          []string            `json:"groupNames"`
	IPAddress           string              `json:"ipAddress"`
	LastActivationDate  string              `json:"lastActivationDate"`
	LastConnectionDate  string              `json:"lastConnectionDate"`
}

type carrierJSON struct {
	CarrierName string `json:"carrierName"`
	ServicePlan string `json:"servicePlan"`
	State       string `json:"state"`
}

type idJSON struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

type kvJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

var servicePlans = []string{"M2M-4G-5GB", "M2M-4G-1GB", "IoT-LTE-M-50MB"}

// deviceJSON is d as the device list shows it at now (state, service plan
// and groups as listing says, with churn). connected and
// lastConnectionDate agree with the connection history served at now:
// connected while a session is open (its Start served, its Stop not yet),
// lastConnectionDate the start of the latest session that started by now,
// in the offset of the device's events; "" when there is none in the
// history served.
func (s *Simulator) deviceJSON(d *device, now time.Time) deviceJSON {
	ids := make([]idJSON, len(d.ids))
	for i, id := range d.ids {
		ids[i] = idJSON{ID: id.ID, Kind: d.spelled[i]}
	}
	l := s.listing(d, now)
	dj := deviceJSON{
		AccountName:         s.opts.AccountName,
		CarrierInformations: []carrierJSON{{CarrierName: "Verizon Wireless", ServicePlan: l.ServicePlan, State: l.State}},
		CreatedAt:           d.created.Format(time.RFC3339),
		CustomFields:        []map[string]string{},
		DeviceIDs:           ids,
		ExtendedAttributes:  []kvJSON{{Key: "DeviceId", Value: strconv.FormatInt(d.apiID, 10)}},
		GroupNames:          l.GroupNames,
		IPAddress:           "0.0.0.0",
		LastActivationDate:  d.created.Add(day).Format(time.RFC3339),
	}
	// [choice] The vendor does not publish the format: the cycle's last
	// day, as the rated usage page's billingEndDate, with a zone.
	_, end := cycle(d, now)
	cycleEnd := end.Format(time.RFC3339)
	dj.BillingCycleEndDate = &cycleEnd
	if last, ok := s.lastSession(d, now); ok {
		dj.Connected = last.stop.After(now)
		dj.LastConnectionDate = last.start.In(d.offset).Format(time.RFC3339)
	}
	return dj
}

// appendEndlessPage is the EndlessHistory fault's answer: a full page of
// made-up records step apart from earliest + step, and always more.
func (s *Simulator) appendEndlessPage(b []byte, ep int, dev *device, earliest time.Time, step time.Duration) ([]byte, bool) {
	list := "usageHistory"
	if ep == epConnections {
		list = "connectionHistory"
	}
	b = append(b, `{"hasMoreData":true,`...)
	b = s.appendDeviceID(b, dev)
	b = append(b, `,"`...)
	b = append(b, list...)
	b = append(b, `":[`...)
	for i := 1; i <= s.opts.HistoryPageSize; i++ {
		at := earliest.Add(time.Duration(i) * step).UTC()
		if i > 1 {
			b = append(b, ',')
		}
		if ep == epUsage {
			b = append(b, `{"bytesUsed":1024,"extendedAttributes":[`...)
			b = appendKVInt(b, "MoSms", 0, false)
			b = append(b, `],"smsUsed":0,"source":"Raw Usage","timestamp":"`...)
			b = at.AppendFormat(b, time.RFC3339)
			b = append(b, `"}`...)
			continue
		}
		b = append(b, `{"connectionEventAttributes":[`...)
		b = appendKV(b, "Event", "Start")
		b = append(b, ',')
		b = appendKV(b, "AccountSessionId", strconv.FormatInt(at.Unix(), 16))
		b = append(b, `],"extendedAttributes":null,"occurredAt":"`...)
		b = at.AppendFormat(b, time.RFC3339)
		b = append(b, `"}`...)
	}
	return append(b, "]}"...), true
}

// padding is what writePadded sends, a slice at a time.
var padding = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = 'x'
	}
	return b
}()

// writePadded answers a history page padded to size bytes (or its own
// size, if larger) with a "padding" member before its closing brace,
// written in slices so that the simulator holds none of it. withLength
// sends the Content-Length; without it the answer is chunked.
func writePadded(w http.ResponseWriter, page []byte, more bool, size int64, withLength bool) {
	const open, closing = `,"padding":"`, `"}`
	body := page[:len(page)-1] // without the closing brace
	n := size - int64(len(body)+len(open)+len(closing))
	if n < 0 {
		n = 0
	}
	w.Header().Set("Content-Type", "application/json")
	if withLength {
		w.Header().Set("Content-Length", strconv.FormatInt(int64(len(body)+len(open)+len(closing))+n, 10))
	}
	if more {
		w.WriteHeader(http.StatusAccepted)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	if _, err := w.Write(body); err != nil {
		return
	}
	if _, err := io.WriteString(w, open); err != nil {
		return
	}
	for n > 0 {
		k := min(n, int64(len(padding)))
		if _, err := w.Write(padding[:k]); err != nil {
			return // the client went away, as a client refusing it should
		}
		n -= k
	}
	_, _ = io.WriteString(w, closing)
}

// writeHugeValue answers a usage page whose first record carries the
// attribute {"key":"Note","value":"xxx…"} of size bytes, written in slices.
func writeHugeValue(w http.ResponseWriter, page []byte, more bool, size int64) {
	const at, open, closing = `"extendedAttributes":[`, `{"key":"Note","value":"`, `"}`
	i := bytes.Index(page, []byte(at))
	if i < 0 {
		writePage(w, page, more) // no record to carry it
		return
	}
	head, tail := page[:i+len(at)], page[i+len(at):]
	sep := ""
	if len(tail) > 0 && tail[0] != ']' {
		sep = ","
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.FormatInt(int64(len(page)+len(open)+len(closing)+len(sep))+size, 10))
	if more {
		w.WriteHeader(http.StatusAccepted)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	_, _ = w.Write(head)
	_, _ = io.WriteString(w, open)
	for n := size; n > 0; {
		k := min(n, int64(len(padding)))
		if _, err := w.Write(padding[:k]); err != nil {
			return
		}
		n -= k
	}
	_, _ = io.WriteString(w, closing+sep)
	_, _ = w.Write(tail)
}
