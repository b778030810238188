package main

import (
	"testing"

	"github.com/thingsync/thingsync/schema"
)

func TestSchemaCommand(t *testing.T) {
	// No configuration: the reference is printed from the binary alone.
	code, out, errOut := run(t, map[string]string{"THINGSYNC_CONCURRENCY": "zero"}, "schema")
	if code != 0 || out != schema.Markdown() {
		t.Errorf("schema: exit %d, stdout equal to schema.Markdown(): %v\nstderr: %s", code, out == schema.Markdown(), errOut)
	}
	if code, _, _ := run(t, nil, "schema", "extra"); code != 2 {
		t.Errorf("schema with an argument: exit %d, want 2", code)
	}
}
