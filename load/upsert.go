package load

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/thingsync/thingsync/internal/clip"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// layout is how a batch of one table is staged: the schema's data columns,
// then the columns schema evolution added, then the extra map.
type layout struct {
	table    schema.Table
	data     []int    // indexes into table.Columns of the columns transform fills
	evolved  []string // evolved column names, in staging order
	evolveIx map[string]int
	extra    bool
}

func (l layout) names() []string {
	var n []string
	for _, i := range l.data {
		n = append(n, l.table.Columns[i].Name)
	}
	n = append(n, l.evolved...)
	if l.extra {
		n = append(n, schema.ExtraColumn)
	}
	return n
}

// tracksFirstSeen tells tables whose rows keep first_seen_at: their rows
// always take the checked path.
func (l layout) tracksFirstSeen() bool {
	_, ok := l.table.Column("first_seen_at")
	return ok
}

func (l layout) types() []string {
	var ts []string
	for _, i := range l.data {
		ts = append(ts, l.table.Columns[i].Type)
	}
	for range l.evolved {
		ts = append(ts, schema.Varchar)
	}
	if l.extra {
		ts = append(ts, schema.ExtraMap)
	}
	return ts
}

// evolve gives every unknown attribute key of the batch a column (or the
// extra map past the cap), in the batch's transaction.
func (w *Warehouse) evolve(ctx context.Context, conn *sql.Conn, t schema.Table, rows []transform.Row, now time.Time, runID string) error {
	if !t.Evolves {
		return nil
	}
	known := w.evolved[t.Name]
	var fresh []string
	seen := map[string]bool{}
	for _, r := range rows {
		for _, a := range r.Unknown {
			if _, ok := known[a.Key]; !ok && !seen[a.Key] {
				seen[a.Key] = true
				fresh = append(fresh, a.Key)
			}
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if known == nil {
		known = map[string]string{}
		w.evolved[t.Name] = known
	}
	taken, err := reservedWords(ctx, conn)
	if err != nil {
		return err
	}
	for _, c := range t.Columns {
		taken[c.Name] = true
	}
	columns := 0
	for _, c := range known {
		taken[c] = true
		if c != schema.ExtraColumn {
			columns++
		}
	}
	sort.Strings(fresh)
	for _, key := range fresh {
		col := schema.ExtraColumn
		base := schema.ColumnName(key)
		switch {
		case base == "":
			w.log.Warn().Str("table", t.Name).Str("attribute", logKey(key)).Msg("attribute key has no letter or digit to name a column: its values go to the extra map")
		case columns >= schema.MaxEvolvedColumns:
			w.log.Warn().Str("table", t.Name).Str("attribute", logKey(key)).Msg("evolved column cap reached: attribute goes to the extra map")
		default:
			col = freeName(base, taken)
			taken[col] = true
			columns++
			// The name is made only of [a-z0-9_] and quoted; the comment
			// is fixed text. No byte from the API is in these statements.
			stmts := []string{
				fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s VARCHAR", schema.Ident(t.Name), schema.Ident(col)),
				fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", schema.Ident(t.Name), schema.Ident(col), schema.Literal(schema.EvolvedComment)),
			}
			for _, s := range stmts {
				if _, err := conn.ExecContext(ctx, s); err != nil {
					return fmt.Errorf("add column %s for attribute %s: %w", col, logKey(key), err)
				}
			}
			delete(w.physical, t.Name)
			w.log.Info().Str("table", t.Name).Str("attribute", logKey(key)).Str("column", col).Msg("schema evolved: new attribute key")
		}
		// The key is a bound value; a value must be UTF-8 (the JSON
		// decoder already makes it so).
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_columns (table_name, attribute_key, column_name, first_seen_at, first_run_id)
			VALUES (?, ?, ?, ?, ?)`, t.Name, strings.ToValidUTF8(key, "\uFFFD"), col, now, runID); err != nil {
			return fmt.Errorf("record evolved column: %w", err)
		}
		known[key] = col
	}
	return nil
}

// freeName returns base, or base with the first free numeric suffix, cut
// so the whole stays within DuckDB's readable identifier length.
func freeName(base string, taken map[string]bool) string {
	if !taken[base] {
		return base
	}
	for n := 2; ; n++ {
		suffix := fmt.Sprintf("_%d", n)
		b := base
		if len(b)+len(suffix) > 63 {
			b = strings.TrimRight(b[:63-len(suffix)], "_")
		}
		if name := b + suffix; !taken[name] {
			return name
		}
	}
}

// reservedWords returns DuckDB's reserved keywords: an evolved column is
// quoted everywhere, but one named select would have to be quoted in every
// query a user writes.
func reservedWords(ctx context.Context, conn *sql.Conn) (map[string]bool, error) {
	rows, err := conn.QueryContext(ctx, `SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'`)
	if err != nil {
		return nil, fmt.Errorf("list reserved words: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		out[strings.ToLower(k)] = true
	}
	return out, rows.Err()
}

// logKey is an attribute key as a log line shows it: Go-quoted, so no
// control byte reaches a terminal, and at most 200 bytes of it.
func logKey(key string) string {
	return strconv.Quote(strings.ToValidUTF8(clip.Text(key, 200), "\uFFFD"))
}

func (w *Warehouse) layout(t schema.Table) layout {
	l := layout{table: t, evolveIx: map[string]int{}, extra: t.Evolves}
	for i, c := range t.Columns {
		if !c.Loader {
			l.data = append(l.data, i)
		}
	}
	cols := map[string]bool{}
	for _, c := range w.evolved[t.Name] {
		if c != schema.ExtraColumn {
			cols[c] = true
		}
	}
	for c := range cols {
		l.evolved = append(l.evolved, c)
	}
	sort.Strings(l.evolved)
	for i, c := range l.evolved {
		l.evolveIx[c] = i
	}
	return l
}

// upsert writes a batch of one table: stage with the Appender, keep the
// last row of each key, insert new keys, rewrite changed rows, leave equal
// rows alone (so a rerun changes nothing and counts exactly). It returns
// the values it staged too.
func (w *Warehouse) upsert(ctx context.Context, conn *sql.Conn, t schema.Table, tb *tableBatch, now time.Time, runID string) (TableTotals, int, error) {
	rows := tb.rows
	if err := w.evolve(ctx, conn, t, rows, now, runID); err != nil {
		return TableTotals{}, 0, err
	}
	l := w.layout(t)
	names, types := l.names(), l.types()
	stage, dedup, marked := "stage_"+t.Name, "stage_"+t.Name+"_d", "stage_"+t.Name+"_m"

	// Rows in (date, device) order, then by the rest of the key, so equal
	// keys are neighbours; the sort is stable, so the last of them is the
	// last sent.
	order := sortOrder(t)
	for _, k := range t.Key() {
		if i := t.Index(k); !slices.Contains(order, i) {
			order = append(order, i)
		}
	}
	idx := sortRows(rows, order)
	keyCols := make([]int, 0, len(t.Key()))
	for _, k := range t.Key() {
		keyCols = append(keyCols, t.Index(k))
	}
	var fresh, checked []int
	for n, i := range idx {
		if tb.fresh[i] && !l.tracksFirstSeen() {
			// Of fresh rows with one key, only the last is new.
			if n+1 < len(idx) && tb.fresh[idx[n+1]] && equalKey(rows[i].Values, rows[idx[n+1]].Values, keyCols) {
				continue
			}
			fresh = append(fresh, i)
			continue
		}
		checked = append(checked, i)
	}

	known := w.evolved[t.Name]
	width := len(names)
	hashed := t.Index(schema.RowHashColumn) >= 0
	buf := make([]driver.Value, width+2)
	// fill puts row i's values in buf, in the order of names.
	fill := func(i int) []driver.Value {
		r := rows[i]
		for j, ci := range l.data {
			buf[j] = r.Values[ci]
		}
		for j := len(l.data); j < width; j++ {
			buf[j] = nil
		}
		var extra duckdb.Map
		for _, a := range r.Unknown {
			col, ok := known[a.Key]
			if !ok {
				continue
			}
			var v driver.Value
			if !a.Null {
				v = a.Value
			}
			if col == schema.ExtraColumn {
				if extra == nil {
					extra = duckdb.Map{}
				}
				extra[a.Key] = v
				continue
			}
			buf[len(l.data)+l.evolveIx[col]] = v
		}
		if l.extra && extra != nil {
			buf[width-1] = extra
		}
		return buf
	}

	var tt TableTotals
	if len(fresh) > 0 {
		// Keys no committed row can have go straight into the table, in
		// the batch's transaction. The checked path below runs after, so
		// a stray row of the same key there finds this one and replaces it.
		if err := w.appendFresh(ctx, conn, t, l, fresh, fill, now); err != nil {
			return TableTotals{}, 0, err
		}
		tt.Inserted = int64(len(fresh))
	}
	if len(checked) == 0 {
		return tt, 0, nil
	}

	var def strings.Builder
	for i, n := range names {
		fmt.Fprintf(&def, "%s %s, ", schema.Ident(n), types[i])
	}
	if hashed {
		def.WriteString("_hash BIGINT, ")
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s (%s_seq BIGINT)", schema.Ident(stage), def.String())); err != nil {
		return TableTotals{}, 0, fmt.Errorf("create staging: %w", err)
	}
	err := appendRows(conn, "temp", stage, len(checked), func(n int) []driver.Value {
		i := checked[n]
		v := fill(i)
		if hashed {
			v[width] = l.rowHash(v[:width])
			v[width+1] = int64(i)
			return v
		}
		v[width] = int64(i)
		return v[:width+1]
	})
	if err != nil {
		return TableTotals{}, 0, err
	}

	key := t.Key()
	keyJoin := make([]string, len(key))
	for i, k := range key {
		keyJoin[i] = fmt.Sprintf("t.%s IS NOT DISTINCT FROM s.%s", schema.Ident(k), schema.Ident(k))
	}
	// The batch's time range bounds the target rows a join can match, so
	// DuckDB's zone maps skip the rest of a large table (rows go in in
	// time order): a nightly batch of revisions reads the last days, not
	// the whole year.
	var span []any
	if lo, hi, ok := timeSpan(t, rows, checked); ok {
		col := t.Columns[timeKey(t)]
		keyJoin = append(keyJoin, fmt.Sprintf("t.%s BETWEEN CAST($1 AS %s) AND CAST($2 AS %s)", schema.Ident(col.Name), col.Type, col.Type))
		span = []any{lo, hi}
		if col.Type == schema.Date {
			// A time.Time parameter cast to DATE would go through the
			// session's time zone; a date string does not.
			span = []any{lo.Format(time.DateOnly), hi.Format(time.DateOnly)}
		}
	}
	isKey := map[string]bool{}
	for _, k := range key {
		isKey[k] = true
	}
	// Bookkeeping columns say when a row was last seen or fetched: they
	// are refreshed, not counted as a change.
	var diffs, keep []string
	for _, n := range names {
		if isKey[n] {
			continue
		}
		if n == "last_seen_at" || n == "fetched_at" || n == "received_at" || n == "request_id" {
			keep = append(keep, fmt.Sprintf("%s = s.%s", schema.Ident(n), schema.Ident(n)))
			continue
		}
		diffs = append(diffs, fmt.Sprintf("t.%s IS DISTINCT FROM s.%s", schema.Ident(n), schema.Ident(n)))
	}
	changed := "false"
	if len(diffs) > 0 {
		changed = strings.Join(diffs, " OR ")
	}
	if hashed {
		// One BIGINT instead of every column: the join then reads only the
		// keys and the hash of the target, far less against a year of
		// events (docs/design.md).
		changed = fmt.Sprintf("t.%s IS DISTINCT FROM s._hash", schema.Ident(schema.RowHashColumn))
	}
	firstSeen := ""
	if _, ok := t.Column("first_seen_at"); ok {
		firstSeen = ", coalesce(t.first_seen_at, s.last_seen_at) AS _first_seen"
	}
	orderBy := ""
	if len(t.Order) > 0 {
		orderBy = " ORDER BY " + quoteList(t.Order, "s.")
	}
	stmts := []string{
		fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE %s AS SELECT * EXCLUDE (_seq) FROM %s
			QUALIFY row_number() OVER (PARTITION BY %s ORDER BY _seq DESC) = 1`,
			schema.Ident(dedup), schema.Ident(stage), quoteList(key, "")),
		fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE %s AS SELECT s.*, t.%s IS NOT NULL AS _existed,
			(t.%s IS NOT NULL AND (%s)) AS _changed%s
			FROM %s s LEFT JOIN %s t ON %s`,
			schema.Ident(marked), schema.Ident(key[0]), schema.Ident(key[0]), changed, firstSeen,
			schema.Ident(dedup), schema.Ident(t.Name), strings.Join(keyJoin, " AND ")),
	}
	if _, err := conn.ExecContext(ctx, stmts[0]); err != nil {
		return TableTotals{}, 0, fmt.Errorf("stage %s: %w", t.Name, err)
	}
	if _, err := conn.ExecContext(ctx, stmts[1], span...); err != nil {
		return TableTotals{}, 0, fmt.Errorf("stage %s: %w", t.Name, err)
	}
	var ins, upd int64
	if err := conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FILTER (WHERE NOT _existed), count(*) FILTER (WHERE _changed) FROM %s`,
		schema.Ident(marked))).Scan(&ins, &upd); err != nil {
		return TableTotals{}, 0, err
	}
	tt.Inserted += ins
	tt.Updated += upd
	if upd > 0 {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(`DELETE FROM %s t USING %s s WHERE s._changed AND %s`,
			schema.Ident(t.Name), schema.Ident(marked), strings.Join(keyJoin, " AND ")), span...); err != nil {
			return TableTotals{}, 0, fmt.Errorf("replace changed %s rows: %w", t.Name, err)
		}
	}
	if ins+upd > 0 {
		cols, sel := quoteList(names, ""), quoteList(names, "s.")
		// Every upserted table has loaded_at (schema_test checks the
		// schema's tables are well formed).
		cols += ", loaded_at"
		sel += ", $1::TIMESTAMPTZ"
		if hashed {
			cols += ", " + schema.Ident(schema.RowHashColumn)
			sel += ", s._hash"
		}
		if firstSeen != "" {
			cols += ", first_seen_at"
			sel += ", s._first_seen"
		}
		q := fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s s WHERE s._changed OR NOT s._existed%s`,
			schema.Ident(t.Name), cols, sel, schema.Ident(marked), orderBy)
		if _, err := conn.ExecContext(ctx, q, now); err != nil {
			return TableTotals{}, 0, fmt.Errorf("insert %s rows: %w", t.Name, err)
		}
	}
	if len(keep) > 0 && ins+upd < int64(len(checked)) {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(`UPDATE %s t SET %s FROM %s s
			WHERE s._existed AND NOT s._changed AND %s`, schema.Ident(t.Name), strings.Join(keep, ", "), schema.Ident(marked), strings.Join(keyJoin, " AND ")), span...); err != nil {
			return TableTotals{}, 0, fmt.Errorf("refresh %s bookkeeping: %w", t.Name, err)
		}
	}
	// The staging tables are three copies of the checked rows, which the
	// open transaction keeps until it commits, even once replaced.
	return tt, 3 * len(checked) * width, nil
}

