package load

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"golang.org/x/sync/semaphore"

	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/internal/clip"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// Unit is what one fetch produced: the rows of one device-window (or one
// device list page), its rejected records, and the checkpoint it completes.
// A unit is committed whole, with its checkpoint, or not at all.
type Unit struct {
	Table      string
	Rows       []transform.Row
	Rejects    []transform.Reject
	Checkpoint *CheckpointUpdate
	// Visited records that the run reached these devices.
	Visited []extract.DeviceID
	// FreshFrom and FreshTo, when set, bound the key times no committed
	// row can have: rows whose time key falls in [FreshFrom, FreshTo) are
	// inserted without looking for an existing row. Rows outside it (an
	// API that strays from the window) take the checked path.
	FreshFrom, FreshTo time.Time
}

// CheckpointUpdate moves one device's stream forward, or records why it
// could not.
type CheckpointUpdate struct {
	Stream       string
	Device       extract.DeviceID
	SettledUntil time.Time // zero: leave settled_until as it is
	FetchedUntil time.Time
	// FetchedFrom is where the fetched window began: covered_from moves
	// back to it when the window reaches the stretch already covered.
	FetchedFrom time.Time
	// Err, when set, records a failure: last_error and failures+1; the
	// checkpoint does not move.
	Err string
	// Retire marks a deactivated device fetched a last time.
	Retire bool
	// Idle marks the stream skipped as idle: idle_since is set unless it
	// is; nothing else changes. A fetch clears it.
	Idle bool
	// RecordsAt, when set, is when the fetch returned records.
	RecordsAt time.Time
	// Sessions: OpenSince is known (connections) and replaces open_since.
	Sessions  bool
	OpenSince time.Time
	// CycleEnd, when set, replaces cycle_end (rated).
	CycleEnd time.Time
}

// WriterOptions tune a Writer.
type WriterOptions struct {
	// BatchValues flushes a batch once its rows hold this many values
	// (rows × columns): it bounds memory whatever the row width (default
	// 250,000, about 5,500 events or 20,000 usage rows; larger batches
	// cost memory and gained no speed, docs/design.md).
	BatchValues int
	// FlushInterval flushes a batch this long after its first unit
	// (default 2 s), so progress is committed steadily.
	FlushInterval time.Duration
	// QueueUnits bounds the units waiting for the writer (default 64), and
	// QueueValues the values they hold (default BatchValues): a unit is a
	// device list page of 500 devices or a page of 500 events, so units
	// alone would let a large account's whole device list wait in memory.
	QueueUnits  int
	QueueValues int
	// CommitInterval and CommitValues bound one transaction: batches are
	// applied into an open transaction, which commits, with the
	// checkpoints and counters of all its batches, once it is this old
	// (default 5 s) or holds this many values (default 1,000,000). A
	// commit costs about the same however much it holds (the checkpoint
	// rows, the run counters, the WAL flush), so fewer, larger commits
	// load faster; Go holds only one batch of rows at a time, DuckDB the
	// uncommitted rest. Past a row group (122,880 rows) in one transaction
	// DuckDB writes it to the file early and rewrites it at the
	// checkpoint, which makes the file larger (figures in docs/design.md).
	CommitInterval time.Duration
	CommitValues   int
	// FoldAbove runs CHECKPOINT after a commit once DuckDB holds more
	// than this many bytes of committed updates (default a quarter of
	// MemoryLimit). DuckDB keeps the old values of every updated row in
	// its buffer pool until a checkpoint, and a nightly run updates the
	// checkpoint of every device-stream it visits and the last_seen_at of
	// every listed device: at a million devices that is past the pool
	// long before the WAL reaches checkpoint_threshold, and a join then
	// fails for want of memory (docs/design.md, "Large fleet").
	FoldAbove int64
	Now       func() time.Time
	// Committed, if set, hears what each commit wrote (rows by table,
	// rejected records) once it is committed, from the writer's
	// goroutine: the daemon's live metrics. Its sum over a run is the
	// totals Close returns.
	Committed func(Totals)
}

// TableTotals counts what a writer did to one table.
type TableTotals struct{ Inserted, Updated int64 }

// Totals counts what a writer did.
type Totals struct {
	Tables         map[string]TableTotals
	Rejected       int64
	EvolvedColumns int
	Batches        int
	// Folds counts the checkpoints FoldAbove ran during the run.
	Folds int
}

