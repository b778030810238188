package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Learned reads what a run learned under name (ok false: nothing yet).
func (w *Warehouse) Learned(ctx context.Context, name string) (value string, ok bool, err error) {
	return learned(ctx, w.db, name)
}

// ReadLearned is Learned on a warehouse opened read-only (OpenReadOnly),
// whose file may predate sync_learned (nothing learned).
func ReadLearned(ctx context.Context, db *sql.DB, name string) (value string, ok bool, err error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables() WHERE table_name = 'sync_learned'`).Scan(&n); err != nil || n == 0 {
		return "", false, err
	}
	return learned(ctx, db, name)
}

func learned(ctx context.Context, db *sql.DB, name string) (value string, ok bool, err error) {
	err = db.QueryRowContext(ctx, `SELECT value FROM sync_learned WHERE name = ?`, name).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read what runs learned (%s): %w", name, err)
	}
	return value, true, nil
}

// SetLearned keeps value under name for the next run.
func (w *Warehouse) SetLearned(ctx context.Context, name, value string, at time.Time, runID string) error {
	return w.Transact(ctx, func(conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, `DELETE FROM sync_learned WHERE name = ?`, name); err != nil {
			return fmt.Errorf("keep what the run learned (%s): %w", name, err)
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO sync_learned VALUES (?, ?, ?, ?)`, name, value, at.UTC(), runID); err != nil {
			return fmt.Errorf("keep what the run learned (%s): %w", name, err)
		}
		return nil
	})
}
