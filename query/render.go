package query

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Format is how a result prints.
type Format string

// The formats of the sql command.
const (
	Table Format = "table" // aligned columns under a header, then the row count
	CSV   Format = "csv"   // a header, then a record per row; NULL is empty
	JSON  Format = "json"  // an array with an object per row
)

// Valid reports whether f is one of the formats.
func (f Format) Valid() bool { return f == Table || f == CSV || f == JSON }

// Pages is a result the writers print: its rows, a page at a time.
type Pages interface {
	// Each calls fn with each page's rows in turn.
	Each(ctx context.Context, fn func(*sql.Rows) error) error
	// Repeatable reports whether Each may run more than once.
	Repeatable() bool
	// Names are the columns' names as the query gave them; nil: the
	// driver's.
	Names() []string
}

// Once is rows already open, read once, as Pages.
func Once(rows *sql.Rows) Pages { return onceRows{rows} }

type onceRows struct{ rows *sql.Rows }

func (r onceRows) Each(_ context.Context, fn func(*sql.Rows) error) error { return fn(r.rows) }
func (onceRows) Repeatable() bool                                         { return false }
func (onceRows) Names() []string                                          { return nil }

// Write prints res to w in format f.
func Write(ctx context.Context, w io.Writer, f Format, res Pages) error {
	switch f {
	case CSV:
		return WriteCSV(ctx, w, res)
	case JSON:
		return WriteJSON(ctx, w, res)
	}
	return WriteTable(ctx, w, res)
}