// Writer is the one goroutine that writes a run's data. Producers Submit
// units; it batches them and commits each batch in one transaction.
type Writer struct {
	w     *Warehouse
	runID string
	opts  WriterOptions
	in    chan queued
	done  chan struct{}
	// room is what the queued units may still hold, in values.
	room *semaphore.Weighted
	// pending are stretches this run fetched that do not reach their
	// device-stream's covered stretch yet (owned by the commit goroutine).
	pending fetchedSpans

	mu     sync.Mutex
	err    error
	totals Totals
}

// NewWriter starts a writer for a run.
func (w *Warehouse) NewWriter(ctx context.Context, runID string, opts WriterOptions) *Writer {
	if opts.BatchValues <= 0 {
		opts.BatchValues = 250_000
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 2 * time.Second
	}
	if opts.QueueUnits <= 0 {
		opts.QueueUnits = 64
	}
	if opts.QueueValues <= 0 {
		opts.QueueValues = opts.BatchValues
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = 5 * time.Second
	}
	if opts.CommitValues <= 0 {
		opts.CommitValues = 1_000_000
	}
	if opts.FoldAbove <= 0 {
		opts.FoldAbove = MemoryLimit / 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	wr := &Writer{w: w, runID: runID, opts: opts, in: make(chan queued, opts.QueueUnits), done: make(chan struct{}),
		room: semaphore.NewWeighted(int64(opts.QueueValues)), totals: Totals{Tables: map[string]TableTotals{}}, pending: fetchedSpans{}}
	go wr.loop(ctx)
	return wr
}

// queued is a unit waiting for the writer, with its values and the room
// it takes.
type queued struct {
	u      Unit
	values int
	room   int64
}

// Submit queues a unit, blocking while the queue is full. It returns the
// writer's error once a batch failed.
func (wr *Writer) Submit(ctx context.Context, u Unit) error {
	if err := wr.Err(); err != nil {
		return err
	}
	// A unit larger than the whole queue takes all of it and goes alone.
	q := queued{u: u, values: unitValues(u)}
	q.room = min(int64(q.values), int64(wr.opts.QueueValues))
	if err := wr.room.Acquire(ctx, q.room); err != nil {
		return err
	}
	select {
	case wr.in <- q:
		return nil
	case <-wr.done:
		wr.room.Release(q.room)
		if err := wr.Err(); err != nil {
			return err
		}
		return errors.New("writer is closed")
	case <-ctx.Done():
		wr.room.Release(q.room)
		return ctx.Err()
	}
}

// textPerValue is how many bytes of text count as one more value. The
// bounds on batches, the queue and transactions are in values; counting a
// long string as many values makes them bound bytes too, whatever the API
// puts in a value (a typical value is a number or an identifier well
// under this size, so ordinary rows weigh their column count).
const textPerValue = 64

// unitValues is a unit's weight in values: one per column of each row,
// plus one per textPerValue bytes of the text it carries (strings, unknown
// attributes, rejected records as sent).
func unitValues(u Unit) int {
	n, text := 0, 0
	for _, r := range u.Rows {
		n += len(r.Values)
		for _, v := range r.Values {
			switch v := v.(type) {
			case string:
				text += len(v)
			case []byte:
				text += len(v)
			}
		}
		for _, a := range r.Unknown {
			n++
			text += len(a.Key) + len(a.Value)
		}
	}
	n += len(u.Visited)
	for _, rj := range u.Rejects {
		n++
		text += len(rj.Raw) + len(rj.Reason)
	}
	return n + text/textPerValue
}

// Err is the error that stopped the writer, if any.
func (wr *Writer) Err() error {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return wr.err
}

// Close commits what is queued, stops the writer and returns its totals.
func (wr *Writer) Close(ctx context.Context) (Totals, error) {
	close(wr.in)
	select {
	case <-wr.done:
	case <-ctx.Done():
		return wr.snapshot(), ctx.Err()
	}
	t := wr.snapshot()
	if t.Batches > 0 {
		// Fold the WAL into the file after a load: DuckDB folds it only
		// past checkpoint_threshold, and a reader would replay it.
		_, _ = wr.w.db.ExecContext(ctx, "CHECKPOINT")
	}
	return t, wr.Err()
}

func (wr *Writer) snapshot() Totals {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	t := wr.totals
	t.Tables = map[string]TableTotals{}
	for k, v := range wr.totals.Tables {
		t.Tables[k] = v
	}
	return t
}

// loop collects units into batches while the previous batch commits on a
// second goroutine: producers keep fetching during a commit, and at most
// two batches (one committing, one filling) plus the queue are in memory.
func (wr *Writer) loop(ctx context.Context) {
	defer close(wr.done)
	commits := make(chan batch)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		wr.commitLoop(ctx, commits)
	}()
	defer func() {
		close(commits)
		<-committed
	}()

	var units []Unit
	values := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	hand := func() bool {
		if len(units) > 0 {
			select {
			case commits <- batch{units: units, values: values}:
			case <-ctx.Done():
			}
			units, values = nil, 0
		}
		return wr.Err() == nil
	}
	for {
		select {
		case q, ok := <-wr.in:
			if !ok {
				hand()
				return
			}
			wr.room.Release(q.room)
			if len(units) == 0 {
				timer.Reset(wr.opts.FlushInterval)
			}
			units = append(units, q.u)
			values += q.values
			if values >= wr.opts.BatchValues && !hand() {
				wr.drain()
				return
			}
		case <-timer.C:
			if !hand() {
				wr.drain()
				return
			}
		}
	}
}

