package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/load"
)

// Peak memory of sql and export, each a real process, stays under a bound
// that does not depend on the result's size. The warehouse holds 400,000
// connection events of ~600 bytes each (~240 MB of text): before results
// were paged and partitions written one at a time (585-1855 MiB), sql --format csv held
// the whole result in DuckDB, --format table every rendered cell in Go, and
// export a Parquet writer per day of 366.
func TestSQLAndExportMemoryBounded(t *testing.T) {
	const (
		rows = 400_000
		// README states the bound: DuckDB's 128 MB limit plus the
		// program, a page of the result and DuckDB's own overhead.
		bound = 400 << 20
	)
	// Built by a child: ru_maxrss of a process started from this one
	// includes this one's peak (os/exec starts children with vfork), so
	// building it here would inflate every later child's measure.
	db := filepath.Join(t.TempDir(), "big.duckdb")
	build := exec.Command(os.Args[0], "-test.run=^TestBuildWideEventsWarehouse$")
	build.Env = append(os.Environ(), "THINGSYNC_TEST_WIDE_DB="+db, "THINGSYNC_TEST_WIDE_ROWS="+itoa(rows))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the warehouse: %v\n%s", err, out)
	}
	lake := filepath.Join(t.TempDir(), "lake")
	for _, tt := range []struct {
		name string
		args []string
		// out says the child did the whole job.
		out string
	}{
		{"sql csv", []string{"sql", "--format", "csv", "SELECT * FROM connection_events"}, "\n"},
		{"sql table", []string{"sql", "--format", "table", "SELECT * FROM connection_events"}, "(" + itoa(rows) + " rows)\n"},
		{"export", []string{"export", "--to", lake, "--tables", "connection_events"}, "connection_events: " + itoa(rows) + " rows"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tt.args...)
			cmd.Env = append(os.Environ(), "THINGSYNC_TEST_MAIN=1", "THINGSYNC_DB="+db, "TMPDIR="+t.TempDir())
			measure := measured(t, cmd)
			tail := &tailWriter{}
			var stderr strings.Builder
			cmd.Stdout, cmd.Stderr = tail, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v: %v\n%s", tt.args, err, stderr.String())
			}
			if !strings.Contains(tail.String(), tt.out) {
				t.Fatalf("%v: output ends %q, want %q (%d bytes written)", tt.args, tail.String(), tt.out, tail.n)
			}
			peak := measure()
			t.Logf("%v: peak RSS %d MiB, %d MiB written", tt.args, peak>>20, tail.n>>20)
			if peak > bound {
				t.Errorf("%v: peak RSS %d MiB, want at most %d MiB", tt.args, peak>>20, bound>>20)
			}
		})
	}
}

// tailWriter counts what is written and keeps its last bytes.
type tailWriter struct {
	n    int64
	last []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	w.last = append(w.last, p...)
	if len(w.last) > 4096 {
		w.last = append(w.last[:0], w.last[len(w.last)-4096:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string { return string(w.last) }

func itoa(n int) string { return strconv.Itoa(n) }

// TestBuildWideEventsWarehouse builds TestSQLAndExportMemoryBounded's
// warehouse when that test runs it as a child; otherwise it does nothing.
func TestBuildWideEventsWarehouse(t *testing.T) {
	path, rows := os.Getenv("THINGSYNC_TEST_WIDE_DB"), os.Getenv("THINGSYNC_TEST_WIDE_ROWS")
	if path == "" {
		return
	}
	n, err := strconv.Atoi(rows)
	if err != nil {
		t.Fatal(err)
	}
	w, err := load.Open(context.Background(), path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, err = w.DB().Exec(`INSERT INTO connection_events (device_kind, device_id, occurred_at, event, account_session_id, username, loaded_at)
		SELECT 'iccid', 'dev-' || (i % 1000), TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i * 79), CASE WHEN i % 2 = 0 THEN 'Start' ELSE 'Stop' END,
		       'session-' || (i // 2), repeat(chr(97 + (i % 26)::INTEGER), 580) || i, TIMESTAMPTZ '2026-11-22 12:00:00+00'
		FROM range($1) t(i)`, n)
	if err != nil {
		t.Fatal(err)
	}
}
