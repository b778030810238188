package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/thingsync/thingsync/schema"
)

// QueryMemoryLimit is DuckDB's buffer pool for analysts' queries. The driver hands a query's whole result to Go in one piece, so
// results are kept in a temporary table, which DuckDB spills past this
// limit, and read back a page at a time; sorts, joins and Parquet writes
// spill too.
const QueryMemoryLimit = "128MB"

// QueryOptions says what an analyst's session may touch besides the
// warehouse.
type QueryOptions struct {
	// Allow lists directories whose files queries may read (read_parquet of
	// an export directory, say). No other file is readable.
	Allow []string
	// TempDir is where DuckDB spills what does not fit in its memory limit:
	// a private directory the caller creates and removes.
	TempDir string
}

// OpenQuery opens an existing warehouse for analysts' queries. DuckDB's own
// switches keep the session from writing or reading any file but the
// warehouse, the allowed directories and its spill directory: the
// database is read-only, external access is off, no extension can be
// installed or loaded, and the configuration is locked, so no statement
// can undo any of that. Statements that are not queries are refused
// before they run by RunQuery.
func OpenQuery(ctx context.Context, path string, opts QueryOptions) (*sql.DB, error) {
	if err := CheckFile(path); err != nil {
		return nil, err
	}
	connector, err := duckdb.NewConnector(path+"?access_mode=READ_ONLY&autoload_known_extensions=false&autoinstall_known_extensions=false&allow_community_extensions=false", nil)
	if err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", path, explainLock(err))
	}
	db := sql.OpenDB(connector)
	// One connection: a query's result table lives on it, and the settings
	// below are made once.
	db.SetMaxOpenConns(1)
	sets := []string{"SET memory_limit = " + schema.Literal(QueryMemoryLimit)}
	if opts.TempDir != "" {
		sets = append(sets, "SET temp_directory = "+schema.Literal(opts.TempDir))
	}
	if len(opts.Allow) > 0 {
		dirs := make([]string, len(opts.Allow))
		for i, d := range opts.Allow {
			abs, err := filepath.Abs(d)
			if err != nil {
				db.Close()
				return nil, fmt.Errorf("allowed directory %s: %w", d, err)
			}
			dirs[i] = schema.Literal(abs)
		}
		// Before external access is switched off: afterwards the list is fixed.
		sets = append(sets, "SET allowed_directories = ["+strings.Join(dirs, ", ")+"]")
	}
	sets = append(sets, "SET enable_external_access = false", "SET lock_configuration = true")
	for _, s := range sets {
		if _, err := db.ExecContext(ctx, s); err != nil {
			db.Close()
			return nil, fmt.Errorf("open %s read-only: %w", path, explainLock(err))
		}
	}
	return db, nil
}

// RefusedError: a text RunQuery refuses to run: a statement that is not a
// query, or more than one statement.
type RefusedError struct{ What string }

func (e *RefusedError) Error() string {
	return "refused " + e.What + ": sql runs exactly one query (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN), and nothing it runs writes a file or changes a setting"
}

// statementNames names the statement types RunQuery refuses, for the
// message.
var statementNames = map[duckdb.StmtType]string{
	duckdb.STATEMENT_TYPE_INSERT: "INSERT", duckdb.STATEMENT_TYPE_UPDATE: "UPDATE", duckdb.STATEMENT_TYPE_DELETE: "DELETE",
	duckdb.STATEMENT_TYPE_PREPARE: "PREPARE", duckdb.STATEMENT_TYPE_CREATE: "CREATE", duckdb.STATEMENT_TYPE_EXECUTE: "EXECUTE",
	duckdb.STATEMENT_TYPE_ALTER: "ALTER", duckdb.STATEMENT_TYPE_TRANSACTION: "BEGIN/COMMIT/ROLLBACK",
	duckdb.STATEMENT_TYPE_COPY: "COPY", duckdb.STATEMENT_TYPE_ANALYZE: "ANALYZE/VACUUM",
	duckdb.STATEMENT_TYPE_VARIABLE_SET: "SET", duckdb.STATEMENT_TYPE_CREATE_FUNC: "CREATE FUNCTION",
	duckdb.STATEMENT_TYPE_DROP: "DROP", duckdb.STATEMENT_TYPE_EXPORT: "EXPORT", duckdb.STATEMENT_TYPE_PRAGMA: "PRAGMA",
	duckdb.STATEMENT_TYPE_VACUUM: "VACUUM", duckdb.STATEMENT_TYPE_CALL: "CALL/CHECKPOINT", duckdb.STATEMENT_TYPE_SET: "SET/RESET/USE",
	duckdb.STATEMENT_TYPE_LOAD: "INSTALL/LOAD", duckdb.STATEMENT_TYPE_EXTENSION: "an extension's statement",
	duckdb.STATEMENT_TYPE_ATTACH: "ATTACH", duckdb.STATEMENT_TYPE_DETACH: "DETACH",
}