// drain empties the queue after a failure so producers blocked in Submit
// see the error instead of hanging.
func (wr *Writer) drain() {
	for q := range wr.in {
		wr.room.Release(q.room)
	}
}

// batch is units handed from the batching loop to the commit loop, with
// their weight in values (counted once, as they were queued).
type batch struct {
	units  []Unit
	values int
}

// commitLoop applies batches in transactions: each batch that arrives
// with no transaction open begins one, and later batches join it until it
// is old or large enough, the input ends, or it has sat idle for
// CommitInterval. After a failure it applies nothing more.
func (wr *Writer) commitLoop(ctx context.Context, commits <-chan batch) {
	for b := range commits {
		if wr.Err() != nil {
			continue // a batch failed: commit nothing after it
		}
		if err := wr.transaction(ctx, b, commits); err != nil {
			wr.mu.Lock()
			wr.err = err
			wr.mu.Unlock()
		}
	}
}

// openTx is the writer's transaction in progress: the batches applied
// since it began. Their checkpoints and counters are written just before
// it commits, so rows and checkpoints commit together.
type openTx struct {
	conn          *sql.Conn
	began         time.Time
	values        int
	batches       int
	checkpoints   []Unit // Checkpoint only, rows dropped
	visited       []extract.DeviceID
	counts        map[string]TableTotals
	rejected      int
	evolvedBefore int
	// usageWritten is the earliest loaded_at of the usage rows written in
	// the transaction (zero: none): their is_provisional is set at its
	// end, and DuckDB's zone maps on loaded_at skip every older row.
	usageWritten time.Time
}

// transaction applies first and the batches that follow it on more in one
// transaction, and commits it with their checkpoints and run counters.
// On failure nothing of it stays, and the columns its rollback removed
// are forgotten.
func (wr *Writer) transaction(ctx context.Context, first batch, more <-chan batch) error {
	tx := &openTx{began: time.Now(), counts: map[string]TableTotals{}, evolvedBefore: wr.w.evolvedCount()}
	err := wr.w.Transact(ctx, func(conn *sql.Conn) error {
		tx.conn = conn
		age := time.NewTimer(wr.opts.CommitInterval)
		defer age.Stop()
		for b, ok := first, true; ok; {
			if err := wr.apply(ctx, tx, b.units); err != nil {
				return err
			}
			tx.values += b.values
			if tx.values >= wr.opts.CommitValues || time.Since(tx.began) >= wr.opts.CommitInterval {
				break
			}
			select {
			case b, ok = <-more:
			case <-age.C:
				ok = false
			}
		}
		return wr.finish(ctx, tx)
	})
	if err != nil {
		if wr.w.evolvedCount() != tx.evolvedBefore {
			wr.w.loadEvolved(context.WithoutCancel(ctx)) //nolint:errcheck // best effort
		}
		return err
	}
	wr.mu.Lock()
	for k, v := range tx.counts {
		t := wr.totals.Tables[k]
		t.Inserted += v.Inserted
		t.Updated += v.Updated
		wr.totals.Tables[k] = t
	}
	wr.totals.Rejected += int64(tx.rejected)
	wr.totals.EvolvedColumns += wr.w.evolvedCount() - tx.evolvedBefore
	wr.totals.Batches += tx.batches
	wr.mu.Unlock()
	if wr.opts.Committed != nil {
		wr.opts.Committed(Totals{Tables: tx.counts, Rejected: int64(tx.rejected), Batches: tx.batches})
	}
	wr.fold(ctx)
	wr.w.log.Debug().Int("batches", tx.batches).Int("values", tx.values).Dur(logging.DurationMS, time.Since(tx.began)).Msg("transaction committed")
	return nil
}

