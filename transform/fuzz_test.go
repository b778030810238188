package transform

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
)

// FuzzTransform decodes arbitrary bytes as the record array of a usage page
// and of a connection page, as the extract client does, and transforms
// them: no panic, every record exactly one row or one reject, every row as
// wide as its table with values of its columns' types. Seeded with the
// vendor pages' examples and the quirk pages in testdata/transform.
func FuzzTransform(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed pages in %s: %v", goldenDir, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var p struct {
			UsageHistory      json.RawMessage `json:"usageHistory"`
			ConnectionHistory json.RawMessage `json:"connectionHistory"`
		}
		if err := json.Unmarshal(data, &p); err != nil {
			f.Fatalf("decode %s: %v", file, err)
		}
		for _, seed := range []json.RawMessage{p.UsageHistory, p.ConnectionHistory} {
			if seed != nil {
				f.Add([]byte(seed))
			}
		}
	}
	tr := New()
	usageTab := schema.MustLookup(schema.UsageDaily)
	eventsTab := schema.MustLookup(schema.ConnectionEvents)
	dev := extract.DeviceID{Kind: "iccid", ID: "89141390780800784259"}
	f.Fuzz(func(t *testing.T, data []byte) {
		var usage []extract.UsageRecord
		if json.Unmarshal(data, &usage) == nil {
			rows, rejects := tr.Usage(dev, usage, time.Time{})
			checkFuzz(t, usageTab, len(usage), rows, rejects)
			failed := 0
			for _, r := range usage {
				if r.Err != nil {
					failed++
				}
			}
			if len(rejects) < failed {
				t.Errorf("%d records failed to decode, %d rejects", failed, len(rejects))
			}
		}
		var events []extract.ConnectionEvent
		if json.Unmarshal(data, &events) == nil {
			rows, rejects := tr.Events(dev, events, time.Time{})
			checkFuzz(t, eventsTab, len(events), rows, rejects)
		}
	})
}

func checkFuzz(t *testing.T, tab schema.Table, n int, rows []Row, rejects []Reject) {
	t.Helper()
	if len(rows)+len(rejects) != n {
		t.Fatalf("%s: %d records made %d rows and %d rejects", tab.Name, n, len(rows), len(rejects))
	}
	for i, r := range rows {
		if err := rowError(tab, r); err != nil {
			t.Fatalf("%s row %d: %v", tab.Name, i, err)
		}
	}
	for i, r := range rejects {
		if r.Reason == "" {
			t.Fatalf("%s reject %d has no reason", tab.Name, i)
		}
	}
}
