package main

import (
	"context"
	"fmt"
	"io"

	"github.com/thingsync/thingsync/schema"
)

// runSchema prints the warehouse reference generated from the schema
// package. It needs no configuration and no database: it documents what
// every warehouse this binary writes will hold.
func runSchema(_ context.Context, a *App, _ *Env, args []string) error {
	fs := a.flagSet("schema", "schema\n\n"+
		"Prints the warehouse's tables, views and columns with their comments, keys and types,\n"+
		"and how schema evolution adds columns, as Markdown (the text of docs/schema.md).")
	if help, err := parseNoArgs(fs, args); help || err != nil {
		return err
	}
	if _, err := io.WriteString(a.Stdout, schema.Markdown()); err != nil {
		return cannotRun(fmt.Errorf("schema: write: %w", err))
	}
	return nil
}
