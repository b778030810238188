package ingest

import (
	"bufio"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
)

// lines collects JSON log lines from many goroutines.
type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// find returns the fields of every line whose message is msg.
func (l *lines) find(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.b.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// Under THINGSYNC_RATE_LIMIT=auto a run starts at the rate the last one
// kept in the warehouse and keeps the rate it reached for the next; a run
// that starts cold and never meets the API's ceiling learns nothing.
func TestRunLearnsTheRate(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "w.duckdb")
	r := testRunner(t, db)
	r.Config.RateLimit, r.Config.RateAuto = 250, true
	r.Config.Start = t0.AddDate(0, 0, -5) // few requests: the first run starts at 10/s
	logs := &lines{}
	r.Log = zerolog.New(logs)
	var shown []float64
	var mu sync.Mutex
	r.Progress = func(log zerolog.Logger, kind string) (func(extract.Progress), func()) {
		return func(p extract.Progress) { mu.Lock(); shown = append(shown, p.RateLimit); mu.Unlock() }, func() {}
	}
	learned := func() (string, string, bool) {
		t.Helper()
		w, err := load.Open(ctx, db, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		v, ok, err := w.Learned(ctx, LearnedRate)
		if err != nil {
			t.Fatal(err)
		}
		var run string
		if ok {
			if err := w.DB().QueryRowContext(ctx, `SELECT run_id FROM sync_learned WHERE name = ?`, LearnedRate).Scan(&run); err != nil {
				t.Fatal(err)
			}
		}
		return v, run, ok
	}
	started := func(i int) map[string]any {
		t.Helper()
		got := logs.find(t, "adaptive request rate")
		if len(got) != i+1 {
			t.Fatalf("%d runs said how their rate starts, want %d", len(got), i+1)
		}
		return got[i]
	}
	sync := func() Report {
		t.Helper()
		rep, err := r.Run(ctx, Spec{Kind: "sync", Streams: []string{"usage", "connections"}})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	rep0 := sync()
	t.Logf("first run: %s", rep0.Summary)
	if s := started(0); s["rate_start"] != extract.RateStart || s["learned"] != false || s["rate_max"] != 250.0 {
		t.Errorf("first run: %v; want a start at %v, nothing learned, max 250", s, extract.RateStart)
	}
	if v, _, ok := learned(); ok {
		t.Errorf("a cold run that met no ceiling kept %s", v)
	}

	// What an earlier run learned when the API throttled it.
	w, err := load.Open(ctx, db, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetLearned(ctx, LearnedRate, "37.5", t0, "earlier"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	shown = nil
	rep := sync()
	t.Logf("second run: %s", rep.Summary)
	if s := started(1); s["rate_start"] != 37.5 || s["learned"] != true {
		t.Errorf("second run: %v; want a start at the learned 37.5", s)
	}
	if len(shown) == 0 || shown[0] < 37.5 || shown[0] > 50 {
		t.Errorf("the progress showed the rates %v, want from 37.5", shown)
	}
	v, run, ok := learned()
	if !ok || run != rep.RunID {
		t.Fatalf("after the second run sync_learned holds %q from run %q, want the run %s's", v, run, rep.RunID)
	}
	if !strings.HasSuffix(rep.Summary, "/s at the end") {
		t.Errorf("summary %q does not say the rate", rep.Summary)
	}
	sync()
	if s := started(2); s["rate_start"] != mustFloat(t, v) || s["learned"] != true {
		t.Errorf("third run: %v; want a start at the %s the second kept", s, v)
	}
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	var f float64
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return f
}
