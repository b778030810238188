// Package load writes the warehouse: DuckDB schema and migrations, schema
// evolution, set-based upserts of batches with their checkpoints in one
// transaction, run records.
package load

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/internal/clip"
)

// Warehouse is an open, migrated warehouse file.
type Warehouse struct {
	db *sql.DB
	// read is a second connection to the same database, for reads that
	// must not wait for the writer's open transaction (up to a few
	// seconds); it sees committed data only.
	read *sql.DB
	log  zerolog.Logger
	// evolved maps, per table, attribute keys as sent to the columns that
	// hold them ("extra" past the cap).
	evolved map[string]map[string]string
	// physical caches each fact table's columns in their physical order
	// (looking them up cost a catalog scan per batch); schema evolution
	// and loadEvolved drop it.
	physical map[string][]string
	// plans caches upsert plans per table and set of evolved columns
	// (Warehouse.plan).
	plans map[string]*upsertPlan
}

// Open opens (creating if needed) the warehouse read-write and brings its
// schema up to date.
func Open(ctx context.Context, path string, log zerolog.Logger) (*Warehouse, error) {
	if err := CheckFile(path); err != nil {
		return nil, err
	}
	connector, err := duckdb.NewConnector(path, nil)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, ExplainLock(err))
	}
	db := sql.OpenDB(connector)
	// One connection: DuckDB serialises writers anyway, and TEMP staging
	// tables live on a connection.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, ExplainLock(err))
	}
	// DuckDB's default buffer pool is 80% of RAM; the loader needs little
	// (batches are bounded), and the daemon shares the machine. Committed
	// rows wait in the pool for the checkpoint, so a long load fills it
	// whatever its size: a smaller pool is a smaller peak, in the same time.
	//
	// The WAL folds into the file at 256 MB rather than DuckDB's 16 MB: each
	// fold rewrites the last, partly filled row groups, so small folds cost
	// several times the commit time and a larger file.
	// The writer runs CHECKPOINT after a run; a crash replays the WAL.
	// docs/design.md has the figures for both settings.
	for _, set := range []string{fmt.Sprintf("SET memory_limit = '%dMiB'", MemoryLimit>>20), "SET checkpoint_threshold = '256MB'"} {
		if _, err := db.ExecContext(ctx, set); err != nil {
			db.Close()
			return nil, fmt.Errorf("configure %s: %w", path, err)
		}
	}
	read := sql.OpenDB(connector)
	read.SetMaxOpenConns(1)
	w := &Warehouse{db: db, read: read, log: log}
	if err := w.migrate(ctx); err != nil {
		w.close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	if err := w.loadEvolved(ctx); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// MemoryLimit is the writer's DuckDB buffer pool, in bytes.
const MemoryLimit = 128 << 20

// updatesHeld is how many bytes of committed updates DuckDB holds until
// the next checkpoint: the buffer pool's TRANSACTION tag.
func (w *Warehouse) updatesHeld(ctx context.Context) (int64, error) {
	var n int64
	err := w.db.QueryRowContext(ctx, `SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'TRANSACTION'`).Scan(&n)
	return n, err
}

// NotDuckDBError: the warehouse path names something that is not a DuckDB
// database file.
type NotDuckDBError struct{ Path, What string }

func (e *NotDuckDBError) Error() string {
	return fmt.Sprintf("%s is %s, not a DuckDB database; it is left untouched (set THINGSYNC_DB to a DuckDB file, or to a path that does not exist yet)", e.Path, e.What)
}

// duckMagic is what every DuckDB database file holds at byte 8, after the
// header's checksum.
const duckMagic = "DUCK"

// CheckFile refuses a warehouse path that holds something other than a
// DuckDB database (a CSV, a directory) before DuckDB opens it: opened
// read-write, it could be overwritten. A missing or empty file is a new
// warehouse.
func CheckFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	switch {
	case st.IsDir():
		return &NotDuckDBError{Path: path, What: "a directory"}
	case st.Size() == 0:
		return nil
	}
	head := make([]byte, 8+len(duckMagic))
	if _, err := io.ReadFull(f, head); err != nil || string(head[8:]) != duckMagic {
		return &NotDuckDBError{Path: path, What: "a file without DuckDB's header"}
	}
	return nil
}

// CheckExists refuses a warehouse path that readers cannot read: a missing
// file (opening it would create an empty database, and every question
// asked of it would fail confusingly) or a directory.
func CheckExists(path string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("warehouse %s does not exist (set THINGSYNC_DB, or run thingsync sync first)", path)
	case err != nil:
		return fmt.Errorf("warehouse %s: %w", path, err)
	case st.IsDir():
		return fmt.Errorf("warehouse %s is a directory, not a DuckDB file", path)
	}
	return nil
}

// ErrLocked: another process holds the warehouse file.
var ErrLocked = errors.New("the warehouse file is in use by another process")

