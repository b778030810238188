package simulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// The history pages are written by hand into a buffer: the benchmarks push
// tens of thousands of requests a second through the simulator, and
// reflection-based encoding of 40 attributes per event would dominate.

func writeStr(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			b.Write(q)
			return
		}
	}
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}

func writeKV(b *bytes.Buffer, key, val string, asNumber bool) {
	b.WriteString(`{"key":`)
	writeStr(b, key)
	b.WriteString(`,"value":`)
	if asNumber {
		b.WriteString(val)
	} else {
		writeStr(b, val)
	}
	b.WriteByte('}')
}

func (s *Simulator) writeDeviceID(b *bytes.Buffer, dev device) {
	id := dev.identity()
	b.WriteString(`"deviceId":{"id":`)
	writeStr(b, id.ID)
	b.WriteString(`,"kind":`)
	for i, x := range dev.ids {
		if x == id {
			writeStr(b, dev.spelled[i])
		}
	}
	b.WriteByte('}')
}

// usageDays lists the days served for [earliest, latest] at now.
func usageDays(earliest, latest, now time.Time) []time.Time {
	from := dayOf(earliest)
	if from.Before(earliest) {
		from = from.AddDate(0, 0, 1)
	}
	if fl := retentionFloor(now); from.Before(fl) {
		from = fl
	}
	to := latest
	if to.After(now) {
		to = now
	}
	var days []time.Time
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	return days
}

func (s *Simulator) usagePage(dev device, earliest, latest, now time.Time) ([]byte, bool) {
	var days []time.Time
	if !dev.silent {
		for _, d := range usageDays(earliest, latest, now) {
			if dev.activeOn(d) {
				days = append(days, d)
			}
		}
	}
	more := len(days) > pageSize
	if more {
		days = days[:pageSize]
	}
	q := s.opts.Quirks
	var b bytes.Buffer
	b.Grow(64 + len(days)*330)
	b.WriteString(`{"hasMoreData":`)
	b.WriteString(strconv.FormatBool(more))
	b.WriteByte(',')
	s.writeDeviceID(&b, dev)
	b.WriteString(`,"usageHistory":[`)
	for i, d := range days {
		if i > 0 {
			b.WriteByte(',')
		}
		u := s.usage(dev, d, now)
		nums := q.NumbersAsNumbers && dev.index == 4
		age := int(dayOf(now).Sub(d) / (24 * time.Hour))
		mo := strconv.FormatInt(u.mo, 10)
		if q.BadValue && dev.index == 0 && age == 11 {
			mo = "lots"
		}
		b.WriteString(`{"bytesUsed":`)
		if nums {
			b.WriteString(strconv.FormatInt(u.bytes, 10))
		} else {
			// Real payloads carry numbers as strings in places.
			writeStr(&b, strconv.FormatInt(u.bytes, 10))
		}
		b.WriteString(`,"extendedAttributes":[`)
		writeKV(&b, "MoSms", mo, nums)
		b.WriteByte(',')
		writeKV(&b, "MtSms", strconv.FormatInt(u.mt, 10), nums)
		b.WriteByte(',')
		writeKV(&b, "domesticUsage", strconv.FormatInt(u.domestic, 10), nums)
		b.WriteByte(',')
		writeKV(&b, "internationalUsage", strconv.FormatInt(u.intl, 10), nums)
		if q.UnknownKeys && dev.index == 0 {
			b.WriteByte(',')
			writeKV(&b, "RoamingSms", strconv.FormatInt(u.mt%3, 10), false)
			b.WriteByte(',')
			writeKV(&b, `x"; DROP TABLE usage_daily; --`, "1", false)
		}
		b.WriteString(`],"smsUsed":`)
		b.WriteString(strconv.FormatInt(u.sms(), 10))
		b.WriteString(`,"source":"Raw Usage","timestamp":`)
		ts := d.Format(time.RFC3339)
		if q.BadTimestamp && dev.index == 0 && age == 10 {
			ts = "2026-13-45T99:00:00Z"
		}
		writeStr(&b, ts)
		b.WriteByte('}')
	}
	b.WriteString("]}")
	return b.Bytes(), more
}

func (s *Simulator) connectionPage(dev device, earliest, latest, now time.Time) ([]byte, bool) {
	evs := s.events(dev, earliest, latest, now)
	more := len(evs) > pageSize
	if more {
		evs = evs[:pageSize]
	}
	q := s.opts.Quirks
	var b bytes.Buffer
	b.Grow(64 + len(evs)*2200)
	b.WriteString(`{"connectionHistory":[`)
	for i, e := range evs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"connectionEventAttributes":[`)
		for j, kv := range e.attrs(dev) {
			if j > 0 {
				b.WriteByte(',')
			}
			writeKV(&b, kv[0], kv[1], false)
		}
		if q.UnknownKeys && dev.index == 0 {
			b.WriteByte(',')
			writeKV(&b, "NasPortType", "Wireless-Other", false)
		}
		b.WriteString(`],"extendedAttributes":null,`)
		if q.OccuredAt && dev.index == 1 {
			b.WriteString(`"occuredAt":`)
		} else {
			b.WriteString(`"occurredAt":`)
		}
		writeStr(&b, e.at.In(dev.offset).Format(time.RFC3339))
		b.WriteByte('}')
	}
	b.WriteString(`],"hasMoreData":`)
	b.WriteString(strconv.FormatBool(more))
	b.WriteByte('}')
	return b.Bytes(), more
}

const ratedLayout = "2006-01-02T15:04:05.000"

func (s *Simulator) serveRated(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DeviceID wireID `json:"deviceId"`
	}
	if err := decodeBody(r, &req); err != nil {
		writeError(w, 400, "INPUT_INVALID.RequestUndefined", "request body is not valid")
		return
	}
	dev, ok := s.lookup(w, req.DeviceID)
	if !ok {
		return
	}
	s.countDevice("rated", dev)
	_, failing := s.currentFaults()
	for _, id := range dev.ids {
		if failing[id.ID] {
			writeError(w, 500, "REQUEST_FAILED.InternalError", "internal error")
			return
		}
	}
	mdn := dev.id("mdn")
	if mdn == "" {
		writeError(w, 400, "REQUEST_FAILED.DeviceNotFound", "no rated usage: the device has no MDN")
		return
	}
	ru := s.rated(dev, s.Now())
	mdnNum, _ := strconv.ParseInt(mdn, 10, 64)
	writeJSON(w, 200, map[string]any{"deviceInformation": map[string]any{
		"billingEndDate":   ru.end.Format(ratedLayout),
		"billingResetDate": ru.reset.Format(ratedLayout),
		"billingStartDate": ru.start.Format(ratedLayout),
		"dataUsage":        ru.usage,
		"mdn":              mdnNum,
		"unit":             ru.unit,
	}})
}
