package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/ingest"
)

// Progress reports a run's advance on stderr: a bar on a terminal, a log
// line every few seconds elsewhere (and always for the daemon's runs).
func Progress(stderr io.Writer, log zerolog.Logger, kind string) (func(extract.Progress), func()) {
	if f, ok := stderr.(*os.File); ok && kind != "scheduled" && term.IsTerminal(int(f.Fd())) {
		return progressBar(f, kind)
	}
	return ingest.ProgressLog(log, kind), func() {}
}

// progressBar draws devices done / total, records, rate and ETA with
// schollz/progressbar; finish clears it before the summary line.
func progressBar(w io.Writer, kind string) (func(extract.Progress), func()) {
	var (
		mu  sync.Mutex
		bar *progressbar.ProgressBar
	)
	update := func(p extract.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if bar == nil {
			bar = progressbar.NewOptions(p.DevicesTotal, progressbar.OptionSetWriter(w),
				progressbar.OptionSetItsString("devices"), progressbar.OptionShowIts(), progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionSetWidth(24), progressbar.OptionClearOnFinish())
		}
		if p.DevicesTotal != bar.GetMax() {
			// Devices are listed page by page while earlier pages are
			// fetched: the total grows until the list is complete.
			bar.ChangeMax(p.DevicesTotal)
		}
		desc := fmt.Sprintf("%s: %d records", kind, p.Records)
		if p.DevicesFailed > 0 {
			desc += fmt.Sprintf(", %d failed", p.DevicesFailed)
		}
		bar.Describe(desc)
		_ = bar.Set(p.DevicesDone)
	}
	finish := func() {
		mu.Lock()
		defer mu.Unlock()
		if bar != nil {
			_ = bar.Finish()
		}
	}
	return update, finish
}
