package load

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
)

// TestTransact: fn's writes commit when it returns nil, and are rolled
// back when it returns an error, panics, or its context ends; after a
// rollback the write connection is out of the transaction (the next
// Transact begins one).
func TestTransact(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	defer w.Close()
	exec(t, w, "CREATE TABLE tx_probe (x INTEGER)")
	insert := func(x int) func(*sql.Conn) error {
		return func(conn *sql.Conn) error {
			_, err := conn.ExecContext(ctx, "INSERT INTO tx_probe VALUES (?)", x)
			return err
		}
	}
	// stored reads through the write connection: it would see rows of a
	// transaction left open on it.
	stored := func() string {
		return one(t, w, "SELECT coalesce(string_agg(x::VARCHAR, ',' ORDER BY x), '') FROM tx_probe")
	}
	// committed reads through the second connection: committed rows only.
	committed := func() string {
		var s string
		if err := w.read.QueryRow("SELECT coalesce(string_agg(x::VARCHAR, ',' ORDER BY x), '') FROM tx_probe").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	check := func(what, want string) {
		t.Helper()
		if got := stored(); got != want {
			t.Errorf("%s: the write connection sees %q, want %q", what, got, want)
		}
		if got := committed(); got != want {
			t.Errorf("%s: committed %q, want %q", what, got, want)
		}
	}

	if err := w.Transact(ctx, insert(1)); err != nil {
		t.Fatalf("fn returned nil: %v", err)
	}
	check("after a commit", "1")

	failed := errors.New("fn failed")
	err := w.Transact(ctx, func(conn *sql.Conn) error {
		if err := insert(2)(conn); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Errorf("fn failed: Transact returned %v, want fn's error", err)
	}
	check("after fn failed", "1")

	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("fn panicked with boom: recovered %v, want the panic to go on", p)
			}
		}()
		_ = w.Transact(ctx, func(conn *sql.Conn) error {
			_ = insert(3)(conn)
			panic("boom")
		})
		t.Error("Transact returned after fn panicked")
	}()
	check("after fn panicked", "1")

	// The context ends while fn runs and fn does not notice: nothing
	// commits.
	cctx, cancel := context.WithCancel(ctx)
	err = w.Transact(cctx, func(conn *sql.Conn) error {
		if err := insert(4)(conn); err != nil {
			return err
		}
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("context cancelled inside fn: Transact returned %v, want context.Canceled", err)
	}
	check("after the context ended inside fn", "1")

	// Already ended: fn does not run.
	ran := false
	err = w.Transact(cctx, func(*sql.Conn) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Errorf("context cancelled before: Transact returned %v, fn ran %v; want context.Canceled, fn not run", err, ran)
	}

	if err := w.Transact(ctx, insert(5)); err != nil {
		t.Fatalf("after the rollbacks: %v", err)
	}
	check("a commit after the rollbacks", "1,5")
}
