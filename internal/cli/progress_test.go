package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract"
)

// On a terminal the walk draws a bar: devices done of total, records,
// rate and ETA.
func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	update, finish := progressBar(&out, "sync")
	// The bar redraws at most every 200 ms: each state is sent again until
	// it is drawn. The fifth device never comes, so the bar is not
	// finished (and cleared) before the test reads it.
	for i := 1; i <= 4; i++ {
		p := extract.Progress{DevicesTotal: 5, DevicesDone: i, Records: int64(100 * i)}
		drawn := fmt.Sprintf("(%d/5", i)
		deadline := time.Now().Add(10 * time.Second)
		for update(p); !strings.Contains(out.String(), drawn); update(p) {
			if time.Now().After(deadline) {
				t.Fatalf("state %d/5 not drawn within 10 s: %q", i, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	got := out.String()
	finish()
	for _, want := range []string{"sync: 400 records", "(3/5", "devices/s"} {
		if !strings.Contains(got, want) {
			t.Errorf("bar output lacks %q: %q", want, got)
		}
	}
}