// fold runs CHECKPOINT once the committed updates DuckDB holds in memory
// pass FoldAbove. A fold that fails (another connection's transaction
// can hold it off) is logged and tried again after the next commit: the
// data is committed either way.
func (wr *Writer) fold(ctx context.Context) {
	held, err := wr.w.updatesHeld(ctx)
	if err != nil {
		wr.w.log.Warn().Err(err).Msg("read DuckDB memory use; the warehouse is checkpointed after the run")
		return
	}
	if held <= wr.opts.FoldAbove {
		return
	}
	start := time.Now()
	if _, err := wr.w.db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		wr.w.log.Warn().Err(err).Int64("bytes", held).Msg("checkpoint the warehouse during a run; trying again after the next commit")
		return
	}
	wr.mu.Lock()
	wr.totals.Folds++
	wr.mu.Unlock()
	wr.w.log.Debug().Int64("bytes", held).Dur(logging.DurationMS, time.Since(start)).Msg("warehouse checkpointed during the run")
}

// apply writes one batch's rows and rejected records into the open
// transaction.
func (wr *Writer) apply(ctx context.Context, tx *openTx, batch []Unit) error {
	start := time.Now()
	now := wr.opts.Now().UTC()
	byTable := map[string]*tableBatch{}
	var rejects []transform.Reject
	for _, u := range batch {
		if u.Table != "" && len(u.Rows) > 0 {
			tb := byTable[u.Table]
			if tb == nil {
				tb = &tableBatch{}
				byTable[u.Table] = tb
			}
			tb.add(u)
		}
		rejects = append(rejects, u.Rejects...)
		if u.Checkpoint != nil {
			tx.checkpoints = append(tx.checkpoints, Unit{Checkpoint: u.Checkpoint})
		}
		tx.visited = append(tx.visited, u.Visited...)
	}
	tables := make([]string, 0, len(byTable))
	for t := range byTable {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, name := range tables {
		t, ok := schema.Lookup(name)
		if !ok {
			return fmt.Errorf("batch for unknown table %q", name)
		}
		tt, staged, err := wr.w.upsert(ctx, tx.conn, t, byTable[name], now, wr.runID)
		if err != nil {
			return fmt.Errorf("upsert %s: %w", name, err)
		}
		if name == schema.UsageDaily && (tx.usageWritten.IsZero() || now.Before(tx.usageWritten)) {
			tx.usageWritten = now
		}
		if name == schema.Devices && staged > 0 {
			ht, err := wr.w.keepHistory(ctx, tx.conn, wr.w.plan(t).dedup, now)
			if err != nil {
				return err
			}
			c := tx.counts[schema.DeviceHistory]
			c.Inserted += ht.Inserted
			c.Updated += ht.Updated
			tx.counts[schema.DeviceHistory] = c
		}
		// Staged rows count toward the commit as well: DuckDB frees the
		// replaced staging tables only then.
		tx.values += staged
		c := tx.counts[name]
		c.Inserted += tt.Inserted
		c.Updated += tt.Updated
		tx.counts[name] = c
	}
	if err := wr.w.storeRejects(ctx, tx.conn, rejects, wr.runID, now); err != nil {
		return fmt.Errorf("store rejected records: %w", err)
	}
	tx.rejected += len(rejects)
	tx.batches++
	wr.w.log.Debug().Int("units", len(batch)).Int("rejected", len(rejects)).Dur(logging.DurationMS, time.Since(start)).Msg("batch applied")
	return nil
}

// finish writes the transaction's checkpoints and run counters, and
// drops the staging tables, before it commits.
func (wr *Writer) finish(ctx context.Context, tx *openTx) error {
	now := wr.opts.Now().UTC()
	conn := tx.conn
	if err := wr.w.storeCheckpointSpans(ctx, conn, tx.checkpoints, now, wr.pending, tx.usageWritten); err != nil {
		return fmt.Errorf("store checkpoints: %w", err)
	}
	if err := storeVisits(ctx, conn, tx.visited, now, wr.runID); err != nil {
		return fmt.Errorf("store device visits: %w", err)
	}
	if wr.runID != "" {
		counts := tx.counts
		u, e := counts[schema.UsageDaily], counts[schema.ConnectionEvents]
		_, err := conn.ExecContext(ctx, `UPDATE sync_runs SET usage_inserted = usage_inserted + ?, usage_updated = usage_updated + ?,
			events_inserted = events_inserted + ?, events_updated = events_updated + ?,
			rated_upserted = rated_upserted + ?, aggregate_upserted = aggregate_upserted + ?, rejected = rejected + ?
			WHERE run_id = ?`, u.Inserted, u.Updated, e.Inserted, e.Updated,
			counts[schema.RatedUsage].Inserted+counts[schema.RatedUsage].Updated,
			counts[schema.AggregateUsage].Inserted+counts[schema.AggregateUsage].Updated, tx.rejected, wr.runID)
		if err != nil {
			return fmt.Errorf("update run counters: %w", err)
		}
	}
	// Staging tables would otherwise hold the last batch's rows until the
	// next run replaces them.
	if err := dropStaging(ctx, conn); err != nil {
		return fmt.Errorf("drop staging: %w", err)
	}
	return nil
}

// tableBatch is a batch's rows of one table, with which of them are
// known to be new.
type tableBatch struct {
	rows  []transform.Row
	fresh []bool
	// timeCol is timeKey+1 of the batch's table, 0 until the first unit.
	timeCol int
}

func (tb *tableBatch) add(u Unit) {
	tb.rows = append(tb.rows, u.Rows...)
	if tb.timeCol == 0 {
		t, _ := schema.Lookup(u.Table)
		tb.timeCol = timeKey(t) + 1
	}
	col := tb.timeCol - 1
	for _, r := range u.Rows {
		f := false
		if col >= 0 && !u.FreshFrom.IsZero() {
			if at, ok := r.Values[col].(time.Time); ok {
				f = !at.Before(u.FreshFrom) && at.Before(u.FreshTo)
			}
		}
		tb.fresh = append(tb.fresh, f)
	}
}

// timeKey is the index of the key column that orders a fact table by time
// (usage_date, occurred_at), or -1.
func timeKey(t schema.Table) int {
	if len(t.Order) == 0 {
		return -1
	}
	i := t.Index(t.Order[0])
	if i < 0 || !t.Columns[i].Key {
		return -1
	}
	switch t.Columns[i].Type {
	case schema.Date, schema.TimestampTZ:
		return i
	}
	return -1
}

func (w *Warehouse) evolvedCount() int {
	n := 0
	for _, m := range w.evolved {
		n += len(m)
	}
	return n
}

// rawConn runs fn with the driver connection under conn, for the Appender.
func rawConn(conn *sql.Conn, fn func(driver.Conn) error) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		return fn(c)
	})
}

