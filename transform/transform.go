// Package transform turns decoded API records into warehouse rows: it
// flattens extendedAttributes and connectionEventAttributes into the columns
// the schema declares, normalises instants to UTC, kinds to lower case and
// numeric strings to integers. Pure functions: no I/O, no clock.
//
// Conventions every method follows:
//   - Instants are UTC; a DATE is midnight UTC of the instant's UTC day.
//   - In a column the schema declares, a JSON null, "" and "null" (any case,
//     surrounding space ignored) are NULL, whatever the column's type; other
//     text is stored exactly as sent.
//   - A numeric column takes "123", "123.0", "1e3" or a JSON number; anything
//     else rejects the record, naming the key and the value. INTEGER columns
//     reject values outside int32. Every number the API sends is a count, a
//     size, a duration or a code: a negative one rejects the record.
//   - A record's instant must lie in the plausible window: not before
//     EarliestPlausible, not more than a day after the end of the range
//     asked for; else the record is rejected.
//   - A key sent twice in one record: the last value wins (as for a JSON
//     object with a repeated member); every value must still be valid for its
//     column, so a bad first value rejects the record.
//   - An attribute key the schema does not know goes to Row.Unknown exactly
//     as sent, never interpreted; a repeated unknown key keeps one entry,
//     with the last value.
package transform

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/internal/clip"
	"github.com/thingsync/thingsync/schema"
)

// Row is one warehouse row. Values is aligned with the schema table's
// Columns: nil is NULL; columns marked Loader in the schema are left nil for
// the loader to fill. Value types: string, int64 (BIGINT), int32 (INTEGER),
// float64, bool, time.Time in UTC (a DATE is midnight UTC), []string.
type Row struct {
	Values []any
	// Unknown holds attribute keys the schema does not know, as sent. The
	// loader turns them into evolved columns (or the extra map).
	Unknown []extract.Attribute
}

// Reject is a record that could not be made into a row.
type Reject struct {
	Stream string           // schema.StreamUsage or schema.StreamConnections
	Device extract.DeviceID // kind lower-cased, as in rows
	Reason string
	// Raw is the record exactly as the API sent it; nil when the record was
	// not decoded from JSON.
	Raw json.RawMessage
}

// Transformer turns records into rows of the schema's tables. It is built
// once by New, never changes afterwards and is safe for concurrent use.
type Transformer struct {
	usage   usageLayout
	events  eventsLayout
	devices devicesLayout
	rated   ratedLayout
	agg     aggregateLayout
}

// New builds a Transformer from the schema. Column positions are looked up
// here, once; a column the transform needs but the schema lacks is a
// programming error and panics (the package's tests build one).
func New() *Transformer {
	return &Transformer{
		usage:   newUsageLayout(schema.MustLookup(schema.UsageDaily)),
		events:  newEventsLayout(schema.MustLookup(schema.ConnectionEvents)),
		devices: newDevicesLayout(schema.MustLookup(schema.Devices)),
		rated:   newRatedLayout(schema.MustLookup(schema.RatedUsage)),
		agg:     newAggregateLayout(schema.MustLookup(schema.AggregateUsage)),
	}
}

// colKind is how a column's text is converted.
type colKind uint8

const (
	kindText colKind = iota
	kindBigInt
	kindInteger
)

func kindOf(c schema.Column) colKind {
	switch c.Type {
	case schema.Varchar:
		return kindText
	case schema.BigInt:
		return kindBigInt
	case schema.Integer:
		return kindInteger
	}
	panic(fmt.Sprintf("transform: attribute column %s has type %s, which attributes cannot fill", c.Name, c.Type))
}

// mustIndex returns the position of a column the transform fills.
func mustIndex(t schema.Table, name string) int {
	i := t.Index(name)
	if i < 0 {
		panic(fmt.Sprintf("transform: table %s has no column %s", t.Name, name))
	}
	return i
}

// attrMap resolves attribute keys to the columns of one table. It is
// read-only after construction.
type attrMap struct {
	// exact holds the spellings the schema lists (Attr, Aliases) as written,
	// so the keys real pages send resolve with one map lookup and no
	// normalisation.
	exact map[string]int
	// norm is schema.Table.AttrColumns: normalised key (schema.AttrKey) →
	// column, for every other spelling (MtSMS, mt_sms, …).
	norm  map[string]int
	kinds []colKind // per column of the table; only attribute columns are set
	width int
}

