// Package schema is the one source of truth for the warehouse: tables,
// columns, types, keys, comments, and the map from API attribute keys to
// columns. DDL and load statements are generated from it.
package schema

import (
	"fmt"
	"strings"
)

// DuckDB column types used by the warehouse.
const (
	Varchar     = "VARCHAR"
	BigInt      = "BIGINT"
	Integer     = "INTEGER"
	Double      = "DOUBLE"
	Boolean     = "BOOLEAN"
	Date        = "DATE"
	TimestampTZ = "TIMESTAMPTZ"
	JSON        = "JSON"
	VarcharList = "VARCHAR[]"
	// ExtraMap holds attribute keys that arrived after a table reached its
	// cap of evolved columns.
	ExtraMap = "MAP(VARCHAR, VARCHAR)"
)

// Stream names, as stored in sync_checkpoints.stream and accepted by
// THINGSYNC_STREAMS.
const (
	StreamUsage       = "usage"
	StreamConnections = "connections"
	StreamRated       = "rated"
	StreamAggregate   = "aggregate"
)

// Streams lists every stream in the order runs take them.
func Streams() []string {
	return []string{StreamUsage, StreamConnections, StreamRated, StreamAggregate}
}

// Table names.
const (
	Devices            = "devices"
	DeviceHistory      = "device_history"
	UsageDaily         = "usage_daily"
	ConnectionEvents   = "connection_events"
	ConnectionSessions = "connection_sessions"
	UsageMonthly       = "usage_monthly"
	DeviceLatest       = "device_latest"
	Coverage           = "coverage"
	CoverageDays       = "coverage_days"
	// RowHashColumn holds a fact row's hash for change detection.
	RowHashColumn = "row_hash"
	// LoadedAtColumn says when the loader last wrote a row; every table
	// the loader upserts has it.
	LoadedAtColumn = "loaded_at"
	// ProvisionalColumn says whether a usage_daily row may still be
	// revised; the loader keeps it with the usage checkpoint.
	ProvisionalColumn = "is_provisional"
	RatedUsage        = "rated_usage"
	AggregateUsage    = "aggregate_usage"
	AggregateRequests = "aggregate_requests"
	SyncCheckpoints   = "sync_checkpoints"
	SyncRuns          = "sync_runs"
	SyncLearned       = "sync_learned"
	SyncRunRates      = "sync_run_rates"
	DeviceVisits      = "device_visits"
	RejectedRecords   = "rejected_records"
	SchemaColumns     = "schema_columns"
	SchemaMigrations  = "schema_migrations"
)

// Column is one column of a table.
type Column struct {
	Name    string
	Type    string
	Comment string
	// Key marks the columns whose values together identify a row; the loader
	// keeps them unique (there is no declared PRIMARY KEY: in DuckDB it
	// would cost load time and memory, see docs/design.md).
	Key bool
	// Attr is the API attribute key the column is filled from, for columns
	// flattened from extendedAttributes or connectionEventAttributes.
	Attr string
	// Aliases are other spellings of Attr seen in the API's pages.
	Aliases []string
	// Loader marks columns the loader fills itself (loaded_at, row_hash,
	// extra, a FirstOf column), not transform.
	Loader bool
	// FirstOf names the column of the same table whose value this one
	// keeps from the row's first write: set when the row is inserted,
	// never changed by later writes (first_seen_at is the first
	// last_seen_at). Such a column is also Loader.
	FirstOf string
	// Bookkeeping marks columns that say when a row was last seen,
	// fetched or delivered: a re-read row refreshes them, but a
	// difference in them alone is no change (the row is not rewritten or
	// counted as updated).
	Bookkeeping bool
}

// Table is a table or view of the warehouse.
type Table struct {
	Name    string
	Comment string
	Columns []Column
	// Evolves marks fact tables whose unknown attribute keys become new
	// VARCHAR columns (up to MaxEvolvedColumns, then the extra map).
	Evolves bool
	// View is the SELECT of a view; empty for a table.
	View string
	// Order is the ORDER BY rows are appended in, so zone maps keep date
	// filters and per-day deletes cheap.
	Order []string
}

