package extract

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// BenchmarkDecodeConnectionPage measures the decoder a sync uses on a full
// page of 500 events (the vendor example's records, repeated, compact as
// the API sends them).
func BenchmarkDecodeConnectionPage(b *testing.B) {
	data, err := os.ReadFile("../testdata/transform/connection-history.json")
	if err != nil {
		b.Fatal(err)
	}
	var p struct {
		ConnectionHistory []json.RawMessage `json:"connectionHistory"`
	}
	if err := json.Unmarshal(data, &p); err != nil || len(p.ConnectionHistory) == 0 {
		b.Fatalf("example page: %v", err)
	}
	page := struct {
		ConnectionHistory []json.RawMessage `json:"connectionHistory"`
		HasMoreData       bool              `json:"hasMoreData"`
	}{}
	for i := 0; i < 500; i++ {
		var c bytes.Buffer
		if err := json.Compact(&c, p.ConnectionHistory[i%len(p.ConnectionHistory)]); err != nil {
			b.Fatal(err)
		}
		page.ConnectionHistory = append(page.ConnectionHistory, c.Bytes())
	}
	body, err := json.Marshal(page)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		evs, _, ok := decodeConnectionPage(body)
		if !ok || len(evs) != 500 {
			b.Fatalf("decoded %d events, ok %v", len(evs), ok)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/event")
}
