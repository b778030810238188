package load

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/thingsync/thingsync/schema"
)

// migration is one versioned step. Steps are appended, never edited: a
// file records the versions it has and gets only the missing ones.
type migration struct {
	version     int
	description string
	up          func(ctx context.Context, conn *sql.Conn) error
}

func migrations() []migration {
	return []migration{
		{1, "create the warehouse from the schema package", createAll},
		{2, "device_history: an open period per device, from when the device list last showed it", seedHistory},
		{3, "usage_daily.is_provisional from the usage checkpoints", fillProvisional},
	}
}

func createAll(ctx context.Context, conn *sql.Conn) error {
	for _, t := range schema.Tables() {
		if err := execAll(ctx, conn, append([]string{t.CreateSQL()}, t.CommentSQL()...)); err != nil {
			return fmt.Errorf("create %s: %w", t.Name, err)
		}
	}
	return nil
}

func execAll(ctx context.Context, conn *sql.Conn, stmts []string) error {
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

// migrate applies missing migrations, then reconciles the file with the
// schema package: a column the schema declares that a table lacks is added
// (so an older file upgrades), and views are re-created.
func (w *Warehouse) migrate(ctx context.Context) error {
	return w.Transact(ctx, func(conn *sql.Conn) error { return w.migrateIn(ctx, conn) })
}

func (w *Warehouse) migrateIn(ctx context.Context, conn *sql.Conn) error {
	// The migrations table comes first: it says which migrations to run.
	migTable := schema.MustLookup(schema.SchemaMigrations)
	if err := execAll(ctx, conn, append([]string{migTable.CreateSQL()}, migTable.CommentSQL()...)); err != nil {
		return fmt.Errorf("create %s: %w", migTable.Name, err)
	}
	applied := map[int]bool{}
	rows, err := conn.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		applied[v] = true
	}
	rows.Close()
	for _, m := range migrations() {
		if applied[m.version] {
			continue
		}
		if err := m.up(ctx, conn); err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.description, err)
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, ?, ?)`, m.version, m.description, time.Now().UTC()); err != nil {
			return err
		}
		w.log.Info().Int("version", m.version).Str("migration", m.description).Msg("schema migrated")
	}
	// A new file was just created from the schema package: there is
	// nothing to reconcile, and re-creating its views would cost time.
	if len(applied) > 0 {
		if err := reconcile(ctx, conn); err != nil {
			return err
		}
	}
	return nil
}

func reconcile(ctx context.Context, conn *sql.Conn) error {
	have := map[string]map[string]bool{}
	rows, err := conn.QueryContext(ctx, `SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main' AND database_name = current_database()`)
	if err != nil {
		return fmt.Errorf("list columns: %w", err)
	}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			rows.Close()
			return err
		}
		if have[t] == nil {
			have[t] = map[string]bool{}
		}
		have[t][c] = true
	}
	rows.Close()
	for _, t := range schema.Tables() {
		if t.View != "" {
			if err := execAll(ctx, conn, append([]string{t.CreateSQL()}, t.CommentSQL()...)); err != nil {
				return fmt.Errorf("create view %s: %w", t.Name, err)
			}
			continue
		}
		if have[t.Name] == nil {
			// A table added to the schema after the file was created.
			if err := execAll(ctx, conn, append([]string{t.CreateSQL()}, t.CommentSQL()...)); err != nil {
				return fmt.Errorf("create %s: %w", t.Name, err)
			}
			continue
		}
		for _, c := range t.Columns {
			if have[t.Name][c.Name] {
				continue
			}
			stmts := []string{
				fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", schema.Ident(t.Name), schema.Ident(c.Name), c.Type),
				fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", schema.Ident(t.Name), schema.Ident(c.Name), schema.Literal(c.Comment)),
			}
			if err := execAll(ctx, conn, stmts); err != nil {
				return fmt.Errorf("add %s.%s: %w", t.Name, c.Name, err)
			}
		}
	}
	return nil
}

// fillProvisional gives usage_daily of a file made before the column
// existed its is_provisional, from the usage checkpoints, as settleUsage
// keeps it after.
func fillProvisional(ctx context.Context, conn *sql.Conn) error {
	t := schema.MustLookup(schema.UsageDaily)
	c, _ := t.Column(schema.ProvisionalColumn)
	return execAll(ctx, conn, []string{
		fmt.Sprintf("ALTER TABLE usage_daily ADD COLUMN IF NOT EXISTS %s %s", schema.Ident(c.Name), c.Type),
		fmt.Sprintf("COMMENT ON COLUMN usage_daily.%s IS %s", schema.Ident(c.Name), schema.Literal(c.Comment)),
		`UPDATE usage_daily u SET is_provisional = coalesce(u.usage_date >= p.sd, true)
		 FROM (SELECT k.device_kind, k.device_id, CAST(c.settled_until AT TIME ZONE 'UTC' AS DATE) AS sd
		       FROM (SELECT DISTINCT device_kind, device_id FROM usage_daily) k
		       LEFT JOIN sync_checkpoints c ON c.stream = 'usage' AND c.device_kind = k.device_kind AND c.device_id = k.device_id) p
		 WHERE u.device_kind = p.device_kind AND u.device_id = p.device_id`,
	})
}
