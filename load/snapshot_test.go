package load

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

func rows(r ...transform.Row) []transform.Row { return r }

// The snapshot holds every commit so far, opens read-only, is replaced
// whole by the next one while a reader of the old one keeps reading it, and
// leaves no temporary file behind.
func TestPublishSnapshot(t *testing.T) {
	dir := t.TempDir()
	w := open(t, filepath.Join(dir, "w.duckdb"))
	defer w.Close()
	snap := filepath.Join(t.TempDir(), "snap.duckdb")

	write(t, w, Unit{Table: schema.UsageDaily, Rows: rows(usageRow(1, 100), usageRow(2, 200))})
	if err := w.PublishSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	old, err := OpenReadOnly(ctx, snap)
	if err != nil {
		t.Fatalf("open the snapshot read-only: %v", err)
	}
	var n int
	if err := old.QueryRow(`SELECT count(*) FROM usage_daily`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("first snapshot: %d rows, %v; want 2", n, err)
	}

	// More rows, a second snapshot: the open reader still sees the first.
	write(t, w, Unit{Table: schema.UsageDaily, Rows: rows(usageRow(3, 300))})
	if err := w.PublishSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := old.QueryRow(`SELECT count(*) FROM usage_daily`).Scan(&n); err != nil || n != 2 {
		t.Errorf("the reader of the first snapshot: %d rows, %v; want 2", n, err)
	}
	// The driver shares one database instance per path within a process,
	// so the new file is seen once the old reader is closed (a reader in
	// another process sees it at once: cmd/thingsync's daemon tests).
	old.Close()
	fresh, err := OpenReadOnly(ctx, snap)
	if err != nil {
		t.Fatalf("open the second snapshot read-only: %v", err)
	}
	defer fresh.Close()
	if err := fresh.QueryRow(`SELECT count(*) FROM usage_daily`).Scan(&n); err != nil || n != 3 {
		t.Errorf("second snapshot: %d rows, %v; want 3", n, err)
	}

	// The warehouse goes on being written after a snapshot.
	write(t, w, Unit{Table: schema.UsageDaily, Rows: rows(usageRow(4, 400))})
	if got := one(t, w, `SELECT count(*) FROM usage_daily`); got != "4" {
		t.Errorf("warehouse after snapshots: %s rows, want 4", got)
	}

	entries, err := os.ReadDir(filepath.Dir(snap))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "snap.duckdb" {
			t.Errorf("left in the snapshot's directory: %s", e.Name())
		}
	}
}

// A snapshot path that is the warehouse itself is refused, and the file is
// untouched.
func TestPublishSnapshotOverTheWarehouse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := open(t, path)
	defer w.Close()
	if err := w.PublishSnapshot(ctx, path); err == nil {
		t.Fatal("publishing over the warehouse succeeded")
	}
	if got := one(t, w, `SELECT count(*) FROM usage_daily`); got != "0" {
		t.Errorf("warehouse after the refused snapshot: %s", got)
	}
}

// Temporary copies left by a publication killed part-way are removed by
// the next one; files that are not this snapshot's temporary copies stay.
func TestPublishSnapshotRemovesStaleCopies(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	defer w.Close()
	dir := t.TempDir()
	snap := filepath.Join(dir, "snap.duckdb")
	// What os.CreateTemp makes of the snapshot's pattern, as a kill leaves it.
	stale := []string{".snap.duckdb.1234567.tmp", ".snap.duckdb.9.tmp"}
	kept := []string{".snap.duckdb.notes.tmp", ".other.duckdb.123.tmp", "snap.duckdb.123.tmp", ".snap.duckdb.123.tmp.keep"}
	for _, name := range append(append([]string{}, stale...), kept...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("partial copy"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.PublishSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	for _, name := range stale {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("stale copy %s: %v, want it removed", name, err)
		}
	}
	for _, name := range kept {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s, not a temporary copy of the snapshot: %v, want it kept", name, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(kept)+1 {
		t.Errorf("%d files in the snapshot's directory, want %d (the kept ones and the snapshot)", len(entries), len(kept)+1)
	}
}
