package statuspage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/load"
)

// In the daemon the page reads the warehouse only while the gate holds
// nothing: while a run or a callback holds it, the page says so (503)
// instead of opening the file a second time in the process.
func TestGateSourceWaitsForIdle(t *testing.T) {
	db := filepath.Join(t.TempDir(), "w.duckdb")
	g := load.NewGate(db, zerolog.Nop())
	_, release, err := g.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	src := GateSource(g, db, "")
	read := func(*sql.DB, From) error { return nil }
	if err := src(context.Background(), read); !errors.Is(err, ErrHeld) {
		t.Fatalf("read while the gate holds the warehouse: %v, want ErrHeld", err)
	}
	srv := httptest.NewServer(New(Options{Source: src}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET / while held: %d, want 503", resp.StatusCode)
	}
	release()
	var from From
	if err := src(context.Background(), func(_ *sql.DB, f From) error { from = f; return nil }); err != nil || from.Path != db || from.Snapshot {
		t.Fatalf("read once the gate let go: %v, from %+v", err, from)
	}
	// The read let go of the file: a run opens it again.
	if _, release, err = g.Acquire(context.Background()); err != nil {
		t.Fatalf("a run after the page's read: %v", err)
	}
	release()
}

// Drill-down parameters outside what the page offers are refused before
// anything is read.
func TestBadParametersRefused(t *testing.T) {
	reads := 0
	src := func(context.Context, func(*sql.DB, From) error) error { reads++; return nil }
	srv := httptest.NewServer(New(Options{Source: src}).Handler())
	defer srv.Close()
	for _, path := range []string{"/day?stream=rated&day=2026-11-01", "/day?stream=usage&day=yesterday",
		"/day?stream=usage&day=2026-11-01&state=gone", "/device?kind=iccid", "/device?kind=iccid&id=" + strings.Repeat("9", 300)} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", path, resp.StatusCode)
		}
	}
	if reads != 0 {
		t.Errorf("%d reads for refused requests", reads)
	}
}

// The snapshot stays open between requests while it is the published one;
// a new publication (a new file renamed over the path) is read at the next
// request.
func TestSnapshotKeptUntilRepublished(t *testing.T) {
	dir := t.TempDir()
	db, snap := filepath.Join(dir, "w.duckdb"), filepath.Join(dir, "snap.duckdb")
	wh, err := load.Open(context.Background(), db, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	src := FileSource(db, snap)
	count := func() (n int, handle *sql.DB) {
		t.Helper()
		err := src(context.Background(), func(d *sql.DB, f From) error {
			if !f.Snapshot {
				t.Errorf("read %+v, want the snapshot", f)
			}
			handle = d
			return d.QueryRow(`SELECT count(*) FROM devices`).Scan(&n)
		})
		if err != nil {
			t.Fatal(err)
		}
		return n, handle
	}
	for i := range 2 {
		if _, err := wh.DB().Exec(`INSERT INTO devices (device_kind, device_id) VALUES ('iccid', ?)`, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		if err := wh.PublishSnapshot(context.Background(), snap); err != nil {
			t.Fatal(err)
		}
		n1, h1 := count()
		n2, h2 := count()
		if n1 != i+1 || n2 != i+1 || h1 != h2 {
			t.Errorf("publication %d: %d then %d devices, same handle %v; want %d twice from one handle", i+1, n1, n2, h1 == h2, i+1)
		}
	}
}