func newAttrMap(t schema.Table) attrMap {
	m := attrMap{
		exact: make(map[string]int),
		norm:  t.AttrColumns(),
		kinds: make([]colKind, len(t.Columns)),
		width: len(t.Columns),
	}
	for i, c := range t.Columns {
		if c.Attr == "" {
			continue
		}
		m.kinds[i] = kindOf(c)
		m.exact[c.Attr] = i
		for _, a := range c.Aliases {
			m.exact[a] = i
		}
	}
	return m
}

// column returns the column an attribute key fills.
func (m *attrMap) column(key string) (int, bool) {
	if i, ok := m.exact[key]; ok {
		return i, true
	}
	var buf [64]byte
	k := appendAttrKey(buf[:0], key)
	i, ok := m.norm[string(k)] // no allocation: the conversion is only a map key
	return i, ok
}

// appendAttrKey appends schema.AttrKey(key) to b without allocating for
// keys that fit b's capacity. It must agree with schema.AttrKey exactly (a
// test checks): lower-case every rune by Unicode rules, keep only a-z and
// 0-9.
func appendAttrKey(b []byte, key string) []byte {
	for i := 0; i < len(key); {
		c := key[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c >= 'A' && c <= 'Z':
				b = append(b, c+('a'-'A'))
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
				b = append(b, c)
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(key[i:])
		i += n
		// A few non-ASCII runes lower-case to ASCII letters (the Kelvin
		// sign K → k, İ → i); schema.AttrKey keeps those.
		if r = unicode.ToLower(r); (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b = append(b, byte(r))
		}
	}
	return b
}

// isNull reports whether an attribute value stands for NULL.
func isNull(a extract.Attribute) bool {
	return a.Null || isNullText(a.Value)
}

func isNullText(s string) bool {
	if s == "" {
		return true
	}
	// Fast path for the common value that neither starts nor ends with
	// space (ASCII or not): only "null" itself is NULL.
	if first, last := s[0], s[len(s)-1]; first > ' ' && first < utf8.RuneSelf && last > ' ' && last < utf8.RuneSelf {
		return len(s) == 4 && (first|0x20) == 'n' && strings.EqualFold(s, "null")
	}
	s = strings.TrimSpace(s)
	return s == "" || strings.EqualFold(s, "null")
}

// convert turns an attribute's text into the column's Go type. The error
// names the problem; the caller adds the key.
func convert(kind colKind, s string) (any, error) {
	switch kind {
	case kindText:
		return s, nil
	case kindBigInt:
		v, ok, err := extract.ParseInt(s)
		if err != nil {
			return nil, errNotInteger
		}
		if !ok {
			return nil, nil
		}
		if v < 0 {
			return nil, errNegative
		}
		return v, nil
	case kindInteger:
		v, ok, err := extract.ParseInt(s)
		if err != nil {
			return nil, errNotInteger
		}
		if !ok {
			return nil, nil
		}
		if v < 0 {
			return nil, errNegative
		}
		if v > 1<<31-1 {
			return nil, errInt32Range
		}
		return int32(v), nil
	}
	return nil, fmt.Errorf("column kind %d", kind)
}

// Conversion problems; fixed values so the hot path formats nothing until a
// record is actually rejected.
const (
	errNotInteger = valueError("is not an integer")
	errInt32Range = valueError("is out of range for INTEGER")
	errNegative   = valueError("is negative (a count, size, duration or code)")
)

type valueError string

func (e valueError) Error() string { return string(e) }

// maxQuoted bounds how much of an API key or value a reject reason quotes:
// a hostile record must not bloat rejected_records.reason (Raw keeps it all).
const maxQuoted = 64

// quote returns s shortened to maxQuoted bytes (on a rune boundary, marked
// with …) and Go-quoted.
func quote(s string) string {
	return fmt.Sprintf("%q", clip.Text(s, maxQuoted))
}

// attrReason is the reject reason for an attribute whose value does not fit
// its column.
func attrReason(a extract.Attribute, err error) string {
	return fmt.Sprintf("attribute %s: value %s %v", quote(a.Key), quote(a.Value), err)
}

// flatten writes a record's attributes into vals (the row being built) and
// appends the keys the table does not know to unknown. It returns the reject
// reason, or "" when every value fits its column. start is where this
// record's entries begin in unknown, for de-duplicating repeated keys.
func (m *attrMap) flatten(vals []any, attrs []extract.Attribute, unknown []extract.Attribute, seen *keyCache) ([]extract.Attribute, string) {
	start := len(unknown)
	for j, a := range attrs {
		i, ok := seen.column(m, j, a.Key)
		if !ok {
			unknown = addUnknown(unknown, start, a)
			continue
		}
		if isNull(a) {
			vals[i] = nil // the last value wins, a NULL one too
			continue
		}
		if m.kinds[i] == kindText {
			vals[i] = seen.arena.clone(a.Value)
			continue
		}
		v, err := convert(m.kinds[i], a.Value)
		if err != nil {
			return unknown[:start], attrReason(a, err)
		}
		vals[i] = v
	}
	return unknown, ""
}

// addUnknown appends a to unknown, or replaces the value of an entry of the
// same record (from start on) with exactly the same key: the loader gets one
// value per key, the last one sent.
func addUnknown(unknown []extract.Attribute, start int, a extract.Attribute) []extract.Attribute {
	for j := start; j < len(unknown); j++ {
		if unknown[j].Key == a.Key {
			unknown[j] = a
			return unknown
		}
	}
	return append(unknown, a)
}

// identity returns the device's kind lower-cased and its id, boxed once so
// every row of a call shares them, or a reason when the device cannot key a
// row.
func identity(dev extract.DeviceID) (kind, id any, reason string) {
	k := normalDevice(dev).Kind
	if k == "" || dev.ID == "" {
		return nil, nil, fmt.Sprintf("device %s has no identity (kind and id are both required)", quote(dev.String()))
	}
	return k, dev.ID, ""
}

// normalDevice is dev as rejects name it: the kind lower-cased, as in rows.
func normalDevice(dev extract.DeviceID) extract.DeviceID {
	dev.Kind = strings.ToLower(strings.TrimSpace(dev.Kind))
	return dev
}

// rowSlab hands out the Values of a call's rows from one allocation. A row
// that turns out to be a reject gives its slot back.
type rowSlab struct {
	buf   []any
	width int
	used  int
}

func newRowSlab(n, width int) rowSlab {
	return rowSlab{buf: make([]any, n*width), width: width}
}

// next returns the zeroed values of the next row.
func (s *rowSlab) next() []any {
	v := s.buf[s.used*s.width : (s.used+1)*s.width : (s.used+1)*s.width]
	s.used++
	return v
}

// drop returns the last row's slot, cleared so it holds no references.
func (s *rowSlab) drop() {
	s.used--
	clear(s.buf[s.used*s.width : (s.used+1)*s.width])
}

// keyCache remembers which column the key at each position of the previous
// record resolved to: the records of a page list their keys in the same
// order, so a string comparison replaces a map lookup. One lives on the
// stack of each Usage or Events call.
type keyCache struct {
	keys [48]string
	cols [48]int32 // -1: unknown key
	// arena holds the call's text values.
	arena arena
}

// arena copies a call's text values into shared chunks. A decoded record's
// strings point into its whole response page; a row must keep only its own
// values alive, and one chunk per call costs one allocation, not one per
// value.
type arena struct{ buf []byte }

func (a *arena) clone(s string) string {
	if len(s) == 0 {
		return ""
	}
	if cap(a.buf)-len(a.buf) < len(s) {
		a.buf = make([]byte, 0, max(2048, len(s)))
	}
	n := len(a.buf)
	a.buf = append(a.buf, s...)
	// The chunk is never appended past its capacity, so it never moves
	// and its written bytes never change.
	return unsafe.String(&a.buf[n], len(s))
}

func (c *keyCache) column(m *attrMap, pos int, key string) (int, bool) {
	if pos >= len(c.keys) {
		return m.column(key)
	}
	if c.keys[pos] == key && key != "" {
		col := int(c.cols[pos])
		return col, col >= 0
	}
	col, ok := m.column(key)
	c.keys[pos] = key
	c.cols[pos] = -1
	if ok {
		c.cols[pos] = int32(col)
	}
	return col, ok
}