// ExplainLock marks an error of opening a file that another process holds
// as ErrLocked.
func ExplainLock(err error) error {
	if err != nil && strings.Contains(err.Error(), "Could not set lock") {
		return fmt.Errorf("%w: %v", ErrLocked, err)
	}
	return err
}

// OpenReadOnly opens an existing warehouse for reading only.
func OpenReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	if err := CheckFile(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("duckdb", path+"?access_mode=READ_ONLY")
	if err != nil {
		// The driver opens the file here already: a writer's lock shows.
		return nil, fmt.Errorf("open %s read-only: %w", path, ExplainLock(err))
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s read-only: %w", path, ExplainLock(err))
	}
	return db, nil
}

// Close checkpoints and closes the file.
func (w *Warehouse) Close() error {
	_, _ = w.db.Exec("CHECKPOINT")
	return w.close()
}

// close closes both pools: the read pool first, so that the file is
// released when the writer's closes.
func (w *Warehouse) close() error {
	rerr := w.read.Close()
	return errors.Join(w.db.Close(), rerr)
}

// DB is the underlying database, for queries.
func (w *Warehouse) DB() *sql.DB { return w.db }

// Checkpoint is where one device's stream stands.
type Checkpoint struct {
	Stream                                string
	Device                                extract.DeviceID
	SettledUntil, FetchedUntil, UpdatedAt time.Time
	LastError                             string
	Failures                              int
	Retired                               bool
}

// DeviceStates reads the checkpoints of a stream for some devices (the
// others have none), through the read connection: the walker asks for
// each chunk of listed devices while the writer holds a transaction open,
// and the devices of a chunk have no uncommitted checkpoint (they are not
// fetched yet).
func (w *Warehouse) DeviceStates(ctx context.Context, stream string, devices []extract.DeviceID) (map[extract.DeviceID]extract.State, error) {
	return readStates(ctx, w.read, stream, devices, true)
}

