package transform

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract"
)

// pageJSON returns a JSON array of n records cycling through the records of
// the vendor example page file under key, each with its time field moved
// one minute on.
func pageJSON(tb testing.TB, file, key, timeKey string, n int) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(goldenDir, file))
	if err != nil {
		tb.Fatal(err)
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(data, &p); err != nil {
		tb.Fatal(err)
	}
	var recs []map[string]any
	if err := json.Unmarshal(p[key], &recs); err != nil {
		tb.Fatal(err)
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", -5*3600))
	out := make([]map[string]any, n)
	for i := range out {
		r := make(map[string]any, len(recs[i%len(recs)]))
		for k, v := range recs[i%len(recs)] {
			r[k] = v
		}
		r[timeKey] = start.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
		out[i] = r
	}
	b, err := json.Marshal(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// connectionPage is n decoded events of the connection history page (39
// attributes each).
func connectionPage(tb testing.TB, n int) []extract.ConnectionEvent {
	var evs []extract.ConnectionEvent
	if err := json.Unmarshal(pageJSON(tb, "connection-history.json", "connectionHistory", "occurredAt", n), &evs); err != nil {
		tb.Fatal(err)
	}
	return evs
}

func usagePage(tb testing.TB, n int) []extract.UsageRecord {
	var recs []extract.UsageRecord
	if err := json.Unmarshal(pageJSON(tb, "usage-history.json", "usageHistory", "timestamp", n), &recs); err != nil {
		tb.Fatal(err)
	}
	return recs
}

// The API's page size: 500 records.
const benchPage = 500

func BenchmarkEvents(b *testing.B) {
	tr := New()
	evs := connectionPage(b, benchPage)
	b.ReportAllocs()
	for b.Loop() {
		rows, rejects := tr.Events(eventDev, evs, time.Time{})
		if len(rows) != benchPage || len(rejects) != 0 {
			b.Fatalf("Events = %d rows, %d rejects", len(rows), len(rejects))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchPage), "ns/record")
}

func BenchmarkUsage(b *testing.B) {
	tr := New()
	recs := usagePage(b, benchPage)
	b.ReportAllocs()
	for b.Loop() {
		rows, rejects := tr.Usage(usageDev, recs, time.Time{})
		if len(rows) != benchPage || len(rejects) != 0 {
			b.Fatalf("Usage = %d rows, %d rejects", len(rows), len(rejects))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchPage), "ns/record")
}

// BenchmarkDecodeEvents measures what precedes Events in a sync: decoding a
// page with extract's types. It is here to put the transform's cost in
// proportion.
func BenchmarkDecodeEvents(b *testing.B) {
	data := pageJSON(b, "connection-history.json", "connectionHistory", "occurredAt", benchPage)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var evs []extract.ConnectionEvent
		if err := json.Unmarshal(data, &evs); err != nil || len(evs) != benchPage {
			b.Fatalf("decode = %d events, %v", len(evs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchPage), "ns/record")
}

func BenchmarkDecodeUsage(b *testing.B) {
	data := pageJSON(b, "usage-history.json", "usageHistory", "timestamp", benchPage)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var recs []extract.UsageRecord
		if err := json.Unmarshal(data, &recs); err != nil || len(recs) != benchPage {
			b.Fatalf("decode = %d records, %v", len(recs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchPage), "ns/record")
}
