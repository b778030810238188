package load

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// rowCompare orders rows of one table by some of its columns.
type rowCompare func(a, b []any) int

// compareBy compares rows of t by the columns cols, in turn, each as the
// type the schema gives it. It is built once per table, with its plan.
func compareBy(t schema.Table, cols []int) rowCompare {
	byCol := make([]func(a, b any) int, len(cols))
	for j, i := range cols {
		byCol[j] = compareAs(t.Columns[i].Type)
	}
	return func(a, b []any) int {
		for j, i := range cols {
			if c := byCol[j](a[i], b[i]); c != 0 {
				return c
			}
		}
		return 0
	}
}

// compareAs compares two values of a column of type typ as transform
// makes them (DATE and TIMESTAMPTZ a time.Time, VARCHAR a string, BIGINT
// an int64, INTEGER an int32). NULL comes first.
func compareAs(typ string) func(a, b any) int {
	switch typ {
	case schema.Date, schema.TimestampTZ:
		return nullsFirst(time.Time.Compare)
	case schema.Varchar:
		return nullsFirst(strings.Compare)
	case schema.BigInt:
		return nullsFirst(cmp.Compare[int64])
	case schema.Integer:
		return nullsFirst(cmp.Compare[int32])
	case schema.Double:
		return nullsFirst(cmp.Compare[float64])
	}
	return nullsFirst(func(x, y any) int { return 0 })
}

// nullsFirst compares values of type T with c; a NULL, or a value of
// another type, comes before every T.
func nullsFirst[T any](c func(x, y T) int) func(a, b any) int {
	return func(a, b any) int {
		x, okA := a.(T)
		y, okB := b.(T)
		switch {
		case okA && okB:
			return c(x, y)
		case okA:
			return 1
		case okB:
			return -1
		}
		return 0
	}
}

// sortRows returns the indexes of rows in the order by gives, stably:
// rows it holds equal keep the order they were sent in.
func sortRows(rows []transform.Row, by rowCompare) []int {
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		if c := by(rows[a].Values, rows[b].Values); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return idx
}
