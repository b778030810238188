package ingest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
)

// The progress log lines name their units: eta_s and devices_per_s, not
// a bare number of milliseconds; they carry the request rate ceiling.
func TestProgressLogNamesUnits(t *testing.T) {
	var buf strings.Builder
	log := zerolog.New(&buf)
	ProgressLog(log, "sync")(extract.Progress{DevicesTotal: 10, DevicesDone: 10, Records: 5, RateLimit: 37.54})
	var line map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &line); err != nil {
		t.Fatalf("progress line %q: %v", buf.String(), err)
	}
	for _, k := range []string{"eta_s", "devices_per_s"} {
		if _, ok := line[k]; !ok {
			t.Errorf("progress line %s lacks %s", buf.String(), k)
		}
	}
	if line["rate_limit"] != 37.5 {
		t.Errorf("progress line %s: rate_limit %v, want 37.5", buf.String(), line["rate_limit"])
	}
	if _, ok := line["eta"]; ok {
		t.Errorf("progress line %s has a unit-less eta", buf.String())
	}
}