// MaxEvolvedColumns caps the columns schema evolution adds to one table;
// further unknown keys go to the table's extra map column.
const MaxEvolvedColumns = 64

// ExtraColumn is the overflow map column of evolving tables.
const ExtraColumn = "extra"

// Key returns the names of the table's key columns in declaration order.
func (t Table) Key() []string {
	var key []string
	for _, c := range t.Columns {
		if c.Key {
			key = append(key, c.Name)
		}
	}
	return key
}

// Column returns the named column.
func (t Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// Index returns the position of the named column, or -1.
func (t Table) Index(name string) int {
	for i, c := range t.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Lookup returns a table or view by name.
func Lookup(name string) (Table, bool) {
	for _, t := range Tables() {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}

// MustLookup is Lookup for names that are constants of this package.
func MustLookup(name string) Table {
	t, ok := Lookup(name)
	if !ok {
		panic(fmt.Sprintf("schema: no table %q", name))
	}
	return t
}

// AttrKey normalises an attribute key for matching: the API spells the same
// key in several ways (MtSms, MtSMS, mt_sms).
func AttrKey(key string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(key) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// AttrColumns maps normalised attribute keys (AttrKey) to the position of
// the column they fill in t.
func (t Table) AttrColumns() map[string]int {
	m := make(map[string]int)
	for i, c := range t.Columns {
		if c.Attr == "" {
			continue
		}
		m[AttrKey(c.Attr)] = i
		for _, a := range c.Aliases {
			m[AttrKey(a)] = i
		}
	}
	return m
}

// Ident quotes a name as a DuckDB identifier. Every generated statement
// quotes names this way, so no name can change a statement's meaning.
func Ident(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// Literal quotes a string as a SQL string literal: comments, and paths
// given on the command line (export). It is safe for any text: a DuckDB
// standard string has one escape, the doubled quote, and no backslash
// escapes.
func Literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// maxIdentLen keeps evolved column names readable and well inside DuckDB's
// limits.
const maxIdentLen = 63

// ColumnName turns an attribute key the schema does not know into a column
// name: snake_case, only [a-z0-9_], at most 63 bytes, never starting with a
// digit. It returns "" when the key has no ASCII letter or digit to name a
// column after (its values go to the extra map). The result is still
// quoted wherever it is used, and the caller keeps it clear of reserved
// words and of names already taken.
func ColumnName(key string) string {
	var b strings.Builder
	prevUnderscore := true
	emit := func(c byte) {
		if c == '_' {
			if prevUnderscore {
				return
			}
			prevUnderscore = true
		} else {
			prevUnderscore = false
		}
		b.WriteByte(c)
	}
	// Bytes, not runes: only ASCII letters and digits are kept, and every
	// other byte (NUL, a quote, a byte of invalid UTF-8, a rune of any
	// script) is a separator. A long key stops being read once the name
	// is long enough.
	for i := 0; i < len(key) && b.Len() <= maxIdentLen; i++ {
		c := key[i]
		switch {
		case c >= 'A' && c <= 'Z':
			if i > 0 {
				prev := key[i-1]
				nextLower := i+1 < len(key) && key[i+1] >= 'a' && key[i+1] <= 'z'
				if (prev >= 'a' && prev <= 'z') || (prev >= '0' && prev <= '9') ||
					(prev >= 'A' && prev <= 'Z' && nextLower) {
					emit('_')
				}
			}
			emit(c + ('a' - 'A'))
		case (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'):
			emit(c)
		default:
			emit('_')
		}
	}
	name := strings.Trim(b.String(), "_")
	if name == "" {
		return ""
	}
	if name[0] >= '0' && name[0] <= '9' {
		name = "attr_" + name
	}
	if len(name) > maxIdentLen {
		name = strings.TrimRight(name[:maxIdentLen], "_")
	}
	return name
}

// ValidColumnName reports whether name is one ColumnName can return (before
// a suffix): the only shape of API-derived name that reaches SQL text.
func ValidColumnName(name string) bool {
	if name == "" || len(name) > maxIdentLen || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
