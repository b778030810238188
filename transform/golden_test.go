package transform

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thingsync/thingsync/schema"
)

var update = flag.Bool("update", false, "rewrite testdata/transform/*.golden from the current output")

const goldenDir = "../testdata/transform"

// TestGolden transforms each response page in testdata/transform (the
// vendor's usage and connection history examples, and the same pages bent
// the ways real pages bend) and compares every row and reject with the
// .golden file beside it. Regenerate with go test ./transform -update.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no pages in %s: %v", goldenDir, err)
	}
	tr := New()
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var p page
			if err := json.Unmarshal(data, &p); err != nil {
				t.Fatalf("decode %s: %v", file, err)
			}
			dev := vendorConnectionDevice
			if p.DeviceID != nil {
				dev = *p.DeviceID
			}
			var got strings.Builder
			check := func(tab schema.Table, n int, rows []Row, rejects []Reject) {
				if len(rows)+len(rejects) != n {
					t.Errorf("%d records made %d rows and %d rejects", n, len(rows), len(rejects))
				}
				for i, r := range rows {
					if err := rowError(tab, r); err != nil {
						t.Errorf("row %d: %v", i, err)
					}
				}
				got.WriteString(render(tab, rows, rejects))
			}
			if p.UsageHistory != nil {
				rows, rejects := tr.Usage(dev, p.UsageHistory, time.Time{})
				check(schema.MustLookup(schema.UsageDaily), len(p.UsageHistory), rows, rejects)
			}
			if p.ConnectionHistory != nil {
				rows, rejects := tr.Events(dev, p.ConnectionHistory, time.Time{})
				check(schema.MustLookup(schema.ConnectionEvents), len(p.ConnectionHistory), rows, rejects)
			}
			golden := strings.TrimSuffix(file, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./transform -update)", err)
			}
			if d := cmp.Diff(string(want), got.String()); d != "" {
				t.Errorf("transform(%s) mismatch (-want +got):\n%s", filepath.Base(file), d)
			}
		})
	}
}
