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

// upsertPlan is how batches of one table are upserted while its evolved
// columns are one set: the staging layout, the order rows sort in, and the
// text of every statement, all from the schema's column flags. Nothing in
// it depends on a batch: it is built once per table and set of evolved
// columns (Warehouse.plan) and serves every batch after.
type upsertPlan struct {
	layout
	names  []string // the staged columns, in order
	width  int
	hashed bool // the table keeps row_hash, which tells a changed row
	// order sorts a batch: by the table's Order, then the rest of its
	// key, so rows of one key are neighbours. sameKey compares keys.
	order, sameKey rowCompare
	// firstOf: a column keeps the first value of another, which only the
	// checked path computes, so no row of the table is appended unchecked.
	firstOf bool

	stage, dedup, marked  string // staging tables
	create, dedupe, count string
	insert                string // $1: loaded_at
	// exact matches staged rows to the table by key; spanned also bounds
	// the table's time key to the batch's span ($1, $2), so zone maps
	// skip the rest of a large table.
	exact, spanned matchSQL
}

// matchSQL are the statements that match staged rows to table rows.
type matchSQL struct {
	mark    string // each staged row: whether its key existed, whether it changed
	remove  string // delete the table rows that changed
	refresh string // bookkeeping columns of unchanged rows; "" if the table has none
}

// plan returns t's upsert plan for the evolved columns it has now,
// building it the first time the set is seen. Upserts run inside a
// transaction on the one write connection, so the cache is read and filled
// by one goroutine at a time.
func (w *Warehouse) plan(t schema.Table) *upsertPlan {
	var evolved []string
	for _, c := range w.evolved[t.Name] {
		if c != schema.ExtraColumn && !slices.Contains(evolved, c) {
			evolved = append(evolved, c)
		}
	}
	sort.Strings(evolved)
	// Column names are made of [a-z0-9_]: a comma cannot be in one.
	key := t.Name + ":" + strings.Join(evolved, ",")
	if p, ok := w.plans[key]; ok {
		return p
	}
	p := newUpsertPlan(t, evolved)
	if w.plans == nil {
		w.plans = map[string]*upsertPlan{}
	}
	w.plans[key] = p
	return p
}

