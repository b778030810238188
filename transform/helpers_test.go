package transform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
)

// rowError says what is wrong with a row of table tab, or returns nil: one
// value per column, each of the Go type its column's type calls for,
// instants in UTC, dates at midnight, loader columns left NULL, unknown keys
// really unknown.
func rowError(tab schema.Table, r Row) error {
	if len(r.Values) != len(tab.Columns) {
		return fmt.Errorf("%d values for %d columns of %s", len(r.Values), len(tab.Columns), tab.Name)
	}
	for i, c := range tab.Columns {
		v := r.Values[i]
		if v == nil {
			if c.Key && c.Name != "account_session_id" {
				return fmt.Errorf("key column %s is NULL", c.Name)
			}
			continue
		}
		if c.Loader {
			return fmt.Errorf("loader column %s set to %v", c.Name, v)
		}
		ok := false
		switch c.Type {
		case schema.Varchar:
			_, ok = v.(string)
		case schema.BigInt:
			_, ok = v.(int64)
		case schema.Integer:
			_, ok = v.(int32)
		case schema.Double:
			_, ok = v.(float64)
		case schema.Boolean:
			_, ok = v.(bool)
		case schema.VarcharList:
			_, ok = v.([]string)
		case schema.Date, schema.TimestampTZ:
			var ts time.Time
			if ts, ok = v.(time.Time); ok {
				if ts.Location() != time.UTC {
					return fmt.Errorf("%s = %v is not in UTC", c.Name, ts)
				}
				if c.Type == schema.Date && !ts.Equal(ts.Truncate(24*time.Hour)) {
					return fmt.Errorf("%s = %v is not a midnight", c.Name, ts)
				}
			}
		}
		if !ok {
			return fmt.Errorf("%s %s holds %T %v", c.Name, c.Type, v, v)
		}
	}
	attrs := tab.AttrColumns()
	for _, a := range r.Unknown {
		if _, ok := attrs[schema.AttrKey(a.Key)]; ok {
			return fmt.Errorf("known key %q in Unknown", a.Key)
		}
	}
	return nil
}

// value returns the named column of a row.
func value(tab schema.Table, r Row, col string) any {
	i := tab.Index(col)
	if i < 0 {
		panic("no column " + col)
	}
	return r.Values[i]
}

// render prints rows and rejects for a golden file: every column with its
// Go type, so int32 vs int64 and UTC vs another zone show.
func render(tab schema.Table, rows []Row, rejects []Reject) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s: %d rows, %d rejects\n", tab.Name, len(rows), len(rejects))
	for i, r := range rows {
		fmt.Fprintf(&b, "\nrow %d\n", i)
		for j, c := range tab.Columns {
			fmt.Fprintf(&b, "  %-42s %s\n", c.Name, show(r.Values[j]))
		}
		for _, u := range r.Unknown {
			fmt.Fprintf(&b, "  unknown %q = %q (null %v)\n", u.Key, u.Value, u.Null)
		}
	}
	for i, rj := range rejects {
		var raw bytes.Buffer
		if err := json.Compact(&raw, rj.Raw); err != nil {
			raw.Reset()
			raw.Write(rj.Raw)
		}
		fmt.Fprintf(&b, "\nreject %d\n  stream %s\n  device %s\n  reason %s\n  raw    %s\n", i, rj.Stream, rj.Device, rj.Reason, raw.String())
	}
	return b.String()
}

func show(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return fmt.Sprintf("string %q", v)
	case time.Time:
		return "time   " + v.String()
	case []string:
		return fmt.Sprintf("list   %q", v)
	default:
		return fmt.Sprintf("%-6T %v", v, v)
	}
}

// page is a usage or connection history response, as the testdata holds
// them; deviceId is present on usage pages (and added to the quirk pages).
type page struct {
	DeviceID          *extract.DeviceID         `json:"deviceId"`
	UsageHistory      []extract.UsageRecord     `json:"usageHistory"`
	ConnectionHistory []extract.ConnectionEvent `json:"connectionHistory"`
}

// vendorConnectionDevice is the device of the connection history page's
// example request (the response does not repeat it).
var vendorConnectionDevice = extract.DeviceID{Kind: "iccid", ID: "89141390780800784259"}

func decodeUsage(t testing.TB, js string) extract.UsageRecord {
	t.Helper()
	var r extract.UsageRecord
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("decode usage record %s: %v", js, err)
	}
	return r
}

func decodeEvent(t testing.TB, js string) extract.ConnectionEvent {
	t.Helper()
	var e extract.ConnectionEvent
	if err := json.Unmarshal([]byte(js), &e); err != nil {
		t.Fatalf("decode connection event %s: %v", js, err)
	}
	return e
}

// outcome is what a test expects of one record: a reject whose reason
// contains Reject, or a row with these column values (others unchecked) and
// exactly these unknown attributes.
type outcome struct {
	Reject  string
	Cols    map[string]any
	Unknown []extract.Attribute
}

func (o outcome) String() string {
	if o.Reject != "" {
		return fmt.Sprintf("reject containing %q", o.Reject)
	}
	return fmt.Sprintf("row with %v unknown %v", o.Cols, o.Unknown)
}

// mismatch compares one record's transform with want; "" when it matches.
func mismatch(tab schema.Table, rows []Row, rejects []Reject, want outcome) string {
	if len(rows)+len(rejects) != 1 {
		return fmt.Sprintf("%d rows and %d rejects for one record", len(rows), len(rejects))
	}
	if want.Reject != "" {
		if len(rejects) != 1 {
			return fmt.Sprintf("a row: %s", render(tab, rows, nil))
		}
		if !strings.Contains(rejects[0].Reason, want.Reject) {
			return fmt.Sprintf("reject %q", rejects[0].Reason)
		}
		return ""
	}
	if len(rows) != 1 {
		return fmt.Sprintf("reject %q", rejects[0].Reason)
	}
	if err := rowError(tab, rows[0]); err != nil {
		return err.Error()
	}
	var diffs []string
	for col, w := range want.Cols {
		got := value(tab, rows[0], col)
		if fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", w, w) {
			diffs = append(diffs, fmt.Sprintf("%s = %T %v", col, got, got))
		}
	}
	if fmt.Sprint(rows[0].Unknown) != fmt.Sprint(want.Unknown) {
		diffs = append(diffs, fmt.Sprintf("unknown %v", rows[0].Unknown))
	}
	return strings.Join(diffs, ", ")
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