// QueryResult is the result of one analyst query. A SELECT's rows wait in
// a temporary table (DuckDB spills it past its memory limit) and are read
// back in pages of PageRows rows, so neither side holds the whole result;
// they can be read more than once. EXPLAIN runs directly, once.
type QueryResult struct {
	conn *sql.Conn
	// Columns are the query's column names as it names them (the table
	// would make duplicates unique).
	Columns []string
	// Rows is the row count of a kept result.
	Rows  int64
	query string
	kept  bool
	read  bool
}

// PageRows is how many rows one page of a kept result holds.
const PageRows = 16384

const resultTable = "thingsync_result"

// RunQuery checks that q is exactly one query and runs it on conn (of a
// database opened by OpenQuery). Anything else (COPY, EXPORT, ATTACH,
// INSTALL, LOAD, SET, PRAGMA, CHECKPOINT, several statements) is refused
// before it runs, with a *RefusedError. DuckDB's parser counts and types the
// statements: nothing here reads SQL text.
func RunQuery(ctx context.Context, conn *sql.Conn, q string) (*QueryResult, error) {
	res := &QueryResult{conn: conn, query: q}
	var typ duckdb.StmtType
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdb.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		// Prepare, unlike PrepareContext, refuses a text of several
		// statements instead of running all but the last.
		st, err := c.Prepare(q)
		if err != nil {
			return err
		}
		defer st.Close()
		ds := st.(*duckdb.Stmt)
		if typ, err = ds.StatementType(); err != nil {
			return err
		}
		n, err := ds.ColumnCount()
		if err != nil {
			return err
		}
		res.Columns = make([]string, n)
		for i := range n {
			if res.Columns[i], err = ds.ColumnName(i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if strings.Contains(err.Error(), "multi-statement") {
			return nil, &RefusedError{What: "more than one statement"}
		}
		return nil, err
	}
	switch typ {
	case duckdb.STATEMENT_TYPE_SELECT:
	case duckdb.STATEMENT_TYPE_EXPLAIN:
		return res, nil
	default:
		name := statementNames[typ]
		if name == "" {
			name = fmt.Sprintf("type %d", typ)
		}
		return nil, &RefusedError{What: name}
	}
	// query() takes the text as a value: it is parsed again by DuckDB, as
	// one SELECT, and never spliced into this statement.
	_, err = conn.ExecContext(ctx, "CREATE OR REPLACE TEMP TABLE "+resultTable+" AS FROM query($1)", q)
	if err != nil {
		if strings.Contains(err.Error(), "Expected a single SELECT statement") {
			// A query DuckDB rewrites from another statement (PRAGMA
			// table_info): small; it runs directly.
			return res, nil
		}
		return nil, err
	}
	res.kept = true
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+resultTable).Scan(&res.Rows); err != nil {
		return nil, fmt.Errorf("count result rows: %w", err)
	}
	return res, nil
}

// Repeatable reports whether Each may run more than once.
func (r *QueryResult) Repeatable() bool { return r.kept }

// Each calls fn with the result's rows, a page at a time, in the query's
// order.
func (r *QueryResult) Each(ctx context.Context, fn func(*sql.Rows) error) error {
	if !r.kept {
		if r.read {
			return errors.New("the result of this statement can be read once")
		}
		r.read = true
		rows, err := r.conn.QueryContext(ctx, r.query)
		if err != nil {
			return err
		}
		defer rows.Close()
		if err := fn(rows); err != nil {
			return err
		}
		return rows.Close()
	}
	// rowid follows the order the query returned its rows in, and a scan
	// returns them in that order: DuckDB preserves insertion order (the
	// setting is locked). An ORDER BY rowid would cost a sort per page.
	for from := int64(0); from < r.Rows || from == 0; from += PageRows {
		rows, err := r.conn.QueryContext(ctx, "SELECT * FROM "+resultTable+" WHERE rowid >= $1 AND rowid < $2", from, from+PageRows)
		if err != nil {
			return fmt.Errorf("read result rows: %w", err)
		}
		err = fn(rows)
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