// newUpsertPlan builds the plan of t with the evolved columns given, in
// staging order.
func newUpsertPlan(t schema.Table, evolved []string) *upsertPlan {
	l := layout{table: t, evolved: evolved, evolveIx: map[string]int{}, extra: t.Evolves}
	for i, c := range t.Columns {
		if !c.Loader {
			l.data = append(l.data, i)
		}
	}
	for i, c := range evolved {
		l.evolveIx[c] = i
	}
	p := &upsertPlan{layout: l, names: l.names(), hashed: t.Index(schema.RowHashColumn) >= 0}
	p.width = len(p.names)
	key := t.Key()
	var order, keyCols []int
	for _, n := range t.Order {
		if i := t.Index(n); i >= 0 {
			order = append(order, i)
		}
	}
	for _, k := range key {
		i := t.Index(k)
		keyCols = append(keyCols, i)
		if !slices.Contains(order, i) {
			order = append(order, i)
		}
	}
	p.order, p.sameKey = compareBy(t, order), compareBy(t, keyCols)
	p.stage, p.dedup, p.marked = "stage_"+t.Name, "stage_"+t.Name+"_d", "stage_"+t.Name+"_m"
	stage, dedup, marked := schema.Ident(p.stage), schema.Ident(p.dedup), schema.Ident(p.marked)
	table := schema.Ident(t.Name)

	var def strings.Builder
	for i, typ := range l.types() {
		fmt.Fprintf(&def, "%s %s, ", schema.Ident(p.names[i]), typ)
	}
	if p.hashed {
		def.WriteString("_hash BIGINT, ")
	}
	p.create = fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s (%s_seq BIGINT)", stage, def.String())
	// Of staged rows with one key, the last sent wins.
	p.dedupe = fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE %s AS SELECT * EXCLUDE (_seq) FROM %s
			QUALIFY row_number() OVER (PARTITION BY %s ORDER BY _seq DESC) = 1`, dedup, stage, quoteList(key, ""))
	p.count = fmt.Sprintf(`SELECT count(*) FILTER (WHERE NOT _existed), count(*) FILTER (WHERE _changed) FROM %s`, marked)

	// A change is a difference in a data, evolved or extra column; a
	// bookkeeping column is refreshed instead. Loader columns are not
	// staged.
	isKey := map[string]bool{}
	for _, k := range key {
		isKey[k] = true
	}
	var diffs, keep []string
	for _, n := range p.names {
		if isKey[n] {
			continue
		}
		if c, ok := t.Column(n); ok && c.Bookkeeping {
			keep = append(keep, fmt.Sprintf("%s = s.%s", schema.Ident(n), schema.Ident(n)))
			continue
		}
		diffs = append(diffs, fmt.Sprintf("t.%s IS DISTINCT FROM s.%s", schema.Ident(n), schema.Ident(n)))
	}
	changed := "false"
	if len(diffs) > 0 {
		changed = strings.Join(diffs, " OR ")
	}
	if p.hashed {
		// One BIGINT instead of every column: the join then reads only the
		// keys and the hash of the target, far less against a year of
		// events (docs/design.md).
		changed = fmt.Sprintf("t.%s IS DISTINCT FROM s._hash", schema.Ident(schema.RowHashColumn))
	}

	cols, sel := quoteList(p.names, ""), quoteList(p.names, "s.")
	cols += ", " + schema.Ident(schema.LoadedAtColumn)
	sel += ", $1::TIMESTAMPTZ"
	if p.hashed {
		cols += ", " + schema.Ident(schema.RowHashColumn)
		sel += ", s._hash"
	}
	// A first-of column keeps the table's value, or takes its source's
	// value from the staged row when the row is new.
	var firsts []string
	for _, c := range t.Columns {
		if c.FirstOf == "" {
			continue
		}
		alias := schema.Ident(fmt.Sprintf("_first_%d", len(firsts)))
		firsts = append(firsts, fmt.Sprintf(", coalesce(t.%s, s.%s) AS %s", schema.Ident(c.Name), schema.Ident(c.FirstOf), alias))
		cols += ", " + schema.Ident(c.Name)
		sel += ", s." + alias
	}
	p.firstOf = len(firsts) > 0
	orderBy := ""
	if len(t.Order) > 0 {
		orderBy = " ORDER BY " + quoteList(t.Order, "s.")
	}
	p.insert = fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s s WHERE s._changed OR NOT s._existed%s`,
		table, cols, sel, marked, orderBy)

	match := func(on []string) matchSQL {
		join := strings.Join(on, " AND ")
		m := matchSQL{
			mark: fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE %s AS SELECT s.*, t.%s IS NOT NULL AS _existed,
			(t.%s IS NOT NULL AND (%s)) AS _changed%s
			FROM %s s LEFT JOIN %s t ON %s`,
				marked, schema.Ident(key[0]), schema.Ident(key[0]), changed, strings.Join(firsts, ""), dedup, table, join),
			remove: fmt.Sprintf(`DELETE FROM %s t USING %s s WHERE s._changed AND %s`, table, marked, join),
		}
		if len(keep) > 0 {
			m.refresh = fmt.Sprintf(`UPDATE %s t SET %s FROM %s s
			WHERE s._existed AND NOT s._changed AND %s`, table, strings.Join(keep, ", "), marked, join)
		}
		return m
	}
	on := make([]string, len(key))
	for i, k := range key {
		on[i] = fmt.Sprintf("t.%s IS NOT DISTINCT FROM s.%s", schema.Ident(k), schema.Ident(k))
	}
	p.exact, p.spanned = match(on), match(on)
	if i := timeKey(t); i >= 0 {
		col := t.Columns[i]
		p.spanned = match(append(on, fmt.Sprintf("t.%s BETWEEN CAST($1 AS %s) AND CAST($2 AS %s)", schema.Ident(col.Name), col.Type, col.Type)))
	}
	return p
}

// upsert writes a batch of one table: plan (the table's cached plan),
// stage the rows that need checking with the Appender, apply (keep the
// last row of each key, insert new keys, rewrite changed rows, leave
// equal rows alone, so a rerun changes nothing and counts exactly). Rows
// whose keys no committed row can have skip staging. It returns the
// values it staged too.
func (w *Warehouse) upsert(ctx context.Context, conn *sql.Conn, t schema.Table, tb *tableBatch, now time.Time, runID string) (TableTotals, int, error) {
	if err := w.evolve(ctx, conn, t, tb.rows, now, runID); err != nil {
		return TableTotals{}, 0, err
	}
	p := w.plan(t)
	fresh, checked := p.route(tb)
	fill := p.filler(tb.rows, w.evolved[t.Name])

	var tt TableTotals
	if len(fresh) > 0 {
		// Keys no committed row can have go straight into the table, in
		// the batch's transaction. The checked path below runs after, so
		// a stray row of the same key there finds this one and replaces it.
		if err := w.appendFresh(ctx, conn, p, fresh, fill, now); err != nil {
			return TableTotals{}, 0, err
		}
		tt.Inserted = int64(len(fresh))
	}
	if len(checked) == 0 {
		return tt, 0, nil
	}
	if err := p.stageRows(ctx, conn, checked, fill); err != nil {
		return TableTotals{}, 0, err
	}
	applied, err := p.apply(ctx, conn, tb.rows, checked, now)
	if err != nil {
		return TableTotals{}, 0, err
	}
	tt.Inserted += applied.Inserted
	tt.Updated += applied.Updated
	// The staging tables are three copies of the checked rows, which the
	// open transaction keeps until it commits, even once replaced.
	return tt, 3 * len(checked) * p.width, nil
}

// route sorts a batch's rows so rows of one key are neighbours (the sort
// is stable, so the last of them is the last sent), and splits them into
// fresh rows, appended as they are, and rows to check against the table.
func (p *upsertPlan) route(tb *tableBatch) (fresh, checked []int) {
	rows := tb.rows
	idx := sortRows(rows, p.order)
	for n, i := range idx {
		if tb.fresh[i] && !p.firstOf {
			// Of fresh rows with one key, only the last is new.
			if n+1 < len(idx) && tb.fresh[idx[n+1]] && p.sameKey(rows[i].Values, rows[idx[n+1]].Values) == 0 {
				continue
			}
			fresh = append(fresh, i)
			continue
		}
		checked = append(checked, i)
	}
	return fresh, checked
}

// filler returns fill, which puts row i's values in the order of p.names
// into a buffer it reuses, with two spare places after them. known maps
// the table's evolved attribute keys to their columns.
func (p *upsertPlan) filler(rows []transform.Row, known map[string]string) func(i int) []driver.Value {
	buf := make([]driver.Value, p.width+2)
	return func(i int) []driver.Value {
		r := rows[i]
		for j, ci := range p.data {
			buf[j] = r.Values[ci]
		}
		for j := len(p.data); j < p.width; j++ {
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
			buf[len(p.data)+p.evolveIx[col]] = v
		}
		if p.extra && extra != nil {
			buf[p.width-1] = extra
		}
		return buf
	}
}

// stageRows appends the checked rows to the staging table, with their
// hash and their place in the batch.
func (p *upsertPlan) stageRows(ctx context.Context, conn *sql.Conn, checked []int, fill func(int) []driver.Value) error {
	if _, err := conn.ExecContext(ctx, p.create); err != nil {
		return fmt.Errorf("create staging: %w", err)
	}
	return appendRows(conn, "temp", p.stage, len(checked), func(n int) []driver.Value {
		i := checked[n]
		v := fill(i)
		if p.hashed {
			v[p.width] = p.rowHash(v[:p.width])
			v[p.width+1] = int64(i)
			return v
		}
		v[p.width] = int64(i)
		return v[:p.width+1]
	})
}

// apply runs the plan's statements over the staged rows and counts what
// they inserted and updated.
func (p *upsertPlan) apply(ctx context.Context, conn *sql.Conn, rows []transform.Row, checked []int, now time.Time) (TableTotals, error) {
	name := p.table.Name
	// The batch's time range bounds the target rows a join can match, so
	// DuckDB's zone maps skip the rest of a large table (rows go in in
	// time order): a nightly batch of revisions reads the last days, not
	// the whole year.
	m, span := p.exact, []any(nil)
	if lo, hi, ok := timeSpan(p.table, rows, checked); ok {
		m, span = p.spanned, []any{lo, hi}
		if p.table.Columns[timeKey(p.table)].Type == schema.Date {
			// A time.Time parameter cast to DATE would go through the
			// session's time zone; a date string does not.
			span = []any{lo.Format(time.DateOnly), hi.Format(time.DateOnly)}
		}
	}
	if _, err := conn.ExecContext(ctx, p.dedupe); err != nil {
		return TableTotals{}, fmt.Errorf("stage %s: %w", name, err)
	}
	if _, err := conn.ExecContext(ctx, m.mark, span...); err != nil {
		return TableTotals{}, fmt.Errorf("stage %s: %w", name, err)
	}
	var tt TableTotals
	if err := conn.QueryRowContext(ctx, p.count).Scan(&tt.Inserted, &tt.Updated); err != nil {
		return TableTotals{}, err
	}
	if tt.Updated > 0 {
		if _, err := conn.ExecContext(ctx, m.remove, span...); err != nil {
			return TableTotals{}, fmt.Errorf("replace changed %s rows: %w", name, err)
		}
	}
	if tt.Inserted+tt.Updated > 0 {
		if _, err := conn.ExecContext(ctx, p.insert, now); err != nil {
			return TableTotals{}, fmt.Errorf("insert %s rows: %w", name, err)
		}
	}
	if m.refresh != "" && tt.Inserted+tt.Updated < int64(len(checked)) {
		if _, err := conn.ExecContext(ctx, m.refresh, span...); err != nil {
			return TableTotals{}, fmt.Errorf("refresh %s bookkeeping: %w", name, err)
		}
	}
	return tt, nil
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

// appendFresh appends rows to the table itself with the Appender, mapping
// the table's columns, whatever order evolution left them in, to names.
func (w *Warehouse) appendFresh(ctx context.Context, conn *sql.Conn, p *upsertPlan, rows []int, fill func(int) []driver.Value, now time.Time) error {
	t, names := p.table, p.names
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
		case c == schema.LoadedAtColumn:
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
				out[i] = p.rowHash(v[:len(names)])
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