// appendFresh appends rows to the table itself with the Appender, mapping
// the table's columns, whatever order evolution left them in, to names.
func (w *Warehouse) appendFresh(ctx context.Context, conn *sql.Conn, t schema.Table, l layout, rows []int, fill func(int) []driver.Value, now time.Time) error {
	names := l.names()
	cols, ok := w.physical[t.Name]
	if !ok {
		var err error
		if cols, err = tableColumns(ctx, conn, t.Name); err != nil {
			return err
		}
		if w.physical == nil {
			w.physical = map[string][]string{}
		}
		w.physical[t.Name] = cols
	}
	pos := make(map[string]int, len(names))
	for i, n := range names {
		pos[n] = i
	}
	from := make([]int, len(cols)) // index into names; -1 loaded_at; -2 NULL; -3 row_hash
	for i, c := range cols {
		switch j, ok := pos[c]; {
		case ok:
			from[i] = j
		case c == "loaded_at":
			from[i] = -1
		case c == schema.RowHashColumn:
			from[i] = -3
		default:
			from[i] = -2
		}
	}
	out := make([]driver.Value, len(cols))
	return appendRows(conn, "", t.Name, len(rows), func(n int) []driver.Value {
		v := fill(rows[n])
		for i, j := range from {
			switch j {
			case -1:
				out[i] = now
			case -2:
				out[i] = nil
			case -3:
				out[i] = l.rowHash(v[:len(names)])
			default:
				out[i] = v[j]
			}
		}
		return out
	})
}

