package schema

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/schema.md from schema.Markdown()")

// docs/schema.md is generated: it must say what the schema package says.
func TestDocsSchemaMarkdown(t *testing.T) {
	path := filepath.Join("..", "docs", "schema.md")
	want := Markdown()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v (run `go test ./schema -update` to generate it)", path, err)
	}
	if string(got) != want {
		t.Errorf("docs/schema.md differs from schema.Markdown(): run `go test ./schema -update` to regenerate it\n%s", firstDifference(string(got), want))
	}
}

// firstDifference shows the first line where the file and the generated
// text part, so the failure says what changed.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:", i+1) + "\n  file:      " + gl + "\n  generated: " + wl
		}
	}
	return ""
}

func TestMarkdownCoversEverything(t *testing.T) {
	md := Markdown()
	for _, tb := range Tables() {
		if !strings.Contains(md, "\n### "+tb.Name+"\n\n"+cell(tb.Comment)+"\n") {
			t.Errorf("no section for %s with its comment", tb.Name)
		}
		for _, c := range tb.Columns {
			if !strings.Contains(md, "| `"+c.Name+"` | `"+c.Type+"` | "+cell(c.Comment)+" |") {
				t.Errorf("%s.%s is not documented", tb.Name, c.Name)
			}
		}
	}
	for _, s := range []string{"## Schema evolution", SchemaColumns, "`" + ExtraColumn + "`", fmt.Sprint(MaxEvolvedColumns)} {
		if !strings.Contains(md, s) {
			t.Errorf("the evolution section lacks %q", s)
		}
	}
	if got := cell("a | b\nc"); got != `a \| b c` {
		t.Errorf("cell = %q", got)
	}
}