// appendRows appends rows to a table with the driver's Appender, which
// fills DuckDB data chunks of 2,048 rows and hands each to DuckDB's C
// appender. It writes every column type the warehouse uses, MAP and LIST
// included.
func appendRows(conn *sql.Conn, catalog, table string, n int, row func(i int) []driver.Value) error {
	return rawConn(conn, func(dc driver.Conn) error {
		app, err := duckdb.NewAppender(dc, catalog, "main", table)
		if err != nil {
			return fmt.Errorf("appender on %s: %w", table, err)
		}
		for i := 0; i < n; i++ {
			if err := app.AppendRow(row(i)...); err != nil {
				// The rows before this one are dropped, not half a call
				// appended.
				_ = app.Clear()
				_ = app.Close()
				return fmt.Errorf("append to %s: %w", table, err)
			}
		}
		if err := app.Close(); err != nil {
			return fmt.Errorf("append to %s: %w", table, err)
		}
		return nil
	})
}

func hashRaw(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

func (w *Warehouse) storeRejects(ctx context.Context, conn *sql.Conn, rejects []transform.Reject, runID string, now time.Time) error {
	if len(rejects) == 0 {
		return nil
	}
	if _, err := conn.ExecContext(ctx, `CREATE OR REPLACE TEMP TABLE stage_rejects (stream VARCHAR, device_kind VARCHAR,
		device_id VARCHAR, record_hash VARCHAR, reason VARCHAR, raw VARCHAR, seq BIGINT)`); err != nil {
		return err
	}
	err := appendRows(conn, "temp", "stage_rejects", len(rejects), func(i int) []driver.Value {
		r := rejects[i]
		raw := string(r.Raw)
		if raw == "" {
			raw = "null"
		}
		return []driver.Value{r.Stream, r.Device.Kind, r.Device.ID, hashRaw(r.Raw), clip.Text(r.Reason, 1000), raw, int64(i)}
	})
	if err != nil {
		return err
	}
	stmts := []string{
		`CREATE OR REPLACE TEMP TABLE stage_rejects_d AS SELECT * FROM stage_rejects
		 QUALIFY row_number() OVER (PARTITION BY stream, device_kind, device_id, record_hash ORDER BY seq DESC) = 1`,
		`UPDATE rejected_records r SET reason = s.reason, run_id = $1, last_seen_at = $2, times_seen = r.times_seen + 1
		 FROM stage_rejects_d s WHERE r.stream = s.stream AND r.device_kind = s.device_kind AND r.device_id = s.device_id AND r.record_hash = s.record_hash`,
		`INSERT INTO rejected_records (stream, device_kind, device_id, record_hash, reason, raw, run_id, first_seen_at, last_seen_at, times_seen)
		 SELECT s.stream, s.device_kind, s.device_id, s.record_hash, s.reason,
		        coalesce(try_cast(s.raw AS JSON), to_json(s.raw)), $1, $2, $2, 1
		 FROM stage_rejects_d s WHERE NOT EXISTS (SELECT 1 FROM rejected_records r WHERE r.stream = s.stream
		   AND r.device_kind = s.device_kind AND r.device_id = s.device_id AND r.record_hash = s.record_hash)`,
	}
	for i, s := range stmts {
		var err error
		if i == 0 {
			_, err = conn.ExecContext(ctx, s)
		} else {
			_, err = conn.ExecContext(ctx, s, runID, now)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// spanKey is one device-stream.
type spanKey struct {
	stream string
	dev    extract.DeviceID
}

// fetchedSpans are the stretches a run has fetched per device-stream,
// merged, that do not reach the covered stretch (covered_from) yet. A
// backfill fetches a gap before the stretch oldest window first, and the
// windows commit in several transactions: only the last reaches
// covered_from, and on its own it would move covered_from back to its own
// start, leaving the gap's earlier days loaded but counted missing. The
// stretches remembered here let it move back to the gap's start.
type fetchedSpans map[spanKey][]extract.Range

// add merges [from, to) into the key's stretches.
func (f fetchedSpans) add(k spanKey, from, to time.Time) {
	spans := append(f[k], extract.Range{From: from, To: to})
	sort.Slice(spans, func(i, j int) bool { return spans[i].From.Before(spans[j].From) })
	merged := spans[:1]
	for _, r := range spans[1:] {
		last := &merged[len(merged)-1]
		if !r.From.After(last.To) {
			if r.To.After(last.To) {
				last.To = r.To
			}
			continue
		}
		merged = append(merged, r)
	}
	f[k] = merged
}

// storeVisits records when the run reached devices, set-based.
func storeVisits(ctx context.Context, conn *sql.Conn, ids []extract.DeviceID, now time.Time, runID string) error {
	if len(ids) == 0 {
		return nil
	}
	slices.SortFunc(ids, func(a, b extract.DeviceID) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID)) })
	ids = slices.Compact(ids)
	if _, err := conn.ExecContext(ctx, `CREATE OR REPLACE TEMP TABLE stage_visits (device_kind VARCHAR, device_id VARCHAR)`); err != nil {
		return err
	}
	if err := appendRows(conn, "temp", "stage_visits", len(ids), func(i int) []driver.Value {
		return []driver.Value{ids[i].Kind, ids[i].ID}
	}); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `UPDATE device_visits v SET visited_at = $1, run_id = $2
		FROM stage_visits s WHERE v.device_kind = s.device_kind AND v.device_id = s.device_id`, now, runID); err != nil {
		return err
	}
	_, err := conn.ExecContext(ctx, `INSERT INTO device_visits SELECT s.device_kind, s.device_id, $1, $2 FROM stage_visits s
		WHERE NOT EXISTS (SELECT 1 FROM device_visits v WHERE v.device_kind = s.device_kind AND v.device_id = s.device_id)`, now, runID)
	return err
}

