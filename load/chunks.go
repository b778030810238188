package load

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"time"
	"unsafe"

	bindings "github.com/duckdb/duckdb-go-bindings"
	"github.com/duckdb/duckdb-go/v2"
)

// chunkAppender appends rows to a table by writing DuckDB data chunks
// column by column, through DuckDB's C appender. The driver's Appender
// does the same behind AppendRow, but converts every value through an
// interface, a map lookup and, for text, a copy: on a 45-column event
// batch that was a third of the load's time. Numbers, times and short
// text are written straight into the vectors here; long text goes through
// one C call without a copy.
type chunkAppender struct {
	app   bindings.Appender
	chunk bindings.DataChunk
	cols  []chunkColumn
	rows  int // rows in the current chunk
	cap   int
}

type chunkColumn struct {
	typ  bindings.Type
	vec  bindings.Vector
	data unsafe.Pointer
	mask unsafe.Pointer // validity, made writable with the chunk
}

// errNoChunks says the fast path cannot serve this connection or table;
// the caller uses the driver's Appender.
var errNoChunks = errors.New("chunk appender unavailable")

// connField is where duckdb-go v2.10505.0 keeps the C connection of a
// *duckdb.Conn. It is unexported, so it is looked up by name and type:
// a driver that moved it leaves the fast path unavailable (the tests say
// so), never a wrong pointer.
func connHandle(dc driver.Conn) (bindings.Connection, bool) {
	c, ok := dc.(*duckdb.Conn)
	if !ok || c == nil {
		return bindings.Connection{}, false
	}
	f := reflect.ValueOf(c).Elem().FieldByName("conn")
	if !f.IsValid() || f.Type() != reflect.TypeFor[bindings.Connection]() {
		return bindings.Connection{}, false
	}
	h := *(*bindings.Connection)(unsafe.Pointer(f.UnsafeAddr()))
	return h, h.Ptr != nil
}

// supported are the column types written directly; a column of another
// type (MAP, LIST) is accepted while all its values are NULL.
func supported(t bindings.Type) bool {
	switch t {
	case bindings.TypeVarchar, bindings.TypeBigInt, bindings.TypeInteger, bindings.TypeDouble,
		bindings.TypeBoolean, bindings.TypeDate, bindings.TypeTimestamp, bindings.TypeTimestampTZ:
		return true
	}
	return false
}

func newChunkAppender(dc driver.Conn, catalog, table string) (*chunkAppender, error) {
	conn, ok := connHandle(dc)
	if !ok {
		return nil, errNoChunks
	}
	a := &chunkAppender{cap: int(bindings.VectorSize())}
	if bindings.AppenderCreateExt(conn, catalog, "main", table, &a.app) == bindings.StateError {
		err := errors.New(bindings.AppenderError(a.app))
		bindings.AppenderDestroy(&a.app)
		return nil, err
	}
	n := int(bindings.AppenderColumnCount(a.app))
	types := make([]bindings.LogicalType, n)
	a.cols = make([]chunkColumn, n)
	for i := range types {
		types[i] = bindings.AppenderColumnType(a.app, bindings.IdxT(i))
		a.cols[i].typ = bindings.GetTypeId(types[i])
	}
	a.chunk = bindings.CreateDataChunk(types)
	for i := range types {
		bindings.DestroyLogicalType(&types[i])
	}
	a.reset()
	return a, nil
}

// reset readies the chunk for the next rows.
func (a *chunkAppender) reset() {
	bindings.DataChunkReset(a.chunk)
	for i := range a.cols {
		c := &a.cols[i]
		c.vec = bindings.DataChunkGetVector(a.chunk, bindings.IdxT(i))
		c.data = bindings.VectorGetData(c.vec)
		bindings.VectorEnsureValidityWritable(c.vec)
		c.mask = bindings.VectorGetValidity(c.vec)
	}
	a.rows = 0
}

// canAppend reports whether every value of a column type the appender
// does not write is NULL.
func (a *chunkAppender) canAppend(n int, row func(int) []driver.Value) bool {
	var odd []int
	for i, c := range a.cols {
		if !supported(c.typ) {
			odd = append(odd, i)
		}
	}
	if len(odd) == 0 {
		return true
	}
	for r := 0; r < n; r++ {
		v := row(r)
		for _, i := range odd {
			if v[i] != nil {
				return false
			}
		}
	}
	return true
}