// eachRow calls start with the result's columns, then row with each row's
// values (reused between calls), page after page.
func eachRow(ctx context.Context, res Pages, start func([]column) error, row func([]column, []any) error) error {
	var cols []column
	var vals, ptrs []any
	return res.Each(ctx, func(rows *sql.Rows) error {
		if cols == nil {
			var err error
			if cols, err = resultColumns(rows, res.Names()); err != nil {
				return err
			}
			vals, ptrs = make([]any, len(cols)), make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := start(cols); err != nil {
				return err
			}
		}
		if len(cols) == 0 {
			return nil
		}
		for rows.Next() {
			clear(vals)
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			if err := row(cols, vals); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// layout places cells in columns as wide as their widest cell, two spaces
// apart; right marks the columns aligned to the right.
type layout struct {
	widths []int
	right  []bool
}

func newLayout(header []string, right []bool) *layout {
	l := &layout{widths: make([]int, len(header)), right: right}
	l.fit(header)
	return l
}

// fit widens the columns to hold line.
func (l *layout) fit(line []string) {
	for i, c := range line {
		l.widths[i] = max(l.widths[i], utf8.RuneCountInString(c))
	}
}

func (l *layout) line(w io.Writer, line []string) error {
	var b strings.Builder
	for i, c := range line {
		if i > 0 {
			b.WriteString("  ")
		}
		pad := strings.Repeat(" ", l.widths[i]-utf8.RuneCountInString(c))
		if l.right != nil && l.right[i] {
			b.WriteString(pad + c)
		} else {
			b.WriteString(c + pad)
		}
	}
	_, err := fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	return err
}

// head prints the header and a rule under it.
func (l *layout) head(w io.Writer, header []string) error {
	if err := l.line(w, header); err != nil {
		return err
	}
	rule := make([]string, len(l.widths))
	for i, wd := range l.widths {
		rule[i] = strings.Repeat("-", wd)
	}
	_, err := fmt.Fprintln(w, strings.Join(rule, "  "))
	return err
}

// WriteColumns prints a header, a rule and the rows, each column as wide as
// its widest cell; right (nil: none) marks columns aligned to the right.
func WriteColumns(w io.Writer, header []string, body [][]string, right []bool) error {
	l := newLayout(header, right)
	for _, line := range body {
		l.fit(line)
	}
	if err := l.head(w, header); err != nil {
		return err
	}
	for _, line := range body {
		if err := l.line(w, line); err != nil {
			return err
		}
	}
	return nil
}

// WriteTable prints the result as aligned columns under a header, each
// column as wide as its widest cell, then the row count. A result that can
// be read twice is: once for the widths, once to print, so no more than a
// page of it is held; one that cannot (EXPLAIN) is small and held whole.
func WriteTable(ctx context.Context, w io.Writer, res Pages) error {
	var (
		header []string
		l      *layout
		body   [][]string
		n      int
	)
	start := func(cols []column) error {
		header = make([]string, len(cols))
		right := make([]bool, len(cols))
		for i, c := range cols {
			header[i], right[i] = c.name, c.numeric()
		}
		l = newLayout(header, right)
		return nil
	}
	keep := !res.Repeatable()
	line := []string(nil)
	err := eachRow(ctx, res, start, func(cols []column, vals []any) error {
		if keep || line == nil {
			line = make([]string, len(cols))
		}
		for i, v := range vals {
			line[i] = cell(cols[i], v)
		}
		l.fit(line)
		if keep {
			body = append(body, line)
		}
		n++
		return nil
	})
	if err != nil || len(header) == 0 {
		return err
	}
	if err := l.head(w, header); err != nil {
		return err
	}
	if keep {
		for _, line := range body {
			if err := l.line(w, line); err != nil {
				return err
			}
		}
	} else {
		line = make([]string, len(header))
		printed := 0
		err := eachRow(ctx, res, func([]column) error { return nil }, func(cols []column, vals []any) error {
			for i, v := range vals {
				line[i] = cell(cols[i], v)
			}
			printed++
			return l.line(w, line)
		})
		if err != nil {
			return err
		}
		if printed != n {
			return fmt.Errorf("the result changed between its two readings (%d rows, then %d)", n, printed)
		}
	}
	if n == 1 {
		_, err = fmt.Fprintln(w, "(1 row)")
	} else {
		_, err = fmt.Fprintf(w, "(%d rows)\n", n)
	}
	return err
}

// WriteCSV prints the result as CSV with a header, row by row; NULL is an
// empty field.
func WriteCSV(ctx context.Context, w io.Writer, res Pages) error {
	cw := csv.NewWriter(w)
	var record []string
	start := func(cols []column) error {
		if len(cols) == 0 {
			return nil
		}
		header := make([]string, len(cols))
		for i, c := range cols {
			header[i] = c.name
		}
		record = make([]string, len(cols))
		return cw.Write(header)
	}
	err := eachRow(ctx, res, start, func(cols []column, vals []any) error {
		for i, v := range vals {
			record[i] = ""
			if v != nil {
				record[i] = textValue(cols[i], v)
			}
		}
		return cw.Write(record)
	})
	cw.Flush()
	if err != nil {
		return err
	}
	return cw.Error()
}

// WriteJSON prints the result as a JSON array with one object per row,
// keys in column order, row by row. Numbers stay numbers (exact for
// HUGEINT and DECIMAL), instants and dates are strings, NULL is null,
// nested values nest.
func WriteJSON(ctx context.Context, w io.Writer, res Pages) error {
	var keys [][]byte
	start := func(cols []column) error {
		keys = make([][]byte, len(cols))
		for i, c := range cols {
			var err error
			if keys[i], err = json.Marshal(c.name); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	n := 0
	var buf bytes.Buffer
	err := eachRow(ctx, res, start, func(cols []column, vals []any) error {
		buf.Reset()
		if n > 0 {
			buf.WriteString(",")
		}
		buf.WriteString("\n  {")
		for i, v := range vals {
			if i > 0 {
				buf.WriteString(", ")
			}
			buf.Write(keys[i])
			buf.WriteString(": ")
			b, err := json.Marshal(jsonValue(cols[i], v))
			if err != nil {
				return fmt.Errorf("column %s: %w", cols[i].name, err)
			}
			buf.Write(b)
		}
		buf.WriteString("}")
		n++
		_, err := w.Write(buf.Bytes())
		return err
	})
	if err != nil {
		return err
	}
	end := "\n]\n"
	if n == 0 {
		end = "]\n"
	}
	_, err = io.WriteString(w, end)
	return err
}
