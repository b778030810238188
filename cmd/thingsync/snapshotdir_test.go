package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
)

// A snapshot that cannot be published is found at start: run exits 2
// naming THINGSYNC_SNAPSHOT before any work, check prints a failed line.
func TestSnapshotPathCheckedAtStart(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 2})
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, snapshot, want string
	}{
		{"missing directory", filepath.Join(dir, "nowhere", "snap.duckdb"), "does not exist"},
		{"directory is a file", filepath.Join(file, "snap.duckdb"), "is not a directory"},
		{"snapshot is a directory", dir, "is a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w.env["THINGSYNC_SNAPSHOT"] = tt.snapshot
			defer delete(w.env, "THINGSYNC_SNAPSHOT")
			// Bounded: without the check the daemon would start and serve.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var outb, errb bytes.Buffer
			a := &App{Stdout: &outb, Stderr: &errb, Now: w.clock.Now, TuneClient: fastClient,
				LookupEnv: func(k string) (string, bool) { v, ok := w.env[k]; return v, ok }}
			code := ExitCode(a.Run(ctx, []string{"run"}), &errb)
			out := outb.String() + errb.String()
			if code != exitUsage || !strings.Contains(out, "THINGSYNC_SNAPSHOT") || !strings.Contains(out, tt.want) {
				t.Errorf("run: exit %d, %q; want 2 naming THINGSYNC_SNAPSHOT and %q", code, out, tt.want)
			}
			code, out = w.run("check")
			if code != exitCannotRun || !strings.Contains(out, "FAIL snapshot") || !strings.Contains(out, tt.want) {
				t.Errorf("check: exit %d, %q; want a FAIL snapshot line saying %q", code, out, tt.want)
			}
		})
	}
	if st := w.sim.Stats(); st.Requests["usage"]+st.Requests["connections"] > 0 {
		t.Errorf("a run started despite the snapshot: %v", st.Requests)
	}

	w.env["THINGSYNC_SNAPSHOT"] = filepath.Join(dir, "snap.duckdb")
	code, out := w.run("check")
	if code != 0 || !strings.Contains(out, "ok   snapshot") {
		t.Errorf("check with a good snapshot path: exit %d:\n%s", code, out)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("check left files in the snapshot's directory: %v", entries)
	}
}
