package load

import (
	"cmp"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

func equalKey(a, b []any, cols []int) bool {
	for _, i := range cols {
		if compare(a[i], b[i]) != 0 {
			return false
		}
	}
	return true
}

func sortOrder(t schema.Table) []int {
	var o []int
	for _, n := range t.Order {
		if i := t.Index(n); i >= 0 {
			o = append(o, i)
		}
	}
	return o
}

// sortRows returns the indexes of rows in order, stably: what sorting by
// lessRow gives, faster. The first sort column becomes an int64 rank
// (dense among the batch's values for strings), and rows sort by it as
// integers; rows it leaves tied are then ordered by the other columns,
// ranked the same way when many rows tie (usage rows of one date) and
// compared as values when few do (events, whose instants rarely tie):
// lessRow alone is most of a batch's Go time, and ranking every column
// is slower still (docs/design.md). A column it cannot rank (values of
// two types, times out of UnixNano's range) falls back to lessRow.
func sortRows(rows []transform.Row, order []int) []int {
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	n, k := len(rows), len(order)
	if n < 2 || k == 0 {
		return idx
	}
	stable := func() []int {
		// From the rows' own order: with values compare cannot order
		// (mixed types compare equal) the result depends on where it starts.
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return lessRow(rows[idx[a]].Values, rows[idx[b]].Values, order) })
		return idx
	}
	first := make([]int64, n)
	if !rankColumn(rows, order[0], first, 1) {
		return stable()
	}
	slices.SortFunc(idx, func(a, b int) int {
		if c := cmp.Compare(first[a], first[b]); c != 0 {
			return c
		}
		return a - b // stable: equal rows keep the order they were sent in
	})
	if k == 1 {
		return idx
	}
	// Runs of rows tied on the first column, as [from, to) in idx.
	var runs [][2]int
	tied := 0
	for i := 0; i < n; {
		j := i + 1
		for j < n && first[idx[j]] == first[idx[i]] {
			j++
		}
		if j-i > 1 {
			runs = append(runs, [2]int{i, j})
			tied += j - i
		}
		i = j
	}
	if len(runs) == 0 {
		return idx
	}
	rest := order[1:]
	var less func(a, b int) int
	if tied > n/8 {
		m := len(rest)
		keys := make([]int64, n*m)
		for j, col := range rest {
			if !rankColumn(rows, col, keys[j:], m) {
				return stable()
			}
		}
		less = func(a, b int) int {
			ka, kb := keys[a*m:a*m+m], keys[b*m:b*m+m]
			for j := range ka {
				if ka[j] != kb[j] {
					return cmp.Compare(ka[j], kb[j])
				}
			}
			return a - b
		}
	} else {
		for _, col := range rest {
			if !oneType(rows, col) {
				return stable()
			}
		}
		less = func(a, b int) int {
			for _, c := range rest {
				if x := compare(rows[a].Values[c], rows[b].Values[c]); x != 0 {
					return x
				}
			}
			return a - b
		}
	}
	for _, r := range runs {
		slices.SortFunc(idx[r[0]:r[1]], less)
	}
	return idx
}

// oneType reports whether a column's values other than NULL have one type,
// so compare orders them totally: with two types it holds values equal
// that are not, and the result of a sort depends on its algorithm.
func oneType(rows []transform.Row, col int) bool {
	var first any
	for _, r := range rows {
		v := r.Values[col]
		if v == nil {
			continue
		}
		if first == nil {
			first = v
			continue
		}
		if reflect.TypeOf(v) != reflect.TypeOf(first) {
			return false
		}
	}
	return true
}

// rankColumn writes row i's rank of column col to out[i*stride]: ranks
// compare as compare does (NULL first; other types than time, string and
// integers compare equal). It reports false when they cannot.
func rankColumn(rows []transform.Row, col int, out []int64, stride int) bool {
	// The earliest and latest instants UnixNano can hold, with room for
	// NULL below them.
	minT, maxT := time.Unix(0, math.MinInt64+1), time.Unix(0, math.MaxInt64)
	var kind byte // 0: none yet; 't', 's', 'i', 'o' (other)
	same := func(k byte) bool {
		if kind == 0 {
			kind = k
		}
		return kind == k
	}
	var strs map[string]int64
	for i, r := range rows {
		var rank int64
		switch x := r.Values[col].(type) {
		case nil:
			rank = math.MinInt64
		case time.Time:
			if !same('t') || x.Before(minT) || x.After(maxT) {
				return false
			}
			rank = x.UnixNano()
		case int64:
			if !same('i') || x == math.MinInt64 {
				return false
			}
			rank = x
		case int32:
			if !same('j') { // compare holds an int32 equal to any int64
				return false
			}
			rank = int64(x)
		case string:
			if !same('s') {
				return false
			}
			if strs == nil {
				strs = map[string]int64{}
			}
			if _, ok := strs[x]; !ok {
				strs[x] = 0
			}
		default:
			if !same('o') {
				return false
			}
		}
		out[i*stride] = rank
	}
	if strs == nil {
		return true
	}
	distinct := make([]string, 0, len(strs))
	for s := range strs {
		distinct = append(distinct, s)
	}
	slices.Sort(distinct)
	for i, s := range distinct {
		strs[s] = int64(i)
	}
	for i, r := range rows {
		if x, ok := r.Values[col].(string); ok {
			out[i*stride] = strs[x]
		}
	}
	return true
}

func lessRow(a, b []any, order []int) bool {
	for _, i := range order {
		if c := compare(a[i], b[i]); c != 0 {
			return c < 0
		}
	}
	return false
}

func compare(a, b any) int {
	switch x := a.(type) {
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case int64:
		if y, ok := b.(int64); ok {
			return cmp.Compare(x, y)
		}
	case int32:
		if y, ok := b.(int32); ok {
			return cmp.Compare(x, y)
		}
	}
	switch {
	case a == nil && b != nil:
		return -1
	case a != nil && b == nil:
		return 1
	}
	return 0
}