// tableColumns lists a table's columns in their physical order.
func tableColumns(ctx context.Context, conn *sql.Conn, table string) ([]string, error) {
	rs, err := conn.QueryContext(ctx, `SELECT column_name FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ? ORDER BY column_index`, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rs.Close()
	var cols []string
	for rs.Next() {
		var c string
		if err := rs.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rs.Err()
}

// timeSpan is the earliest and latest time key of the checked rows; ok is
// false when the table has no time key or a row lacks one.
func timeSpan(t schema.Table, rows []transform.Row, checked []int) (lo, hi time.Time, ok bool) {
	col := timeKey(t)
	if col < 0 || len(checked) == 0 {
		return lo, hi, false
	}
	for n, i := range checked {
		at, isTime := rows[i].Values[col].(time.Time)
		if !isTime {
			return lo, hi, false
		}
		if n == 0 || at.Before(lo) {
			lo = at
		}
		if n == 0 || at.After(hi) {
			hi = at
		}
	}
	return lo.UTC(), hi.UTC(), true
}

// rowHash is the row_hash of a row's values in the order of l.names().
// An evolved column counts only when it holds a value, by name: a column
// that evolution adds later leaves the hashes of the rows before it as
// they were (with it, a re-read of those rows would rewrite them all).
// A table without evolved columns hashes its data and extra columns alone.
func (l layout) rowHash(v []driver.Value) int64 {
	var h rowHasher
	h.d.Reset()
	n := len(l.data)
	for _, x := range v[:n] {
		h.value(x)
	}
	for i, name := range l.evolved {
		if x := v[n+i]; x != nil {
			h.str('c', name)
			h.value(x)
		}
	}
	for _, x := range v[n+len(l.evolved):] {
		h.value(x)
	}
	return int64(h.d.Sum64())
}

// rowHasher is XXH64 over a canonical encoding of a row's values (a type
// tag, then the value; map keys in order), as a BIGINT. Equal values give
// equal hashes in every process and version of Go. It runs for every
// loaded row, so it hashes in place, without allocating; XXH64 takes
// text eight bytes at a time, where FNV-1a takes one (docs/design.md).
type rowHasher struct {
	d   xxhash.Digest
	buf [9]byte
}

func (h *rowHasher) num(tag byte, x uint64) {
	h.buf[0] = tag
	binary.LittleEndian.PutUint64(h.buf[1:], x)
	_, _ = h.d.Write(h.buf[:])
}

func (h *rowHasher) str(tag byte, s string) {
	h.num(tag, uint64(len(s)))
	_, _ = h.d.WriteString(s)
}

func (h *rowHasher) value(v driver.Value) {
	switch x := v.(type) {
	case nil:
		h.buf[0] = 0
		_, _ = h.d.Write(h.buf[:1])
	case string:
		h.str(1, x)
	case int64:
		h.num(2, uint64(x))
	case int32:
		h.num(3, uint64(int64(x)))
	case float64:
		h.num(4, math.Float64bits(x))
	case bool:
		var b uint64
		if x {
			b = 1
		}
		h.num(5, b)
	case time.Time:
		h.num(6, uint64(x.UnixNano()))
	case duckdb.Map:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, fmt.Sprint(k))
		}
		sort.Strings(keys)
		h.num(7, uint64(len(keys)))
		for _, k := range keys {
			h.str(1, k)
			h.value(x[k])
		}
	default:
		h.str(8, fmt.Sprintf("%T:%v", x, x))
	}
}
