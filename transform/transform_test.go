package transform

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
)

var usageDev = extract.DeviceID{Kind: "eid", ID: "50684915885088839315521399821675"}

func TestUsage(t *testing.T) {
	tr := New()
	tab := schema.MustLookup(schema.UsageDaily)
	tests := []struct {
		name string
		in   string
		want outcome
	}{
		{"vendor record", `{"bytesUsed":4096,"extendedAttributes":[{"key":"MoSms","value":"0"},{"key":"MtSms","value":"0"},{"key":"domesticUsage","value":"2048"},{"key":"internationalUsage","value":"2048"}],"smsUsed":0,"source":"Raw Usage","timestamp":"2020-12-01T00:00:00Z"}`,
			outcome{Cols: map[string]any{"device_kind": "eid", "device_id": usageDev.ID, "usage_date": day(2020, 12, 1), "bytes_used": int64(4096), "sms_used": int32(0),
				"mo_sms": int32(0), "mt_sms": int32(0), "domestic_usage": int64(2048), "international_usage": int64(2048), "source": "Raw Usage", "loaded_at": nil, "extra": nil}}},
		{"offset moves the UTC date", `{"timestamp":"2020-12-01T22:30:00-05:00"}`,
			outcome{Cols: map[string]any{"usage_date": day(2020, 12, 2), "bytes_used": nil, "sms_used": nil, "source": nil}}},
		{"offset east keeps the UTC date before", `{"timestamp":"2020-12-02T01:00:00+05:30"}`,
			outcome{Cols: map[string]any{"usage_date": day(2020, 12, 1)}}},
		{"time of day dropped", `{"timestamp":"2020-12-01T23:59:59.999Z"}`,
			outcome{Cols: map[string]any{"usage_date": day(2020, 12, 1)}}},
		{"zone-less timestamp is UTC", `{"timestamp":"2020-12-01T23:00:00.000"}`,
			outcome{Cols: map[string]any{"usage_date": day(2020, 12, 1)}}},
		{"numbers as strings and as numbers", `{"bytesUsed":"8192","smsUsed":"3","timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"MoSms","value":3},{"key":"domesticUsage","value":"1e3"},{"key":"internationalUsage","value":"12.0"}]}`,
			outcome{Cols: map[string]any{"bytes_used": int64(8192), "sms_used": int32(3), "mo_sms": int32(3), "domestic_usage": int64(1000), "international_usage": int64(12)}}},
		{"empty, null text and JSON null are NULL", `{"bytesUsed":"","smsUsed":"null","source":"","timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"MoSms","value":null},{"key":"MtSms","value":"NULL"},{"key":"domesticUsage","value":""},{"key":"internationalUsage","value":" null "}]}`,
			outcome{Cols: map[string]any{"bytes_used": nil, "sms_used": nil, "source": nil, "mo_sms": nil, "mt_sms": nil, "domestic_usage": nil, "international_usage": nil}}},
		{"null padded with Unicode space", `{"timestamp":"2020-12-01T00:00:00Z","source":"\u00a0null\u3000","extendedAttributes":[{"key":"MoSms","value":"\u00a0null"},{"key":"MtSms","value":" 7 "}]}`,
			outcome{Cols: map[string]any{"source": nil, "mo_sms": nil, "mt_sms": int32(7)}}},
		{"MtSMS spelling", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"MtSMS","value":"4"}]}`,
			outcome{Cols: map[string]any{"mt_sms": int32(4)}}},
		{"snake_case spelling", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"mt_sms","value":"4"},{"key":"INTERNATIONAL_USAGE","value":"5"}]}`,
			outcome{Cols: map[string]any{"mt_sms": int32(4), "international_usage": int64(5)}}},
		{"repeated key: last wins", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"MoSms","value":"1"},{"key":"MOSMS","value":"2"}]}`,
			outcome{Cols: map[string]any{"mo_sms": int32(2)}}},
		{"repeated key: a last NULL wins too", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"MoSms","value":"1"},{"key":"MoSms","value":""}]}`,
			outcome{Cols: map[string]any{"mo_sms": nil}}},
		{"repeated key: a bad first value still rejects", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"MoSms","value":"lots"},{"key":"MoSms","value":"1"}]}`,
			outcome{Reject: `attribute "MoSms": value "lots" is not an integer`}},
		{"non-numeric count", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"MoSms","value":"lots"}]}`,
			outcome{Reject: `attribute "MoSms": value "lots" is not an integer`}},
		{"fractional count", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"MtSms","value":"1.5"}]}`,
			outcome{Reject: `attribute "MtSms": value "1.5" is not an integer`}},
		{"count beyond INTEGER", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"MtSms","value":"2147483648"}]}`,
			outcome{Reject: `attribute "MtSms": value "2147483648" is out of range for INTEGER`}},
		{"INTEGER bounds fit", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"MtSms","value":"2147483647"},{"key":"MoSms","value":"0"}]}`,
			outcome{Cols: map[string]any{"mt_sms": int32(2147483647), "mo_sms": int32(0)}}},
		{"bytes beyond INTEGER fit BIGINT", `{"bytesUsed":9000000000,"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"domesticUsage","value":"3000000000"}]}`,
			outcome{Cols: map[string]any{"bytes_used": int64(9000000000), "domestic_usage": int64(3000000000)}}},
		{"bytes beyond BIGINT", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"domesticUsage","value":"99999999999999999999"}]}`,
			outcome{Reject: `attribute "domesticUsage": value "99999999999999999999" is not an integer`}},
		{"smsUsed beyond INTEGER", `{"smsUsed":"4294967296","timestamp":"2020-12-01T00:00:00Z"}`,
			outcome{Reject: "smsUsed: value 4294967296 is out of range for INTEGER"}},
		{"non-numeric bytesUsed", `{"bytesUsed":"4 kB","timestamp":"2020-12-01T00:00:00Z"}`,
			outcome{Reject: "bytesUsed"}},
		{"malformed timestamp", `{"bytesUsed":1,"timestamp":"2026-13-45T99:00:00Z"}`,
			outcome{Reject: "timestamp"}},
		{"no timestamp", `{"bytesUsed":1}`,
			outcome{Reject: "timestamp"}},
		{"not an object", `[1,2]`,
			outcome{Reject: "decode usage record"}},
		{"unknown and hostile keys kept as sent", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"RoamingSms","value":"0"},{"key":"x\"; DROP TABLE usage_daily; --","value":"1"},{"key":"Odd","value":null}]}`,
			outcome{Cols: map[string]any{"extra": nil}, Unknown: []extract.Attribute{{Key: "RoamingSms", Value: "0"}, {Key: `x"; DROP TABLE usage_daily; --`, Value: "1"}, {Key: "Odd", Null: true}}}},
		{"unknown key repeated: one entry, last value", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"RoamingSms","value":"1"},{"key":"RoamingSms","value":"2"},{"key":"roamingSms","value":"3"}]}`,
			outcome{Unknown: []extract.Attribute{{Key: "RoamingSms", Value: "2"}, {Key: "roamingSms", Value: "3"}}}},
		{"unknown key with a number value", `{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"Roaming","value":12}]}`,
			outcome{Unknown: []extract.Attribute{{Key: "Roaming", Value: "12"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, rejects := tr.Usage(usageDev, []extract.UsageRecord{decodeUsage(t, tt.in)}, time.Time{})
			if d := mismatch(tab, rows, rejects, tt.want); d != "" {
				t.Errorf("Usage(%q) = %s, want %v", tt.in, d, tt.want)
			}
		})
	}
}

// One plausibility rule at both ends: an instant before 2000 or more than
// a day past the end of the range asked for, and a negative count, reject
// the record with a reason; the records around it still load.
func TestPlausible(t *testing.T) {
	tr := New()
	asOf := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	usage := []struct{ in, reject string }{
		{`{"bytesUsed":1,"timestamp":"2026-11-23T00:00:00Z"}`, ""},
		{`{"bytesUsed":1,"timestamp":"2000-01-01T00:00:00Z"}`, ""},
		{`{"bytesUsed":1,"timestamp":"9999-12-31T00:00:00Z"}`, "timestamp: 9999-12-31T00:00:00Z is more than a day after 2026-11-22T12:00:00Z"},
		{`{"bytesUsed":1,"timestamp":"2026-11-24T00:00:00Z"}`, "timestamp: 2026-11-24T00:00:00Z is more than a day after"},
		{`{"bytesUsed":1,"timestamp":"1999-12-31T23:59:59Z"}`, "timestamp: 1999-12-31T23:59:59Z is before 2000-01-01"},
		{`{"bytesUsed":1,"timestamp":"0001-01-01T00:00:00Z"}`, "timestamp"},
		{`{"bytesUsed":-4096,"timestamp":"2026-11-20T00:00:00Z"}`, "bytesUsed: value -4096 is negative"},
		{`{"smsUsed":-1,"timestamp":"2026-11-20T00:00:00Z"}`, "smsUsed: value -1 is negative"},
		{`{"timestamp":"2026-11-20T00:00:00Z","extendedAttributes":[{"key":"MoSms","value":"-3"}]}`, `attribute "MoSms": value "-3" is negative`},
		{`{"timestamp":"2026-11-20T00:00:00Z","extendedAttributes":[{"key":"domesticUsage","value":-1}]}`, `attribute "domesticUsage": value "-1" is negative`},
	}
	var recs []extract.UsageRecord
	for _, u := range usage {
		recs = append(recs, decodeUsage(t, u.in))
	}
	rows, rejects := tr.Usage(usageDev, recs, asOf)
	checkPlausible(t, "usage", len(rows), rejects, usage)

	events := []struct{ in, reject string }{
		{`{"connectionEventAttributes":[{"key":"Event","value":"Start"}],"occurredAt":"2026-11-22T11:00:00Z"}`, ""},
		{`{"connectionEventAttributes":[{"key":"Event","value":"Start"}],"occurredAt":"9999-01-01T00:00:00Z"}`, "occurredAt: 9999-01-01T00:00:00Z is more than a day after"},
		{`{"connectionEventAttributes":[{"key":"Event","value":"Start"}],"occurredAt":"1970-01-01T00:00:00Z"}`, "occurredAt: 1970-01-01T00:00:00Z is before 2000-01-01"},
		{`{"connectionEventAttributes":[{"key":"Event","value":"Stop"},{"key":"BytesUsed","value":"-5"}],"occurredAt":"2026-11-22T11:00:00Z"}`, `attribute "BytesUsed": value "-5" is negative`},
		{`{"connectionEventAttributes":[{"key":"Event","value":"Stop"},{"key":"AccountSessionTime","value":-60}],"occurredAt":"2026-11-22T11:00:00Z"}`, `attribute "AccountSessionTime": value "-60" is negative`},
	}
	var evs []extract.ConnectionEvent
	for _, e := range events {
		evs = append(evs, decodeEvent(t, e.in))
	}
	rows, rejects = tr.Events(eventDev, evs, asOf)
	checkPlausible(t, "events", len(rows), rejects, events)
}

func checkPlausible(t *testing.T, what string, rows int, rejects []Reject, recs []struct{ in, reject string }) {
	t.Helper()
	var want []string
	for _, r := range recs {
		if r.reject != "" {
			want = append(want, r.reject)
		}
	}
	if rows != len(recs)-len(want) || len(rejects) != len(want) {
		t.Fatalf("%s: %d rows, %d rejects; want %d and %d: %v", what, rows, len(rejects), len(recs)-len(want), len(want), rejects)
	}
	for i, r := range rejects {
		if !strings.HasPrefix(r.Reason, want[i]) {
			t.Errorf("%s: reject %d = %q, want it to start %q", what, i, r.Reason, want[i])
		}
	}
}

var eventDev = extract.DeviceID{Kind: "iccid", ID: "89141390780800784259"}

func TestEvents(t *testing.T) {
	tr := New()
	tab := schema.MustLookup(schema.ConnectionEvents)
	at := time.Date(2015, 12, 17, 19, 12, 36, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want outcome
	}{
		{"vendor start", `{"connectionEventAttributes":[{"key":"BytesUsed","value":"0"},{"key":"Event","value":"Start"},{"key":"Msisdn","value":"15086303371"},{"key":"Account3Gpp2BeginSession","value":"1"},{"key":"AccountSessionId","value":"431DF703"},{"key":"AccountTerminateCause","value":"0"},{"key":"NasIpAddress","value":"175505666"},{"key":"Account3Gpp2ServiceOption","value":"595"}],"extendedAttributes":null,"occurredAt":"2015-12-17T14:12:36-05:00"}`,
			outcome{Cols: map[string]any{"device_kind": "iccid", "device_id": eventDev.ID, "occurred_at": at, "event": "Start", "account_session_id": "431DF703",
				"bytes_used": int64(0), "msisdn": "15086303371", "account_3gpp2_begin_session": int32(1), "account_terminate_cause": "0",
				"nas_ip_address": "175505666", "account_3gpp2_service_option": int32(595), "account_status_type": nil, "loaded_at": nil}}},
		{"UTC and other offsets", `{"connectionEventAttributes":[{"key":"Event","value":"Stop"}],"occurredAt":"2015-12-18T00:42:36+05:30"}`,
			outcome{Cols: map[string]any{"occurred_at": at, "event": "Stop"}}},
		{"occuredAt spelling", `{"connectionEventAttributes":[{"key":"Event","value":"Stop"}],"occuredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Cols: map[string]any{"occurred_at": at}}},
		{"event from AccountStatusType", `{"connectionEventAttributes":[{"key":"AccountStatusType","value":"Stop"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Cols: map[string]any{"event": "Stop", "account_status_type": "Stop"}}},
		{"empty Event falls back", `{"connectionEventAttributes":[{"key":"Event","value":""},{"key":"AccountStatusType","value":"Start"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Cols: map[string]any{"event": "Start"}}},
		{"Event wins over AccountStatusType", `{"connectionEventAttributes":[{"key":"AccountStatusType","value":"Stop"},{"key":"Event","value":"Interim"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Cols: map[string]any{"event": "Interim", "account_status_type": "Stop"}}},
		{"no event", `{"connectionEventAttributes":[{"key":"BytesUsed","value":"0"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Reject: "no Event or AccountStatusType"}},
		{"null event", `{"connectionEventAttributes":[{"key":"Event","value":null},{"key":"AccountStatusType","value":"null"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Reject: "no Event or AccountStatusType"}},
		{"no occurredAt", `{"connectionEventAttributes":[{"key":"Event","value":"Start"}]}`,
			outcome{Reject: "occurredAt"}},
		{"malformed occurredAt", `{"connectionEventAttributes":[{"key":"Event","value":"Start"}],"occurredAt":"yesterday"}`,
			outcome{Reject: `occurredAt: unrecognised timestamp "yesterday"`}},
		{"no session id", `{"connectionEventAttributes":[{"key":"Event","value":"Start"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Cols: map[string]any{"account_session_id": nil}}},
		{"numbers as JSON numbers", `{"connectionEventAttributes":[{"key":"Event","value":"Stop"},{"key":"InputBytes","value":12848174},{"key":"AccountSessionTime","value":126444},{"key":"Msisdn","value":15086303371}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Cols: map[string]any{"input_bytes": int64(12848174), "account_session_time": int64(126444), "msisdn": "15086303371"}}},
		{"keys matched case-insensitively", `{"connectionEventAttributes":[{"key":"event","value":"Stop"},{"key":"INPUTBYTES","value":"1"},{"key":"output_bytes","value":"2"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Cols: map[string]any{"event": "Stop", "input_bytes": int64(1), "output_bytes": int64(2)}}},
		{"alias AccountCallingStationId", `{"connectionEventAttributes":[{"key":"Event","value":"Stop"},{"key":"AccountCallingStationId","value":"15096303371"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Cols: map[string]any{"calling_station_id": "15096303371"}}},
		{"varchar keeps text as sent", `{"connectionEventAttributes":[{"key":"Event","value":"Stop"},{"key":"AccountTerminateCause","value":" User_Request "},{"key":"Username","value":"0015@vzw3g.com"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Cols: map[string]any{"account_terminate_cause": " User_Request ", "username": "0015@vzw3g.com"}}},
		{"non-numeric bytes", `{"connectionEventAttributes":[{"key":"Event","value":"Stop"},{"key":"InputBytes","value":"12 MB"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Reject: `attribute "InputBytes": value "12 MB" is not an integer`}},
		{"flag beyond INTEGER", `{"connectionEventAttributes":[{"key":"Event","value":"Stop"},{"key":"Account3Gpp2BeginSession","value":"2147483648"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Reject: "out of range for INTEGER"}},
		{"hostile and unknown keys", `{"connectionEventAttributes":[{"key":"Event","value":"Stop"},{"key":"NasPortType","value":"Wireless-Other"},{"key":"x\"; DROP TABLE usage_daily; --","value":"'); DROP TABLE connection_events; --"}],"occurredAt":"2015-12-17T19:12:36Z"}`,
			outcome{Unknown: []extract.Attribute{{Key: "NasPortType", Value: "Wireless-Other"}, {Key: `x"; DROP TABLE usage_daily; --`, Value: `'); DROP TABLE connection_events; --`}}}},
		{"not an object", `"Start"`,
			outcome{Reject: "decode connection event"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, rejects := tr.Events(eventDev, []extract.ConnectionEvent{decodeEvent(t, tt.in)}, time.Time{})
			if d := mismatch(tab, rows, rejects, tt.want); d != "" {
				t.Errorf("Events(%q) = %s, want %v", tt.in, d, tt.want)
			}
		})
	}
}

// A reject reason quotes a bounded part of the value: Raw keeps it all.
func TestRejectReasonTruncated(t *testing.T) {
	long := strings.Repeat("é", 300)
	in := fmt.Sprintf(`{"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"MoSms","value":%q}]}`, long)
	rec := decodeUsage(t, in)
	_, rejects := New().Usage(usageDev, []extract.UsageRecord{rec}, time.Time{})
	if len(rejects) != 1 {
		t.Fatalf("Usage(%.40q…) = %d rejects, want 1", in, len(rejects))
	}
	r := rejects[0]
	if len(r.Reason) > 200 || !strings.Contains(r.Reason, "…") || !strings.Contains(r.Reason, `"MoSms"`) {
		t.Errorf("reason = %q (%d bytes), want the key and at most ~%d bytes of the value, marked …", r.Reason, len(r.Reason), maxQuoted)
	}
	if string(r.Raw) != string(rec.Raw) || r.Stream != schema.StreamUsage || r.Device != usageDev {
		t.Errorf("reject = %+v, want the raw record, stream usage and the device", r)
	}
}

// Records are independent: a reject between rows leaves the others whole,
// in order, each with its own unknown keys.
func TestUsageMixedPage(t *testing.T) {
	recs := []extract.UsageRecord{
		decodeUsage(t, `{"bytesUsed":1,"timestamp":"2020-12-01T00:00:00Z","extendedAttributes":[{"key":"A","value":"1"},{"key":"MoSms","value":"1"}]}`),
		decodeUsage(t, `{"bytesUsed":2,"timestamp":"2020-12-02T00:00:00Z","extendedAttributes":[{"key":"B","value":"2"},{"key":"MoSms","value":"x"}]}`),
		decodeUsage(t, `{"bytesUsed":3,"timestamp":"2020-12-03T00:00:00Z","extendedAttributes":[{"key":"C","value":"3"}]}`),
		decodeUsage(t, `{"bytesUsed":4,"timestamp":"bad"}`),
		decodeUsage(t, `{"bytesUsed":5,"timestamp":"2020-12-05T00:00:00Z"}`),
	}
	tab := schema.MustLookup(schema.UsageDaily)
	rows, rejects := New().Usage(extract.DeviceID{Kind: "EID", ID: "1"}, recs, time.Time{})
	var got []string
	for _, r := range rows {
		if err := rowError(tab, r); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%v %v %v", value(tab, r, "device_kind"), value(tab, r, "bytes_used"), r.Unknown))
	}
	for _, r := range rejects {
		got = append(got, "reject "+r.Device.String()+" "+string(r.Raw))
	}
	want := []string{"eid 1 [{A 1 false}]", "eid 3 [{C 3 false}]", "eid 5 []",
		"reject eid:1 " + string(recs[1].Raw), "reject eid:1 " + string(recs[3].Raw)}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Usage(page) mismatch (-want +got):\n%s", d)
	}
}

// Keys resolve the same whatever their order: each record of a page whose
// records list their attributes in different orders makes the row it makes
// alone.
func TestKeyOrderVaries(t *testing.T) {
	tr := New()
	base := connectionPage(t, 2)
	var recs []extract.ConnectionEvent
	for i := range 12 {
		e := base[i%2]
		attrs := slices.Clone(e.Attributes)
		switch i % 4 {
		case 1:
			slices.Reverse(attrs)
		case 2:
			attrs = append(attrs[5:], attrs[:5]...)
		case 3:
			attrs = append([]extract.Attribute{{Key: "NasPortType", Value: "x"}}, attrs[:len(attrs)-3]...)
		}
		e.Attributes = attrs
		recs = append(recs, e)
	}
	rows, rejects := tr.Events(eventDev, recs, time.Time{})
	if len(rows) != len(recs) || len(rejects) != 0 {
		t.Fatalf("Events(%d records) = %d rows, %d rejects", len(recs), len(rows), len(rejects))
	}
	for i, e := range recs {
		alone, _ := tr.Events(eventDev, []extract.ConnectionEvent{e}, time.Time{})
		if d := cmp.Diff(alone[0], rows[i]); d != "" {
			t.Errorf("Events(page)[%d] differs from Events(record %d alone) (-alone +page):\n%s", i, i, d)
		}
	}
}

// A device that cannot key a row rejects every record, one reject each.
func TestNoIdentity(t *testing.T) {
	tr := New()
	rec := decodeUsage(t, `{"bytesUsed":1,"timestamp":"2020-12-01T00:00:00Z"}`)
	ev := decodeEvent(t, `{"connectionEventAttributes":[{"key":"Event","value":"Start"}],"occurredAt":"2015-12-17T19:12:36Z"}`)
	for _, dev := range []extract.DeviceID{{}, {Kind: "iccid"}, {ID: "1"}} {
		if rows, rejects := tr.Usage(dev, []extract.UsageRecord{rec, rec}, time.Time{}); len(rows) != 0 || len(rejects) != 2 {
			t.Errorf("Usage(%v, 2 records) = %d rows, %d rejects, want 0, 2", dev, len(rows), len(rejects))
		}
		if rows, rejects := tr.Events(dev, []extract.ConnectionEvent{ev}, time.Time{}); len(rows) != 0 || len(rejects) != 1 {
			t.Errorf("Events(%v, 1 record) = %d rows, %d rejects, want 0, 1", dev, len(rows), len(rejects))
		}
	}
}

func TestDevice(t *testing.T) {
	tr := New()
	tab := schema.MustLookup(schema.Devices)
	seen := time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("EDT", -4*3600))
	tests := []struct {
		name string
		in   string
		want outcome
	}{
		{"full entry", `{"accountName":"0000123456-00001","deviceIds":[{"id":"15096303371","kind":"mdn"},{"id":"89148000000800784259","kind":"ICCID"},{"id":"990013907884259","kind":"imei"},{"id":"311480000000001","kind":"IMSI"}],
			"carrierInformations":[{"carrierName":"Verizon Wireless","servicePlan":"M2MPlan","state":"Active"},{"state":"deactive"}],"connected":true,"createdAt":"2018-03-20T15:04:05-05:00",
			"extendedAttributes":[{"key":"DeviceId","value":"1234567"},{"key":"Other","value":"x"}],"groupNames":["Trucks","North"],"ipAddress":"10.0.0.1",
			"lastActivationDate":"2018-03-21T00:00:00Z","lastConnectionDate":"2021-08-15T 00:00:00Z","billingCycleEndDate":"08/15/2021 00:00:00"}`,
			outcome{Cols: map[string]any{"device_kind": "iccid", "device_id": "89148000000800784259", "account_name": "0000123456-00001",
				"iccid": "89148000000800784259", "imei": "990013907884259", "mdn": "15096303371", "imsi": "311480000000001", "msisdn": nil, "meid": nil, "esn": nil, "eid": nil,
				"state": "active", "carrier_name": "Verizon Wireless", "service_plan": "M2MPlan", "connected": true, "ip_address": "10.0.0.1",
				"group_names": []string{"Trucks", "North"}, "thingspace_device_id": int64(1234567),
				"created_at": time.Date(2018, 3, 20, 20, 4, 5, 0, time.UTC), "last_activation_at": day(2018, 3, 21),
				"last_connection_at": day(2021, 8, 15), "billing_cycle_end_at": day(2021, 8, 15),
				"first_seen_at": nil, "last_seen_at": time.Date(2024, 5, 1, 16, 0, 0, 0, time.UTC), "loaded_at": nil}}},
		{"identity order: imei before mdn", `{"deviceIds":[{"id":"5551234567","kind":"mdn"},{"id":"990013907884259","kind":"IMEI"}]}`,
			outcome{Cols: map[string]any{"device_kind": "imei", "device_id": "990013907884259", "account_name": nil, "state": nil, "connected": false, "group_names": nil, "thingspace_device_id": nil}}},
		{"state lower-cased, spaces kept inside", `{"deviceIds":[{"id":"1","kind":"esn"}],"carrierInformations":[{"state":"Pending Activation"}]}`,
			outcome{Cols: map[string]any{"device_kind": "esn", "state": "pending activation"}}},
		{"bad optional dates and DeviceId are NULL", `{"deviceIds":[{"id":"1","kind":"eid"}],"createdAt":"soon","lastActivationDate":"","lastConnectionDate":"null","extendedAttributes":[{"key":"deviceid","value":"abc"}]}`,
			outcome{Cols: map[string]any{"device_kind": "eid", "created_at": nil, "last_activation_at": nil, "last_connection_at": nil, "thingspace_device_id": nil}}},
		{"first of a kind wins", `{"deviceIds":[{"id":"111","kind":"iccid"},{"id":"222","kind":"ICCID"}]}`,
			outcome{Cols: map[string]any{"device_id": "111", "iccid": "111"}}},
		{"a kind named after another column fills nothing", `{"deviceIds":[{"id":"1","kind":"meid"},{"id":"hacked","kind":"state"},{"id":"x","kind":"device_kind"}]}`,
			outcome{Cols: map[string]any{"device_kind": "meid", "state": nil}}},
		{"no identity", `{"accountName":"0000123456-00001","deviceIds":[{"id":"311480000000001","kind":"imsi"},{"id":"","kind":"iccid"}]}`,
			outcome{Reject: "no identifier"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d extract.Device
			if err := json.Unmarshal([]byte(tt.in), &d); err != nil {
				t.Fatal(err)
			}
			row, err := tr.Device(d, seen)
			rows, rejects := []Row{row}, []Reject(nil)
			if err != nil {
				rows, rejects = nil, []Reject{{Reason: err.Error()}}
			}
			if diff := mismatch(tab, rows, rejects, tt.want); diff != "" {
				t.Errorf("Device(%q) = %s, want %v", tt.in, diff, tt.want)
			}
		})
	}
	// Kinds set in code, not decoded, are lower-cased too.
	row, err := tr.Device(extract.Device{DeviceIDs: []extract.DeviceID{{Kind: "MDN", ID: "5551234567"}}}, seen)
	if err != nil || value(tab, row, "device_kind") != "mdn" || value(tab, row, "mdn") != "5551234567" {
		t.Errorf("Device(MDN set in code) = %v, %v, want kind mdn", row.Values, err)
	}
}

func TestRated(t *testing.T) {
	tr := New()
	tab := schema.MustLookup(schema.RatedUsage)
	dev := extract.DeviceID{Kind: "mdn", ID: "5551234567"}
	fetched := time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("X", 3600))
	tests := []struct {
		name string
		in   string
		want outcome
	}{
		{"vendor example", `{"billingEndDate":"2014-04-05T00:00:00.000","billingResetDate":"2014-04-06T00:00:00.000","billingStartDate":"2014-04-07T00:00:00.000","dataUsage":1.0990909989,"mdn":5551234567,"unit":"GB"}`,
			outcome{Cols: map[string]any{"device_kind": "mdn", "device_id": "5551234567", "billing_start_date": day(2014, 4, 7), "billing_end_date": day(2014, 4, 5),
				"billing_reset_date": day(2014, 4, 6), "mdn": "5551234567", "data_usage": 1.0990909989, "unit": "GB", "data_usage_bytes": int64(1099090999),
				"fetched_at": time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC), "loaded_at": nil}}},
		{"KB is 1000 bytes", `{"billingStartDate":"2014-04-07T00:00:00.000","dataUsage":"2.5","unit":"KB"}`,
			outcome{Cols: map[string]any{"data_usage": 2.5, "data_usage_bytes": int64(2500)}}},
		{"MB, unit kept as sent", `{"billingStartDate":"2014-04-07T00:00:00.000","dataUsage":3,"unit":"mb"}`,
			outcome{Cols: map[string]any{"unit": "mb", "data_usage_bytes": int64(3000000)}}},
		{"NULL usage, no unit", `{"billingStartDate":"2014-04-07T00:00:00.000","dataUsage":null,"unit":""}`,
			outcome{Cols: map[string]any{"data_usage": nil, "data_usage_bytes": nil, "unit": nil, "billing_end_date": nil}}},
		{"unknown unit", `{"billingStartDate":"2014-04-07T00:00:00.000","dataUsage":1,"unit":"TiB"}`,
			outcome{Reject: `unknown unit "TiB"`}},
		{"no unit", `{"billingStartDate":"2014-04-07T00:00:00.000","dataUsage":1}`,
			outcome{Reject: "unknown unit"}},
		{"not finite", `{"billingStartDate":"2014-04-07T00:00:00.000","dataUsage":"NaN","unit":"GB"}`,
			outcome{Reject: "does not fit"}},
		{"overflow", `{"billingStartDate":"2014-04-07T00:00:00.000","dataUsage":1e12,"unit":"GB"}`,
			outcome{Reject: "does not fit"}},
		{"no start date", `{"dataUsage":1,"unit":"GB"}`,
			outcome{Reject: "billingStartDate: missing"}},
		{"bad start date", `{"billingStartDate":"April","dataUsage":1,"unit":"GB"}`,
			outcome{Reject: "billingStartDate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r extract.RatedUsage
			if err := json.Unmarshal([]byte(tt.in), &r); err != nil {
				t.Fatal(err)
			}
			row, err := tr.Rated(dev, r, fetched)
			rows, rejects := []Row{row}, []Reject(nil)
			if err != nil {
				rows, rejects = nil, []Reject{{Reason: err.Error()}}
			}
			if diff := mismatch(tab, rows, rejects, tt.want); diff != "" {
				t.Errorf("Rated(%q) = %s, want %v", tt.in, diff, tt.want)
			}
		})
	}
}

func TestAggregate(t *testing.T) {
	tr := New()
	tab := schema.MustLookup(schema.AggregateUsage)
	received := time.Date(2021, 8, 16, 1, 2, 3, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want outcome
	}{
		{"vendor example", `{"deviceIdentifierCollection":[{"id":"89148000000800784259","kind":"ICCID"}],"dataUsage":"3072","smsUsage":"0","moSms":"0","mtSms":"0","startDate":"2021-08-15T00:00:00.0000000","endDate":"2021-08-16T00:00:00.0000000"}`,
			outcome{Cols: map[string]any{"device_kind": "iccid", "device_id": "89148000000800784259", "start_time": day(2021, 8, 15), "end_time": day(2021, 8, 16),
				"data_usage": int64(3072), "sms_usage": int32(0), "mo_sms": int32(0), "mt_sms": int32(0), "request_id": "595f5c44", "received_at": received, "loaded_at": nil}}},
		{"null counts", `{"deviceIdentifierCollection":[{"id":"1","kind":"imei"},{"id":"2","kind":"mdn"}],"dataUsage":"","smsUsage":null,"moSms":"null","startDate":"2021-08-15T00:00:00Z","endDate":"2021-08-16T00:00:00Z"}`,
			outcome{Cols: map[string]any{"device_kind": "imei", "data_usage": nil, "sms_usage": nil, "mo_sms": nil, "mt_sms": nil}}},
		{"count beyond INTEGER", `{"deviceIdentifierCollection":[{"id":"1","kind":"iccid"}],"mtSms":"2147483648","startDate":"2021-08-15T00:00:00Z","endDate":"2021-08-16T00:00:00Z"}`,
			outcome{Reject: "mtSms: value 2147483648 is out of range for INTEGER"}},
		{"no identity", `{"deviceIdentifierCollection":[],"startDate":"2021-08-15T00:00:00Z","endDate":"2021-08-16T00:00:00Z"}`,
			outcome{Reject: "no identifier"}},
		{"bad end date", `{"deviceIdentifierCollection":[{"id":"1","kind":"iccid"}],"startDate":"2021-08-15T00:00:00Z","endDate":"tomorrow"}`,
			outcome{Reject: "endDate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p extract.PromoUsage
			if err := json.Unmarshal([]byte(tt.in), &p); err != nil {
				t.Fatal(err)
			}
			row, err := tr.Aggregate("595f5c44", p, received)
			rows, rejects := []Row{row}, []Reject(nil)
			if err != nil {
				rows, rejects = nil, []Reject{{Reason: err.Error()}}
			}
			if diff := mismatch(tab, rows, rejects, tt.want); diff != "" {
				t.Errorf("Aggregate(%q) = %s, want %v", tt.in, diff, tt.want)
			}
		})
	}
}

func TestAppendAttrKey(t *testing.T) {
	for _, in := range []string{"MoSms", "MtSMS", "mt_sms", "Account3Gpp2BeginSession", "", "x\"; DROP", "\u212Aey", "İd", "\xff\xfeMo", "ＭｏＳｍｓ", strings.Repeat("Ab9-", 40)} {
		if got, want := string(appendAttrKey(nil, in)), schema.AttrKey(in); got != want {
			t.Errorf("appendAttrKey(%q) = %q, want %q (schema.AttrKey)", in, got, want)
		}
	}
}

func FuzzAttrKey(f *testing.F) {
	for _, s := range []string{"MoSms", "MtSMS", "\u212A", "İ", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if got, want := string(appendAttrKey(nil, in)), schema.AttrKey(in); got != want {
			t.Errorf("appendAttrKey(%q) = %q, want %q (schema.AttrKey)", in, got, want)
		}
	})
}

// One Transformer serves every worker: run it from several goroutines (and
// under -race) and compare with a sequential run.
func TestConcurrentUse(t *testing.T) {
	tr := New()
	recs := connectionPage(t, 200)
	want, _ := tr.Events(eventDev, recs, time.Time{})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			got, rejects := tr.Events(eventDev, recs, time.Time{})
			if len(rejects) != 0 || fmt.Sprint(got) != fmt.Sprint(want) {
				errs <- fmt.Sprintf("concurrent Events = %d rows %d rejects, differs from sequential", len(got), len(rejects))
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
