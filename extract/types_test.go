package extract

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want string // RFC 3339 UTC, or "" for an error
	}{
		{"2015-12-17T14:12:36-05:00", "2015-12-17T19:12:36Z"},
		{"2020-12-01T00:00:00Z", "2020-12-01T00:00:00Z"},
		{"2014-04-05T00:00:00.000", "2014-04-05T00:00:00Z"},
		{"2021-08-15T00:00:00.0000000", "2021-08-15T00:00:00Z"},
		{"2021-08-15T 00:00:00Z", "2021-08-15T00:00:00Z"},
		{"08/15/2021 00:00:00", "2021-08-15T00:00:00Z"},
		{"2021-08-15T23:30:00+02:00", "2021-08-15T21:30:00Z"},
		{" 2021-08-15 ", "2021-08-15T00:00:00Z"},
		{"", ""},
		{"yesterday", ""},
		{"2026-13-45T99:00:00Z", ""},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseTime(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got.Format(time.RFC3339) != tt.want || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestDecodeRecords(t *testing.T) {
	var usage []UsageRecord
	err := json.Unmarshal([]byte(`[
		{"bytesUsed":"4096","smsUsed":2,"source":"Raw Usage","timestamp":"2020-12-01T00:00:00Z",
		 "extendedAttributes":[{"key":"MoSms","value":"1"},{"key":"MtSms","value":1},{"key":"x","value":null}]},
		{"bytesUsed":"","smsUsed":"null","timestamp":"2020-12-02T00:00:00Z"},
		{"bytesUsed":"12abc","timestamp":"2020-12-03T00:00:00Z"},
		{"bytesUsed":1,"timestamp":"not a time"},
		42
	]`), &usage)
	if err != nil {
		t.Fatal(err)
	}
	if len(usage) != 5 {
		t.Fatalf("%d records", len(usage))
	}
	u := usage[0]
	if u.Err != nil || u.BytesUsed != (Int{4096, true}) || u.SMSUsed != (Int{2, true}) ||
		u.ExtendedAttributes[1].Value != "1" || !u.ExtendedAttributes[2].Null {
		t.Errorf("record 0 = %+v", u)
	}
	if usage[1].Err != nil || usage[1].BytesUsed.Valid || usage[1].SMSUsed.Valid {
		t.Errorf(`"" and "null" must be absent, not errors: %+v`, usage[1])
	}
	for i := 2; i < 5; i++ {
		if usage[i].Err == nil || len(usage[i].Raw) == 0 {
			t.Errorf("record %d: want an error and the raw record, got %+v", i, usage[i])
		}
	}

	var evs []ConnectionEvent
	if err := json.Unmarshal([]byte(`[
		{"connectionEventAttributes":[{"key":"Event","value":"Start"}],"occurredAt":"2015-12-17T14:12:36-05:00"},
		{"connectionEventAttributes":[{"key":"Event","value":"Stop"}],"occuredAt":"2015-12-19T01:20:00-05:00"}
	]`), &evs); err != nil {
		t.Fatal(err)
	}
	if evs[0].OccurredAt.Format(time.RFC3339) != "2015-12-17T19:12:36Z" || evs[1].OccurredAt.Format(time.RFC3339) != "2015-12-19T06:20:00Z" {
		t.Errorf("events = %v, %v", evs[0].OccurredAt, evs[1].OccurredAt)
	}

	var ids []DeviceID
	_ = json.Unmarshal([]byte(`[{"kind":"ICCID","id":"8914"},{"kind":"iccId","id":"1"},{"kind":"Imei","id":123}]`), &ids)
	if ids[0].Kind != "iccid" || ids[1].Kind != "iccid" || ids[2] != (DeviceID{"imei", "123"}) {
		t.Errorf("kinds = %+v", ids)
	}
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		ids  []DeviceID
		want string
	}{
		{[]DeviceID{{"mdn", "1"}, {"imei", "2"}, {"iccid", "3"}}, "iccid:3"},
		{[]DeviceID{{"eid", "9"}, {"msisdn", "8"}}, "msisdn:8"},
		{[]DeviceID{{"esn", "5"}, {"meid", "4"}}, "meid:4"},
		{[]DeviceID{{"imsi", "1"}}, ""},
	}
	for _, tt := range tests {
		got, ok := Identity(tt.ids)
		if (tt.want == "" && ok) || (tt.want != "" && got.String() != tt.want) {
			t.Errorf("Identity(%v) = %v, %v; want %q", tt.ids, got, ok, tt.want)
		}
	}
}

// vendorExample extracts the first JSON object after marker from a vendor
// page, for fuzz seeds.
func vendorExample(t testing.TB, page, marker string) []byte {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "vendor", page))
	if err != nil {
		t.Skipf("vendor example: %v", err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("%s: no %q", page, marker)
	}
	s = s[i:]
	start := strings.Index(s, "{")
	depth := 0
	for j := start; j < len(s); j++ {
		switch s[j] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return []byte(s[start : j+1])
			}
		}
	}
	t.Fatalf("%s: unbalanced example", page)
	return nil
}

