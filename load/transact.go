package load

import (
	"context"
	"database/sql"
	"fmt"
)

// Transact runs fn in one transaction on the warehouse's write connection,
// which fn receives: the transaction commits when fn returns nil, and
// rolls back when fn returns an error or panics (the panic goes on after
// the rollback), or when ctx ends before the commit. Staging tables and the
// Appender live on a connection, so fn gets the connection itself rather
// than a *sql.Tx. The warehouse has one write connection: other writes
// wait until fn returns.
func (w *Warehouse) Transact(ctx context.Context, fn func(conn *sql.Conn) error) error {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("warehouse connection: %w", err)
	}
	defer conn.Close()
	return transact(ctx, conn, fn)
}

// transact is Transact on a connection the caller holds (and may have
// configured). It is the only place a transaction begins, commits or
// rolls back.
func transact(ctx context.Context, conn *sql.Conn, fn func(conn *sql.Conn) error) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			rollback(ctx, conn)
			panic(p)
		}
		if err != nil {
			rollback(ctx, conn)
		}
	}()
	if err := fn(conn); err != nil {
		return err
	}
	// The driver runs no statement once ctx has ended, COMMIT included:
	// a caller that gave up commits nothing.
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// rollback ends the transaction whatever ctx says: a cancelled context
// must not leave the connection inside a transaction. Its error is not
// reported: after a failed COMMIT DuckDB may have ended the transaction
// already, and the caller has the error that caused the rollback.
func rollback(ctx context.Context, conn *sql.Conn) {
	_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
}
