package load

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/thingsync/thingsync/transform"
)

// TestSortRows checks the ranked sort against the order it replaces: a
// stable sort by lessRow, on batches with NULLs, duplicate keys, many or
// few ties in the first column and, for the fallback, columns it cannot
// rank.
func TestSortRows(t *testing.T) {
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	values := map[string]func(r *rand.Rand) any{
		"date":    func(r *rand.Rand) any { return day.AddDate(0, 0, r.IntN(5)) },
		"instant": func(r *rand.Rand) any { return day.Add(time.Duration(r.IntN(4)) * time.Nanosecond) },
		"zone": func(r *rand.Rand) any { // one instant in two zones: equal
			return day.In(time.FixedZone("x", 3600*r.IntN(2)))
		},
		// Rarely tied: rows it leaves tied are compared as values.
		"spread":  func(r *rand.Rand) any { return day.Add(time.Duration(r.IntN(1 << 30))) },
		"device":  func(r *rand.Rand) any { return []string{"8914", "891", "89140", "", "a"}[r.IntN(5)] },
		"int64":   func(r *rand.Rand) any { return int64(r.IntN(7) - 3) },
		"int32":   func(r *rand.Rand) any { return int32(r.IntN(3)) },
		"other":   func(r *rand.Rand) any { return float64(r.IntN(3)) },
		"nullish": func(r *rand.Rand) any { return nil },
		// Values compare cannot order against each other: the fallback.
		"mixed":  func(r *rand.Rand) any { return []any{int64(1), "1", int32(1)}[r.IntN(3)] },
		"intmix": func(r *rand.Rand) any { return []any{int64(r.IntN(3)), int32(r.IntN(3))}[r.IntN(2)] },
		"ancient": func(r *rand.Rand) any {
			return []time.Time{day, time.Date(1200, 1, 1, 0, 0, 0, 0, time.UTC)}[r.IntN(2)]
		},
	}
	cases := [][]string{
		{"date", "device", "device"},
		{"instant", "device", "int64"},
		{"zone", "device"},
		{"int32", "int64", "other"},
		{"device", "nullish", "date"},
		{"mixed", "device"},
		{"ancient", "device"},
		{"intmix", "device"},
		{"spread", "device", "mixed"},
		{"spread", "intmix"},
		{"date", "mixed"},
		{"spread"},
		{"date"},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, cols := range cases {
		for _, n := range []int{0, 1, 2, 17, 500} {
			rows := make([]transform.Row, n)
			for i := range rows {
				v := make([]any, len(cols)+1)
				for j, c := range cols {
					if r.IntN(6) == 0 {
						continue // NULL
					}
					v[j] = values[c](r)
				}
				v[len(cols)] = int64(i) // the row's identity, not sorted on
				rows[i] = transform.Row{Values: v}
			}
			order := make([]int, len(cols))
			for j := range order {
				order[j] = j
			}
			want := make([]int, n)
			for i := range want {
				want[i] = i
			}
			sort.SliceStable(want, func(a, b int) bool { return lessRow(rows[want[a]].Values, rows[want[b]].Values, order) })
			if got := sortRows(rows, order); !slices.Equal(got, want) {
				t.Errorf("columns %v, %d rows: order %v, want %v", cols, n, got, want)
			}
		}
	}
}