func FuzzDecodePages(f *testing.F) {
	f.Add(vendorExample(f, "usage-history.txt", "Example Success Response with Device Identifiers"))
	f.Add(vendorExample(f, "connection-history.txt", "Example Success Response"))
	f.Add([]byte(`{"usageHistory":[{"timestamp":"2021-08-15T 00:00:00Z","bytesUsed":"1e3"}]}`))
	f.Add([]byte(`{"connectionHistory":[{"occuredAt":"08/15/2021 00:00:00","connectionEventAttributes":[{"key":1,"value":{}}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var u struct {
			UsageHistory []UsageRecord `json:"usageHistory"`
		}
		if json.Unmarshal(b, &u) == nil {
			for _, r := range u.UsageHistory {
				if r.Err == nil && r.Timestamp.IsZero() {
					t.Errorf("record without error has no timestamp: %s", r.Raw)
				}
			}
		}
		// The fast event decoder must agree with the general one.
		var fast, slow ConnectionEvent
		fast.Raw, slow.Raw = b, b
		if fastEvent(b, &fast) {
			_ = slow.slowDecode(b)
			if !equalEvents(fast, slow) {
				t.Errorf("fast and general decoders disagree on %q:\n%+v\n%+v", b, fast, slow)
			}
		}
		// The one-pass page decoder must agree with encoding/json.
		if evs, more, ok := decodeConnectionPage(b); ok {
			var std connectionPageWire
			if err := json.Unmarshal(b, &std); err != nil {
				// Tolerated only as a broken record isolated with its error:
				// the rest of the page still loads.
				isolated := false
				for _, e := range evs {
					isolated = isolated || e.Err != nil
				}
				if !isolated {
					t.Fatalf("page decoder accepted what encoding/json refuses (%v): %q", err, b)
				}
				return
			}
			if more != std.HasMoreData || len(evs) != len(std.ConnectionHistory) {
				t.Fatalf("page decoders disagree on %q", b)
			}
			for i := range evs {
				if !equalEvents(evs[i], std.ConnectionHistory[i]) {
					t.Fatalf("page decoders disagree on event %d of %q", i, b)
				}
			}
		}
		if recs, more, ok := decodeUsagePage(b); ok {
			var std usagePageWire
			if err := json.Unmarshal(b, &std); err != nil {
				isolated := false
				for _, r := range recs {
					isolated = isolated || r.Err != nil
				}
				if !isolated {
					t.Fatalf("usage page decoder accepted what encoding/json refuses (%v): %q", err, b)
				}
				return
			}
			if more != std.HasMoreData || len(recs) != len(std.UsageHistory) {
				t.Fatalf("usage page decoders disagree on %q", b)
			}
			for i := range recs {
				if !equalUsage(recs[i], std.UsageHistory[i]) {
					t.Fatalf("usage decoders disagree on record %d of %q:\n%+v\n%+v", i, b, recs[i], std.UsageHistory[i])
				}
			}
		}
		var c struct {
			ConnectionHistory []ConnectionEvent `json:"connectionHistory"`
		}
		if json.Unmarshal(b, &c) == nil {
			for _, e := range c.ConnectionHistory {
				if e.Err == nil && e.OccurredAt.IsZero() {
					t.Errorf("event without error has no time: %s", e.Raw)
				}
			}
		}
	})
}

func equalEvents(a, b ConnectionEvent) bool {
	if !a.OccurredAt.Equal(b.OccurredAt) || a.OccurredAtText != b.OccurredAtText || (a.Err == nil) != (b.Err == nil) || len(a.Attributes) != len(b.Attributes) {
		return false
	}
	for i := range a.Attributes {
		if a.Attributes[i] != b.Attributes[i] {
			return false
		}
	}
	return true
}

func FuzzFastEvent(f *testing.F) {
	ex := vendorExample(f, "connection-history.txt", "Example Success Response")
	var page struct {
		ConnectionHistory []json.RawMessage `json:"connectionHistory"`
	}
	if err := json.Unmarshal(ex, &page); err != nil {
		f.Fatal(err)
	}
	for _, r := range page.ConnectionHistory {
		f.Add([]byte(r))
	}
	f.Add([]byte(`{"connectionEventAttributes":[{"key":"A\u00e9\"","value":12.5},{"value":null,"key":"B"}],"occuredAt":"2015-12-17T14:12:36-05:00","extendedAttributes":null}`))
	f.Add([]byte(`{"occurredAt":"2015-12-17T14:12:36Z","occuredAt":"x","connectionEventAttributes":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow ConnectionEvent
		if !fastEvent(b, &fast) {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("fast decoder accepted invalid JSON %q", b)
		}
		_ = slow.slowDecode(b)
		if !equalEvents(fast, slow) {
			t.Fatalf("decoders disagree on %q:\nfast %+v\nslow %+v", b, fast, slow)
		}
	})
}

func equalUsage(a, b UsageRecord) bool {
	if !a.Timestamp.Equal(b.Timestamp) || a.TimestampText != b.TimestampText || a.Source != b.Source ||
		a.BytesUsed != b.BytesUsed || a.SMSUsed != b.SMSUsed || (a.Err == nil) != (b.Err == nil) ||
		len(a.ExtendedAttributes) != len(b.ExtendedAttributes) {
		return false
	}
	for i := range a.ExtendedAttributes {
		if a.ExtendedAttributes[i] != b.ExtendedAttributes[i] {
			return false
		}
	}
	return true
}

func FuzzFastUsage(f *testing.F) {
	f.Add([]byte(`{"bytesUsed":4096,"extendedAttributes":[{"key":"MoSms","value":"0"},{"key":"x"}],"smsUsed":"0","source":"Raw Usage","timestamp":"2020-12-01T00:00:00Z"}`))
	f.Add([]byte(`{"bytesUsed":"12abc","timestamp":"2026-13-45T99:00:00Z","source":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow UsageRecord
		if !fastUsage(b, &fast) {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("fast decoder accepted invalid JSON %q", b)
		}
		_ = slow.slowDecode(b)
		if !equalUsage(fast, slow) {
			t.Fatalf("decoders disagree on %q:\nfast %+v\nslow %+v", b, fast, slow)
		}
	})
}

// special, eight bytes at a time, finds the same first quote, backslash
// or control byte as a byte loop, for every length and position, with a
// second special byte after the first and bytes either side of the ones
// it looks for.
func TestSpecial(t *testing.T) {
	marks := []byte{0x00, 0x1f, 0x20, 0x21, '"', '\\', 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff}
	for n := 0; n <= 20; n++ {
		for pos := -1; pos < n; pos++ {
			for _, first := range marks {
				for _, second := range []byte{'a', '"', 0x01} {
					b := make([]byte, n)
					for i := range b {
						b[i] = byte(0x23 + (i*37)%0x39) // 0x23…0x5b: no quote, backslash or control byte
					}
					if pos >= 0 {
						b[pos] = first
						if pos+3 < n {
							b[pos+3] = second
						}
					}
					want := len(b)
					for i, c := range b {
						if c == '"' || c == '\\' || c < 0x20 {
							want = i
							break
						}
					}
					if got := special(b); got != want {
						t.Fatalf("special(% x) = %d, want %d", b, got, want)
					}
				}
			}
		}
	}
}

// The fast scanner reads attribute arrays as encoding/json does, whether
// an attribute takes the plain path ({"key":"…","value":…}) or the general
// one (spaces, escapes, members in another order, a missing value).
func TestScanAttributes(t *testing.T) {
	for _, c := range []struct {
		in   string
		must bool // the scanner decodes it itself
	}{
		{`[{"key":"A","value":"1"},{"key":"B","value":"2"}]`, true},
		{`[{"key":"A","value":null},{"key":"B","value":12.5},{"key":"C","value":true}]`, true},
		{`[{"key":"A\"B","value":"1"},{"key":"A\\","value":"x\u0041"}]`, true},
		{`[{"key":"A","value":"1" },{ "key":"B","value":"2"},{"key" : "C", "value" : "3"}]`, true},
		{`[{"value":"1","key":"A"},{"key":"B"},{"key":"","value":""}]`, true},
		{`[{"key":"ünï","value":"cødé ✓"}]`, true},
		{`[{"key":"A","value":"1","key":"Z"}]`, false},
		{`[{"key":"A","value":{"x":1}}]`, false},
	} {
		in := c.in
		var want []Attribute
		wantErr := json.Unmarshal([]byte(in), &want)
		for _, text := range []bool{false, true} {
			s := scan{b: []byte(in), valid: utf8.ValidString(in)}
			if text {
				s.text = in
			}
			got, err := s.attributes(nil)
			if wantErr != nil {
				if err == nil {
					t.Errorf("%s: decoded %v, encoding/json says %v", in, got, wantErr)
				}
				continue
			}
			if err != nil {
				// The scanner may hand a record to encoding/json; it must
				// not decode it differently.
				if c.must {
					t.Errorf("%s (text %v): %v", in, text, err)
				}
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s (text %v):\n got %+v\nwant %+v", in, text, got, want)
			}
		}
	}
}
