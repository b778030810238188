package load

import (
	"cmp"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// TestSortRows: a batch of each upserted table sorts by the table's order
// and then the rest of its key, each column as its type orders (NULL
// first; one instant in two zones is one value), and rows equal on all of
// them keep the order they were sent in (the last sent of a key is last).
func TestSortRows(t *testing.T) {
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	value := func(r *rand.Rand, typ string) any {
		if r.IntN(6) == 0 {
			return nil
		}
		switch typ {
		case schema.Date:
			return day.AddDate(0, 0, r.IntN(5))
		case schema.TimestampTZ:
			return day.Add(time.Duration(r.IntN(4)) * time.Nanosecond).In(time.FixedZone("x", 3600*r.IntN(2)))
		case schema.Varchar:
			return []string{"8914", "891", "89140", "", "a"}[r.IntN(5)]
		case schema.BigInt:
			return int64(r.IntN(7) - 3)
		case schema.Integer:
			return int32(r.IntN(3))
		}
		return nil
	}
	// The reference order of values of one column.
	compareValues := func(a, b any) int {
		switch {
		case a == nil || b == nil:
			return cmp.Compare(boolInt(a != nil), boolInt(b != nil))
		}
		switch x := a.(type) {
		case time.Time:
			return x.Compare(b.(time.Time))
		case string:
			return strings.Compare(x, b.(string))
		case int64:
			return cmp.Compare(x, b.(int64))
		case int32:
			return cmp.Compare(x, b.(int32))
		}
		t.Fatalf("no reference order for %T", a)
		return 0
	}
	sortedBy := map[string][]string{
		schema.Devices:          {"device_kind", "device_id"},
		schema.UsageDaily:       {"usage_date", "device_kind", "device_id"},
		schema.ConnectionEvents: {"occurred_at", "device_kind", "device_id", "event", "account_session_id"},
		schema.RatedUsage:       {"billing_start_date", "device_kind", "device_id"},
		schema.AggregateUsage:   {"start_time", "device_kind", "device_id", "end_time"},
	}
	const seed = 1
	r := rand.New(rand.NewPCG(seed, 2))
	for name, cols := range sortedBy {
		tb := schema.MustLookup(name)
		p := newUpsertPlan(tb, nil)
		for _, n := range []int{0, 1, 2, 17, 500} {
			rows := make([]transform.Row, n)
			for i := range rows {
				v := make([]any, len(tb.Columns))
				for _, c := range cols {
					v[tb.Index(c)] = value(r, tb.Columns[tb.Index(c)].Type)
				}
				rows[i] = transform.Row{Values: v}
			}
			idx := sortRows(rows, p.order)
			seen := make([]bool, n)
			for _, i := range idx {
				seen[i] = true
			}
			for i, ok := range seen {
				if !ok {
					t.Fatalf("%s, %d rows: row %d missing from %v", name, n, i, idx)
				}
			}
			for k := 0; k+1 < len(idx); k++ {
				a, b := rows[idx[k]].Values, rows[idx[k+1]].Values
				c := 0
				for _, col := range cols {
					if c = compareValues(a[tb.Index(col)], b[tb.Index(col)]); c != 0 {
						break
					}
				}
				if c > 0 || (c == 0 && idx[k] > idx[k+1]) {
					shown := func(v []any) []any {
						var out []any
						for _, col := range cols {
							out = append(out, v[tb.Index(col)])
						}
						return out
					}
					t.Errorf("seed %d: %s, %d rows: row %d %v before row %d %v (by %v)", seed, name, n, idx[k], shown(a), idx[k+1], shown(b), cols)
					break
				}
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
