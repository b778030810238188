// Package query decides what the sql command may run against the
// warehouse and how its answer prints: which file a query reads (the
// published snapshot when there is one, since a running sync holds the
// warehouse), what the session may touch (the file read-only, no other
// file but the allowed directories, no setting changed), which texts run
// (exactly one query; every other statement is refused before it runs),
// and the result as aligned columns, CSV or JSON, with a value rendering
// that holds for every DuckDB type.
package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
)

// MemoryLimit is DuckDB's buffer pool for analysts' queries. The driver
// hands a query's whole result to Go in one piece, so results are kept in a
// temporary table, which DuckDB spills past this limit, and read back a
// page at a time; sorts, joins and Parquet writes spill too.
const MemoryLimit = "128MB"

// Path is the file analysts' queries read: the published snapshot when
// there is one (a running sync holds the warehouse's lock), else the
// warehouse itself, which must exist.
func Path(warehouse, snapshot string) (string, error) {
	if snapshot != "" {
		if _, err := os.Stat(snapshot); err == nil {
			return snapshot, nil
		}
	}
	if err := load.CheckExists(warehouse); err != nil {
		return "", err
	}
	return warehouse, nil
}

// Session is one analyst's session on a warehouse file: one connection,
// read-only, that reads no file but the warehouse and the allowed
// directories, with a private spill directory.
type Session struct {
	db    *sql.DB
	conn  *sql.Conn
	spill string
}

// Open opens a session on the existing warehouse file at path. Queries
// may also read the files under the allow directories. DuckDB spills to a
// private directory under the system's temporary directory (TMPDIR),
// removed by Close. The error wraps load.ErrLocked when another process
// writes the file.
func Open(ctx context.Context, path string, allow []string) (*Session, error) {
	spill, err := os.MkdirTemp("", "thingsync-sql-")
	if err != nil {
		return nil, fmt.Errorf("create a temporary directory (set TMPDIR): %w", err)
	}
	s := &Session{spill: spill}
	if s.db, err = openReadOnly(ctx, path, allow, spill); err == nil {
		s.conn, err = s.db.Conn(ctx)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close ends the session and removes its spill directory.
func (s *Session) Close() error {
	var errs []error
	if s.conn != nil {
		errs = append(errs, s.conn.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(append(errs, os.RemoveAll(s.spill))...)
}

// openReadOnly opens an existing warehouse for analysts' queries. DuckDB's
// own switches keep the session from writing or reading any file but the
// warehouse, the allowed directories and its spill directory: the database
// is read-only, external access is off, no extension can be installed or
// loaded, and the configuration is locked, so no statement can undo any of
// that. Statements that are not queries are refused before they run by
// Run.
func openReadOnly(ctx context.Context, path string, allow []string, spill string) (*sql.DB, error) {
	if err := load.CheckFile(path); err != nil {
		return nil, err
	}
	connector, err := duckdb.NewConnector(path+"?access_mode=READ_ONLY&autoload_known_extensions=false&autoinstall_known_extensions=false&allow_community_extensions=false", nil)
	if err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", path, load.ExplainLock(err))
	}
	db := sql.OpenDB(connector)
	// One connection: a query's result table lives on it, and the settings
	// below are made once.
	db.SetMaxOpenConns(1)
	sets := []string{"SET memory_limit = " + schema.Literal(MemoryLimit), "SET temp_directory = " + schema.Literal(spill)}
	if len(allow) > 0 {
		dirs := make([]string, len(allow))
		for i, d := range allow {
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
			return nil, fmt.Errorf("open %s read-only: %w", path, load.ExplainLock(err))
		}
	}
	return db, nil
}

// RefusedError: a text Run refuses to run: a statement that is not a
// query, or more than one statement.
type RefusedError struct{ What string }

func (e *RefusedError) Error() string {
	return "refused " + e.What + ": sql runs exactly one query (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN), and nothing it runs writes a file or changes a setting"
}

// leadingWord is the first word of q after blanks, comments and opening
// parentheses, upper-cased, and whether a query may begin with it.
func leadingWord(q string) (string, bool) {
	for {
		q = strings.TrimLeft(q, " \t\r\n\f(")
		switch {
		case strings.HasPrefix(q, "--"):
			_, q, _ = strings.Cut(q, "\n")
			continue
		case strings.HasPrefix(q, "/*"):
			_, q, _ = strings.Cut(q[2:], "*/")
			continue
		}
		break
	}
	end := strings.IndexFunc(q, func(r rune) bool { return !unicode.IsLetter(r) })
	if end < 0 {
		end = len(q)
	}
	w := strings.ToUpper(q[:end])
	queryWords := []string{"SELECT", "WITH", "FROM", "VALUES", "DESCRIBE", "SHOW", "SUMMARIZE", "EXPLAIN", "TABLE", "PIVOT", "UNPIVOT"}
	return w, slices.Contains(queryWords, w)
}

// statementNames names the statement types Run refuses, for the
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

// Result is the result of one analyst query. A SELECT's rows wait in
// a temporary table (DuckDB spills it past its memory limit) and are read
// back in pages of PageRows rows, so neither side holds the whole result;
// they can be read more than once. EXPLAIN runs directly, once.
type Result struct {
	conn *sql.Conn
	// columns are the query's column names as it names them (the table
	// would make duplicates unique).
	columns []string
	// Rows is the row count of a kept result.
	Rows  int64
	query string
	kept  bool
	read  bool
}

// PageRows is how many rows one page of a kept result holds.
const PageRows = 16384

const resultTable = "thingsync_result"

// Run checks that q is exactly one query and runs it. Anything else (COPY,
// EXPORT, ATTACH, INSTALL, LOAD, SET, PRAGMA, CHECKPOINT, several
// statements) is refused before it runs, with a *RefusedError. DuckDB's
// parser counts and types the statements; the text itself is read only for
// its first word, to refuse what is not a query before DuckDB prepares it.
func (s *Session) Run(ctx context.Context, q string) (*Result, error) {
	conn := s.conn
	res := &Result{conn: conn, query: q}
	// DuckDB carries out part of some statements while it prepares them
	// (EXPORT DATABASE creates its directory, in an --allow directory
	// too): a text that begins with one of DuckDB's keywords other than a
	// query's is refused before DuckDB prepares it. Any other first word
	// is a typo DuckDB's parser names; its statement type below decides.
	if w, ok := leadingWord(q); !ok {
		var keyword bool
		err := conn.QueryRowContext(ctx, `SELECT count(*) > 0 FROM duckdb_keywords() WHERE keyword_name = lower($1)`, w).Scan(&keyword)
		if err != nil {
			return nil, fmt.Errorf("read DuckDB's keywords: %w", err)
		}
		if keyword || w == "" {
			if w == "" {
				w = "a text that does not begin as a query"
			}
			return nil, &RefusedError{What: w}
		}
	}
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
		res.columns = make([]string, n)
		for i := range n {
			if res.columns[i], err = ds.ColumnName(i); err != nil {
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

// Names are the query's column names as it gave them.
func (r *Result) Names() []string { return r.columns }

// Repeatable reports whether Each may run more than once.
func (r *Result) Repeatable() bool { return r.kept }

// Each calls fn with the result's rows, a page at a time, in the query's
// order.
func (r *Result) Each(ctx context.Context, fn func(*sql.Rows) error) error {
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