// storeCheckpoints folds the batch's checkpoint updates per device and
// stream, then applies them set-based. settled_until and fetched_until
// never move backwards.
func (w *Warehouse) storeCheckpoints(ctx context.Context, conn *sql.Conn, batch []Unit, now time.Time) error {
	return w.storeCheckpointSpans(ctx, conn, batch, now, nil, time.Time{})
}

// storeCheckpointSpans is storeCheckpoints, with the stretches fetched so
// far in the run (nil: none remembered) moving covered_from back over
// windows committed earlier, and usage_daily.is_provisional kept with the
// usage checkpoints (usageWritten: the earliest loaded_at of the usage rows
// the transaction wrote; zero: none).
func (w *Warehouse) storeCheckpointSpans(ctx context.Context, conn *sql.Conn, batch []Unit, now time.Time, pending fetchedSpans, usageWritten time.Time) error {
	type key = spanKey
	type state struct {
		settled, fetched, from time.Time
		err                    string
		fails                  int
		retire, success        bool
		records, open, cycle   time.Time
		sessions               bool
	}
	folded := map[key]*state{}
	var order, idle []key
	for _, u := range batch {
		c := u.Checkpoint
		if c == nil {
			continue
		}
		k := key{c.Stream, c.Device}
		if c.Idle {
			idle = append(idle, k)
			continue
		}
		s := folded[k]
		if s == nil {
			s = &state{}
			folded[k] = s
			order = append(order, k)
		}
		if c.Err != "" {
			s.err, s.success = c.Err, false
			s.fails++
			continue
		}
		if c.SettledUntil.After(s.settled) {
			s.settled = c.SettledUntil
		}
		if c.FetchedUntil.After(s.fetched) {
			s.fetched = c.FetchedUntil
		}
		if !c.FetchedFrom.IsZero() && (s.from.IsZero() || c.FetchedFrom.Before(s.from)) {
			s.from = c.FetchedFrom
		}
		if pending != nil && !c.FetchedFrom.IsZero() && c.FetchedUntil.After(c.FetchedFrom) {
			pending.add(k, c.FetchedFrom, c.FetchedUntil)
		}
		if c.RecordsAt.After(s.records) {
			s.records = c.RecordsAt
		}
		if c.Sessions {
			// The windows of a fetch arrive in order: the last says what
			// the fetch left open.
			s.sessions, s.open = true, c.OpenSince
		}
		if !c.CycleEnd.IsZero() {
			s.cycle = c.CycleEnd
		}
		s.err, s.success, s.retire = "", true, c.Retire
	}
	if err := markIdle(ctx, conn, idle, now); err != nil {
		return err
	}
	if len(order) == 0 {
		return nil
	}
	if _, err := conn.ExecContext(ctx, `CREATE OR REPLACE TEMP TABLE stage_cp (stream VARCHAR, device_kind VARCHAR, device_id VARCHAR,
		settled TIMESTAMPTZ, fetched TIMESTAMPTZ, err VARCHAR, fails INTEGER, retire BOOLEAN, covered TIMESTAMPTZ,
		records TIMESTAMPTZ, sessions BOOLEAN, open TIMESTAMPTZ, cycle TIMESTAMPTZ)`); err != nil {
		return err
	}
	nullTime := func(t time.Time) driver.Value {
		if t.IsZero() {
			return nil
		}
		return t.UTC()
	}
	err := appendRows(conn, "temp", "stage_cp", len(order), func(i int) []driver.Value {
		k, s := order[i], folded[order[i]]
		var errText driver.Value
		if s.err != "" {
			errText = clip.Text(s.err, 1000)
		}
		return []driver.Value{k.stream, k.dev.Kind, k.dev.ID, nullTime(s.settled), nullTime(s.fetched), errText, int32(s.fails), s.retire, nullTime(s.from),
			nullTime(s.records), s.sessions, nullTime(s.open), nullTime(s.cycle)}
	})
	if err != nil {
		return err
	}
	settleFrom, err := settlingFrom(ctx, conn)
	if err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, `UPDATE sync_checkpoints c SET
		settled_until = CASE WHEN s.settled IS NULL THEN c.settled_until WHEN c.settled_until IS NULL THEN s.settled ELSE greatest(c.settled_until, s.settled) END,
		fetched_until = CASE WHEN s.fetched IS NULL THEN c.fetched_until WHEN c.fetched_until IS NULL THEN s.fetched ELSE greatest(c.fetched_until, s.fetched) END,
		last_error = s.err,
		failures = CASE WHEN s.err IS NULL THEN 0 ELSE coalesce(c.failures, 0) + s.fails END,
		retired = CASE WHEN s.err IS NULL THEN s.retire ELSE c.retired END,
		covered_from = CASE WHEN s.covered IS NULL THEN c.covered_from
			WHEN c.covered_from IS NULL OR c.fetched_until IS NULL THEN s.covered
			WHEN s.fetched >= c.covered_from THEN least(c.covered_from, s.covered)
			ELSE c.covered_from END,
		idle_since = CASE WHEN s.err IS NULL THEN NULL ELSE c.idle_since END,
		records_at = CASE WHEN s.records IS NULL THEN c.records_at WHEN c.records_at IS NULL THEN s.records ELSE greatest(c.records_at, s.records) END,
		open_since = CASE WHEN s.sessions THEN s.open ELSE c.open_since END,
		cycle_end = coalesce(s.cycle, c.cycle_end),
		updated_at = $1
		FROM stage_cp s WHERE c.stream = s.stream AND c.device_kind = s.device_kind AND c.device_id = s.device_id`, now)
	if err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, `INSERT INTO sync_checkpoints (stream, device_kind, device_id, settled_until, fetched_until, updated_at, last_error, failures, retired, covered_from,
		records_at, open_since, cycle_end)
		SELECT s.stream, s.device_kind, s.device_id, s.settled, s.fetched, $1, s.err, CASE WHEN s.err IS NULL THEN 0 ELSE s.fails END, s.err IS NULL AND s.retire, s.covered,
		s.records, CASE WHEN s.sessions THEN s.open END, s.cycle
		FROM stage_cp s WHERE NOT EXISTS (SELECT 1 FROM sync_checkpoints c
		  WHERE c.stream = s.stream AND c.device_kind = s.device_kind AND c.device_id = s.device_id)`, now)
	if err != nil {
		return err
	}
	if err := w.settleUsage(ctx, conn, settleFrom, usageWritten); err != nil {
		return fmt.Errorf("keep usage_daily.is_provisional: %w", err)
	}
	if pending == nil {
		return nil
	}
	return extendCovered(ctx, conn, order, pending)
}

