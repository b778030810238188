package schema

import (
	"fmt"
	"strings"
)

// Markdown renders the warehouse's documentation: every table and view
// with its comment, key and columns, and how schema evolution adds columns.
// docs/schema.md is this text (a test keeps the two equal) and `thingsync
// schema` prints it, so the reference an analyst reads is generated from
// the declarations the DDL is generated from.
func Markdown() string {
	var b strings.Builder
	tables := Tables()
	b.WriteString("# Warehouse schema\n\n")
	b.WriteString("<!-- Generated from the schema package: edit schema/*.go, then run `go test ./schema -update`. -->\n\n")
	b.WriteString("The tables and views of the DuckDB file thingsync writes. `thingsync schema` prints this " +
		"document; every table, view and column also carries its text as a DuckDB `COMMENT` " +
		"(`SELECT table_name, column_name, comment FROM duckdb_columns()`).\n\n")
	b.WriteString("- Devices are identified by `(device_kind, device_id)`: the first identifier a device has " +
		"in the order iccid, imei, meid, esn, mdn, msisdn, eid; kinds are lower-case.\n")
	b.WriteString("- Every timestamp is `TIMESTAMPTZ` normalised to UTC; dates are UTC dates.\n")
	b.WriteString("- A table's key is a promise the loader keeps (one row per key value), not a declared " +
		"`PRIMARY KEY`: in DuckDB one would cost load time and memory. A view's key is what its SQL guarantees.\n\n")

	b.WriteString("## Contents\n\n")
	for _, t := range tables {
		kind := ""
		if t.View != "" {
			kind = " (view)"
		}
		fmt.Fprintf(&b, "- [`%s`](#%s)%s\n", t.Name, anchor(t.Name), kind)
	}
	b.WriteString("- [Schema evolution](#schema-evolution)\n")

	for _, section := range []struct {
		title string
		views bool
	}{{"Tables", false}, {"Views", true}} {
		fmt.Fprintf(&b, "\n## %s\n", section.title)
		for _, t := range tables {
			if (t.View != "") != section.views {
				continue
			}
			writeTable(&b, t)
		}
	}
	writeEvolution(&b, tables)
	return b.String()
}

func writeTable(b *strings.Builder, t Table) {
	fmt.Fprintf(b, "\n### %s\n\n%s\n\n", t.Name, cell(t.Comment))
	if key := t.Key(); len(key) > 0 {
		fmt.Fprintf(b, "Key: `%s`\n\n", strings.Join(key, "`, `"))
	}
	b.WriteString("| column | type | comment |\n| --- | --- | --- |\n")
	for _, c := range t.Columns {
		fmt.Fprintf(b, "| `%s` | `%s` | %s |\n", c.Name, c.Type, cell(c.Comment))
	}
	if t.Evolves {
		b.WriteString("\nMore `VARCHAR` columns may follow: see [Schema evolution](#schema-evolution).\n")
	}
	if t.View != "" {
		fmt.Fprintf(b, "\n<details><summary>Definition</summary>\n\n```sql\n%s\n```\n\n</details>\n", t.View)
	}
}

func writeEvolution(b *strings.Builder, tables []Table) {
	var evolving []string
	for _, t := range tables {
		if t.Evolves {
			evolving = append(evolving, "`"+t.Name+"`")
		}
	}
	b.WriteString("\n## Schema evolution\n\n")
	fmt.Fprintf(b, "The API sends a record's facts as key/value attributes. In %s every attribute key is "+
		"matched against the table's known keys below, ignoring case and punctuation (`MtSMS`, `MtSms` "+
		"and `mt_sms` are one key), and goes to its typed column.\n\n", strings.Join(evolving, " and "))
	b.WriteString("A key the schema does not know is never dropped:\n\n")
	fmt.Fprintf(b, "1. It becomes a new `%s` column named in snake_case made only of `a-z`, `0-9` and `_`, "+
		"at most 63 bytes, from the key's ASCII letters and digits (`RoamingSms` → `roaming_sms`; a name already "+
		"taken or a reserved word of SQL gets a suffix, `roaming_sms_2`, `select_2`), with the comment "+
		"`%s` The value is stored as sent. A key without an ASCII letter or digit (`温度`, `\"; `) gets no "+
		"column: its values go to `%s`, as past the cap. Nothing the API sends reaches SQL text.\n", Varchar, EvolvedComment, ExtraColumn)
	fmt.Fprintf(b, "2. The key is recorded in `%s`: the table, the key exactly as sent, its column, when and "+
		"by which run it was first seen.\n", SchemaColumns)
	fmt.Fprintf(b, "3. Past %d such columns in one table, further unknown keys go to the table's `%s` column "+
		"(`%s`, key as sent → value as sent), and `%s` records them with column_name `%s`.\n",
		MaxEvolvedColumns, ExtraColumn, ExtraMap, SchemaColumns, ExtraColumn)
	for _, t := range tables {
		if !t.Evolves {
			continue
		}
		fmt.Fprintf(b, "\nKnown attribute keys of `%s`:\n\n| attribute key | column |\n| --- | --- |\n", t.Name)
		for _, c := range t.Columns {
			if c.Attr == "" {
				continue
			}
			keys := append([]string{c.Attr}, c.Aliases...)
			fmt.Fprintf(b, "| `%s` | `%s` |\n", strings.Join(keys, "`, `"), c.Name)
		}
	}
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// anchor is the fragment GitHub derives from a heading: lower-case, spaces
// to hyphens; table names are already [a-z0-9_].
func anchor(heading string) string {
	return strings.ReplaceAll(strings.ToLower(heading), " ", "-")
}
