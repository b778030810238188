package schema

import (
	"fmt"
	"strings"
)

// CreateSQL returns the CREATE statement of a table or view. Tables get no
// PRIMARY KEY: the loader keeps keys unique (in DuckDB a declared key costs
// 2–4× load time and an index that must fit in RAM; docs/design.md).
func (t Table) CreateSQL() string {
	if t.View != "" {
		return fmt.Sprintf("CREATE OR REPLACE VIEW %s AS\n%s", Ident(t.Name), t.View)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", Ident(t.Name))
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "  %s %s", Ident(c.Name), c.Type)
	}
	b.WriteString("\n)")
	return b.String()
}

// CommentSQL returns the COMMENT ON statements of a table or view and its
// columns. Comments are this package's constants, never API text.
func (t Table) CommentSQL() []string {
	kind := "TABLE"
	if t.View != "" {
		kind = "VIEW"
	}
	stmts := []string{fmt.Sprintf("COMMENT ON %s %s IS %s", kind, Ident(t.Name), Literal(t.Comment))}
	for _, c := range t.Columns {
		stmts = append(stmts, fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", Ident(t.Name), Ident(c.Name), Literal(c.Comment)))
	}
	return stmts
}

// Names returns the table's column names.
func (t Table) Names() []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return names
}

// EvolvedComment is the comment of every column added by schema evolution.
// It is fixed text: no byte the API sends reaches SQL text, and DuckDB takes
// no parameter in COMMENT ON. The key as sent is in schema_columns, bound as
// a value.
const EvolvedComment = "Attribute the schema did not know, value as sent (added by schema evolution; VARCHAR). " +
	"schema_columns holds its key exactly as the API sent it."