// markIdle records that these device-streams were skipped as idle: since
// now, unless they already were. Nothing else of their checkpoints moves
// (updated_at says when one last moved).
func markIdle(ctx context.Context, conn *sql.Conn, keys []spanKey, now time.Time) error {
	if len(keys) == 0 {
		return nil
	}
	if _, err := conn.ExecContext(ctx, `CREATE OR REPLACE TEMP TABLE stage_idle (stream VARCHAR, device_kind VARCHAR, device_id VARCHAR)`); err != nil {
		return err
	}
	err := appendRows(conn, "temp", "stage_idle", len(keys), func(i int) []driver.Value {
		return []driver.Value{keys[i].stream, keys[i].dev.Kind, keys[i].dev.ID}
	})
	if err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, `UPDATE sync_checkpoints c SET idle_since = $1
		FROM stage_idle s WHERE c.stream = s.stream AND c.device_kind = s.device_kind AND c.device_id = s.device_id
		AND c.idle_since IS NULL`, now)
	return err
}

// extendCovered moves covered_from back to the start of a stretch fetched
// in this run that reaches it, then keeps only the stretches of these
// device-streams that still do not reach it.
func extendCovered(ctx context.Context, conn *sql.Conn, keys []spanKey, pending fetchedSpans) error {
	type row struct {
		k        spanKey
		from, to time.Time
	}
	var rows []row
	for _, k := range keys {
		for _, r := range pending[k] {
			rows = append(rows, row{k, r.From, r.To})
		}
		delete(pending, k)
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := conn.ExecContext(ctx, `CREATE OR REPLACE TEMP TABLE stage_cp_span (stream VARCHAR, device_kind VARCHAR, device_id VARCHAR,
		span_from TIMESTAMPTZ, span_to TIMESTAMPTZ)`); err != nil {
		return err
	}
	err := appendRows(conn, "temp", "stage_cp_span", len(rows), func(i int) []driver.Value {
		r := rows[i]
		return []driver.Value{r.k.stream, r.k.dev.Kind, r.k.dev.ID, r.from.UTC(), r.to.UTC()}
	})
	if err != nil {
		return err
	}
	// The stretches are merged: at most one reaches covered_from from
	// before it.
	if _, err := conn.ExecContext(ctx, `UPDATE sync_checkpoints c SET covered_from = p.span_from
		FROM stage_cp_span p WHERE c.stream = p.stream AND c.device_kind = p.device_kind AND c.device_id = p.device_id
		AND c.covered_from IS NOT NULL AND c.last_error IS NULL AND p.span_from < c.covered_from AND p.span_to >= c.covered_from`); err != nil {
		return err
	}
	left, err := conn.QueryContext(ctx, `SELECT p.stream, p.device_kind, p.device_id, p.span_from, p.span_to
		FROM stage_cp_span p JOIN sync_checkpoints c ON c.stream = p.stream AND c.device_kind = p.device_kind AND c.device_id = p.device_id
		WHERE c.covered_from IS NOT NULL AND p.span_to < c.covered_from`)
	if err != nil {
		return err
	}
	defer left.Close()
	for left.Next() {
		var k spanKey
		var from, to time.Time
		if err := left.Scan(&k.stream, &k.dev.Kind, &k.dev.ID, &from, &to); err != nil {
			return err
		}
		pending.add(k, from.UTC(), to.UTC())
	}
	return left.Err()
}

// quoteList quotes names and joins them.
func quoteList(names []string, prefix string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = prefix + schema.Ident(n)
	}
	return strings.Join(q, ", ")
}

func dropStaging(ctx context.Context, conn *sql.Conn) error {
	rows, err := conn.QueryContext(ctx, `SELECT table_name FROM duckdb_tables() WHERE temporary AND starts_with(table_name, 'stage_')`)
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		if _, err := conn.ExecContext(ctx, "DROP TABLE temp.main."+schema.Ident(n)); err != nil {
			return err
		}
	}
	return nil
}