// ReadDeviceStates is DeviceStates on a warehouse opened read-only
// (OpenReadOnly), whose file may predate the idle rule's columns.
func ReadDeviceStates(ctx context.Context, db *sql.DB, stream string, devices []extract.DeviceID) (map[extract.DeviceID]extract.State, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_columns() WHERE table_name = 'sync_checkpoints' AND column_name = 'cycle_end'`).Scan(&n)
	if err != nil {
		return nil, fmt.Errorf("read %s checkpoints: %w", stream, err)
	}
	return readStates(ctx, db, stream, devices, n > 0)
}

// readStates is one query a chunk, whatever its size: the idle rule's
// facts are columns of the checkpoints (current: the file has them).
func readStates(ctx context.Context, db *sql.DB, stream string, devices []extract.DeviceID, current bool) (map[extract.DeviceID]extract.State, error) {
	out := make(map[extract.DeviceID]extract.State, len(devices))
	if len(devices) == 0 {
		return out, nil
	}
	kinds, ids := make([]string, len(devices)), make([]string, len(devices))
	for i, d := range devices {
		kinds[i], ids[i] = d.Kind, d.ID
	}
	facts := "idle_since, open_since, records_at, cycle_end"
	if !current {
		facts = "NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ"
	}
	rows, err := db.QueryContext(ctx, `SELECT device_kind, device_id, settled_until, fetched_until, coalesce(retired, false), `+facts+`
		FROM sync_checkpoints WHERE stream = $1
		AND (device_kind, device_id) IN (SELECT unnest($2::VARCHAR[]), unnest($3::VARCHAR[]))`, stream, kinds, ids)
	if err != nil {
		return nil, fmt.Errorf("read %s checkpoints: %w", stream, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id                                        extract.DeviceID
			settled, fetched, idle, open, recs, cycle sql.NullTime
			st                                        extract.State
		)
		if err := rows.Scan(&id.Kind, &id.ID, &settled, &fetched, &st.Retired, &idle, &open, &recs, &cycle); err != nil {
			return nil, fmt.Errorf("read %s checkpoints: %w", stream, err)
		}
		st.SettledUntil, st.FetchedUntil = utcOrZero(settled), utcOrZero(fetched)
		st.IdleSince, st.OpenSince, st.RecordsAt, st.CycleEnd = utcOrZero(idle), utcOrZero(open), utcOrZero(recs), utcOrZero(cycle)
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s checkpoints: %w", stream, err)
	}
	return out, nil
}

func utcOrZero(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// Checkpoints reads a stream's checkpoints.
func (w *Warehouse) Checkpoints(ctx context.Context, stream string) (map[extract.DeviceID]Checkpoint, error) {
	rows, err := w.db.QueryContext(ctx, `SELECT device_kind, device_id, settled_until, fetched_until, updated_at,
		coalesce(last_error, ''), coalesce(failures, 0), coalesce(retired, false)
		FROM sync_checkpoints WHERE stream = ?`, stream)
	if err != nil {
		return nil, fmt.Errorf("read %s checkpoints: %w", stream, err)
	}
	defer rows.Close()
	out := map[extract.DeviceID]Checkpoint{}
	for rows.Next() {
		cp := Checkpoint{Stream: stream}
		var settled, fetched, updated sql.NullTime
		if err := rows.Scan(&cp.Device.Kind, &cp.Device.ID, &settled, &fetched, &updated, &cp.LastError, &cp.Failures, &cp.Retired); err != nil {
			return nil, fmt.Errorf("read %s checkpoints: %w", stream, err)
		}
		cp.SettledUntil, cp.FetchedUntil, cp.UpdatedAt = settled.Time.UTC(), fetched.Time.UTC(), updated.Time.UTC()
		if !settled.Valid {
			cp.SettledUntil = time.Time{}
		}
		if !fetched.Valid {
			cp.FetchedUntil = time.Time{}
		}
		out[cp.Device] = cp
	}
	return out, rows.Err()
}

// NewRunID returns a fresh run identifier.
func NewRunID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// StartRun records a run as running. Runs still marked running are
// marked abandoned first: this process holds the file, so their processes
// are gone (killed, or the machine stopped) without recording an outcome.
func (w *Warehouse) StartRun(ctx context.Context, kind string, streams []string, startedAt time.Time) (string, error) {
	res, err := w.db.ExecContext(ctx, `UPDATE sync_runs SET status = 'abandoned',
		error = coalesce(error, 'the process ended without recording an outcome (killed, or the machine stopped)')
		WHERE status = 'running'`)
	if err != nil {
		return "", fmt.Errorf("record abandoned runs: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		w.log.Warn().Int64("runs", n).Msg("earlier runs ended without an outcome (killed?): marked abandoned in sync_runs; this run resumes from the checkpoints")
	}
	id := NewRunID(startedAt)
	_, err = w.db.ExecContext(ctx, `INSERT INTO sync_runs (run_id, kind, streams, started_at, status,
		devices, devices_failed, requests, retries, usage_inserted, usage_updated, events_inserted, events_updated,
		rated_upserted, aggregate_upserted, rejected)
		VALUES (?, ?, ?, ?, 'running', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)`, id, kind, strings.Join(streams, ","), startedAt.UTC())
	if err != nil {
		return "", fmt.Errorf("record run start: %w", err)
	}
	return id, nil
}

// SetWantedFrom records where a run starts devices without a checkpoint:
// the coverage ledger counts missing days from the latest run's.
func (w *Warehouse) SetWantedFrom(ctx context.Context, runID string, wanted time.Time) error {
	if _, err := w.db.ExecContext(ctx, `UPDATE sync_runs SET wanted_from = ? WHERE run_id = ?`, wanted.UTC(), runID); err != nil {
		return fmt.Errorf("record run's wanted range: %w", err)
	}
	return nil
}

// RunOutcome is how a run ended.
type RunOutcome struct {
	Status        string // ok, partial, failed, interrupted
	FinishedAt    time.Time
	Devices       int
	DevicesFailed int
	Requests      int
	Retries       int
	Error         string
}

// FinishRun records a run's outcome. Row counts were added by the writer
// batch by batch.
func (w *Warehouse) FinishRun(ctx context.Context, runID string, o RunOutcome) error {
	var errText any
	if o.Error != "" {
		errText = clip.Text(o.Error, 2000)
	}
	_, err := w.db.ExecContext(ctx, `UPDATE sync_runs SET status = ?, finished_at = ?, devices = ?, devices_failed = ?,
		requests = ?, retries = ?, error = ? WHERE run_id = ?`,
		o.Status, o.FinishedAt.UTC(), o.Devices, o.DevicesFailed, o.Requests, o.Retries, errText, runID)
	if err != nil {
		return fmt.Errorf("record run outcome: %w", err)
	}
	return nil
}

// FailRunning records as failed, with cause, the runs of kind started at
// or after since that are still marked running: the daemon calls it for a
// run a panic cut short, which recorded no outcome.
func (w *Warehouse) FailRunning(ctx context.Context, kind string, since, at time.Time, cause string) error {
	_, err := w.db.ExecContext(ctx, `UPDATE sync_runs SET status = 'failed', finished_at = ?, error = ?
		WHERE status = 'running' AND kind = ? AND started_at >= ?`, at.UTC(), clip.Text(cause, 2000), kind, since.UTC())
	if err != nil {
		return fmt.Errorf("record the failed run: %w", err)
	}
	return nil
}

// loadEvolved reads the columns schema evolution has added so far.
func (w *Warehouse) loadEvolved(ctx context.Context) error {
	w.evolved = map[string]map[string]string{}
	w.physical = nil
	rows, err := w.db.QueryContext(ctx, `SELECT table_name, attribute_key, column_name FROM schema_columns`)
	if err != nil {
		return fmt.Errorf("read evolved columns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t, k, c string
		if err := rows.Scan(&t, &k, &c); err != nil {
			return fmt.Errorf("read evolved columns: %w", err)
		}
		if w.evolved[t] == nil {
			w.evolved[t] = map[string]string{}
		}
		w.evolved[t][k] = c
	}
	return rows.Err()
}