func (a *chunkAppender) appendRow(v []driver.Value) error {
	if len(v) != len(a.cols) {
		return fmt.Errorf("%d values for %d columns", len(v), len(a.cols))
	}
	r := a.rows
	for i, x := range v {
		c := &a.cols[i]
		if x == nil {
			setNull(c.mask, r)
			continue
		}
		if err := c.set(r, x); err != nil {
			return fmt.Errorf("column %d: %w", i+1, err)
		}
	}
	a.rows++
	if a.rows == a.cap {
		return a.flushChunk()
	}
	return nil
}

func (a *chunkAppender) flushChunk() error {
	if a.rows == 0 {
		return nil
	}
	bindings.DataChunkSetSize(a.chunk, bindings.IdxT(a.rows))
	if bindings.AppendDataChunk(a.app, a.chunk) == bindings.StateError {
		return errors.New(bindings.AppenderError(a.app))
	}
	a.reset()
	return nil
}

// close appends what is left and releases the appender; with a non-nil
// err (an earlier failure) it only releases.
func (a *chunkAppender) close(err error) error {
	if err == nil {
		err = a.flushChunk()
	}
	if err == nil && bindings.AppenderClose(a.app) == bindings.StateError {
		err = errors.New(bindings.AppenderError(a.app))
	}
	bindings.DestroyDataChunk(&a.chunk)
	bindings.AppenderDestroy(&a.app)
	return err
}

func setNull(mask unsafe.Pointer, row int) {
	w := (*uint64)(unsafe.Add(mask, (row>>6)*8))
	*w &^= 1 << (uint(row) & 63)
}

func put[T any](data unsafe.Pointer, row int, v T) {
	*(*T)(unsafe.Add(data, uintptr(row)*unsafe.Sizeof(v))) = v
}

// stringT is DuckDB's string_t (duckdb.h): text of up to 12 bytes is
// held inline, longer text by pointer into the vector's own heap.
type stringT struct {
	length uint32
	inline [12]byte
}

func (c *chunkColumn) set(row int, x driver.Value) error {
	switch c.typ {
	case bindings.TypeVarchar:
		s, ok := x.(string)
		if !ok {
			b, isBytes := x.([]byte)
			if !isBytes {
				return typeError(x, "VARCHAR")
			}
			s = string(b)
		}
		if len(s) <= 12 {
			st := stringT{length: uint32(len(s))}
			copy(st.inline[:], s)
			put(c.data, row, st)
			return nil
		}
		bindings.VectorAssignStringElement(c.vec, bindings.IdxT(row), s)
	case bindings.TypeBigInt:
		n, ok := toInt64(x)
		if !ok {
			return typeError(x, "BIGINT")
		}
		put(c.data, row, n)
	case bindings.TypeInteger:
		n, ok := toInt64(x)
		if !ok || n != int64(int32(n)) {
			return typeError(x, "INTEGER")
		}
		put(c.data, row, int32(n))
	case bindings.TypeDouble:
		switch f := x.(type) {
		case float64:
			put(c.data, row, f)
		case float32:
			put(c.data, row, float64(f))
		default:
			n, ok := toInt64(x)
			if !ok {
				return typeError(x, "DOUBLE")
			}
			put(c.data, row, float64(n))
		}
	case bindings.TypeBoolean:
		b, ok := x.(bool)
		if !ok {
			return typeError(x, "BOOLEAN")
		}
		put(c.data, row, b)
	case bindings.TypeDate:
		t, ok := x.(time.Time)
		if !ok {
			return typeError(x, "DATE")
		}
		// As the driver does: whole days since the epoch of the instant.
		put(c.data, row, int32(t.Unix()/(24*60*60)))
	case bindings.TypeTimestamp, bindings.TypeTimestampTZ:
		t, ok := x.(time.Time)
		if !ok {
			return typeError(x, "TIMESTAMP")
		}
		put(c.data, row, t.UnixMicro())
	default:
		return typeError(x, "a nested column")
	}
	return nil
}

func toInt64(x driver.Value) (int64, bool) {
	switch n := x.(type) {
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case int:
		return int64(n), true
	}
	return 0, false
}

func typeError(x driver.Value, col string) error {
	return fmt.Errorf("cannot write %T to %s", x, col)
}
