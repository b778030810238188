package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExportCommand(t *testing.T) {
	db := newWarehouse(t, "w.duckdb", sqlFixture...)
	env := map[string]string{"THINGSYNC_DB": db}
	dir := filepath.Join(t.TempDir(), "lake")

	code, out, errOut := run(t, env, "export", "--to", dir, "--tables", "usage_daily, devices,usage_daily", "--since", "2026-01-03")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, f := range []string{"devices/data_0.parquet", "usage_daily/month=2026-01/data_0.parquet"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	// --since 2026-01-03 is rounded down to its month: both January rows.
	for _, s := range []string{"devices: 2 rows in ", "usage_daily: 2 rows in " + filepath.Join(dir, "usage_daily") + " (partitions written: 1, replaced: 0)", "export: 4 rows of devices, usage_daily from "} {
		if !strings.Contains(out, s) {
			t.Errorf("summary lacks %q:\n%s", s, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "connection_events")); err == nil {
		t.Error("connection_events exported though not asked for")
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no --to", []string{"export"}, "--to DIR is required"},
		{"unknown table", []string{"export", "--to", dir, "--tables", "usage_daily,nope"}, `unknown table "nope"`},
		{"hostile table", []string{"export", "--to", dir, "--tables", `devices"; DROP TABLE devices; --`}, "unknown table"},
		{"table not exported", []string{"export", "--to", dir, "--tables", "sync_runs"}, "sync_runs is not exported"},
		{"empty name", []string{"export", "--to", dir, "--tables", "devices,,usage_daily"}, "empty table name"},
		{"bad since", []string{"export", "--to", dir, "--since", "2026-13-01"}, "--since: date"},
		{"argument", []string{"export", "--to", dir, "usage_daily"}, "unexpected arguments"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := run(t, env, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tt.want)
			}
		})
	}

	// No warehouse: could not run.
	if code, _, errOut := run(t, map[string]string{"THINGSYNC_DB": filepath.Join(t.TempDir(), "none.duckdb")}, "export", "--to", dir); code != 3 {
		t.Errorf("missing warehouse: exit %d, want 3: %s", code, errOut)
	}
}
