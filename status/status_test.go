package status

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/load"
)

func TestRedactor(t *testing.T) {
	cfg := &config.Config{ClientSecret: config.NewSecret("client-s3cret"), Password: config.NewSecret("pw-9876"),
		CallbackPassword: config.NewSecret("abc")}
	got := Redactor(cfg)("login: client_secret=client-s3cret password=pw-9876 at abc street")
	// A secret under 4 bytes would blank ordinary text: it stays.
	if want := "login: client_secret=[redacted] password=[redacted] at abc street"; got != want {
		t.Errorf("redactor = %q, want %q", got, want)
	}
}

func TestRead(t *testing.T) {
	ctx := context.Background()
	const secret = "hunter2-client-secret"
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w, err := load.Open(ctx, path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.DB().ExecContext(ctx, `INSERT INTO sync_runs (run_id, kind, started_at, status, error) VALUES
		('r1', 'sync', '2026-06-10 11:00:00+00', 'running', 'HTTP 401 for client_secret=`+secret+`')`)
	if cerr := w.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	cfg := &config.Config{DB: path, ClientSecret: config.NewSecret(secret), Snapshot: filepath.Join(t.TempDir(), "none.duckdb")}
	doc, err := Read(ctx, cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Source != SourceWarehouse || doc.InUse || doc.Warehouse != path || !doc.At.Equal(now) {
		t.Errorf("Read: source %s, in use %v, warehouse %s, at %v; want the warehouse, free, at now", doc.Source, doc.InUse, doc.Warehouse, doc.At)
	}
	// Status could open the file: the run marked running is gone.
	if len(doc.Runs) != 1 || doc.Runs[0].Status != "abandoned" || doc.Runs[0].Error != "HTTP 401 for client_secret=[redacted]" {
		t.Errorf("runs %+v; want one abandoned, its error redacted", doc.Runs)
	}
	b, err := json.Marshal(doc)
	if err != nil || strings.Contains(string(b), secret) || !strings.Contains(string(b), `"streams":[],"failing_devices_total":0`) {
		t.Errorf("JSON %s, %v; want the documented fields in place, no secret", b, err)
	}

	cfg.DB = filepath.Join(t.TempDir(), "missing.duckdb")
	if _, err := Read(ctx, cfg, now); err == nil || !strings.Contains(err.Error(), cfg.DB+" does not exist") {
		t.Errorf("Read of a missing warehouse: %v", err)
	}
}

func TestDocumentJSON(t *testing.T) {
	doc := Document{Warehouse: "/w", At: now, Source: SourceNone, InUse: true,
		Progress: &ingest.ProgressView{RunProgress: ingest.RunProgress{PID: 7, StartedAt: now}, Process: ingest.ProcessRunning}, Status: load.EmptyStatus()}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	// The progress report's fields, then whether its process runs; the
	// warehouse's sections follow at the top level; no snapshot fields
	// when there is none.
	want := `{"warehouse":"/w","at":"2026-06-10T12:00:00Z","source":"none","in_use":true,` +
		`"progress":{"pid":7,"host":"","run_id":"","kind":"","started_at":"2026-06-10T12:00:00Z","updated_at":"0001-01-01T00:00:00Z",` +
		`"phase":"","listing":false,"devices_listed":0,"devices_done":0,"devices_failed":0,"requests":0,"records":0,"devices_per_s":0,"rate_limit":0,"process":"running"},` +
		`"streams":[],"failing_devices_total":0,"failing_devices":[],"coverage":null,"runs":[],"pending_requests_total":0,` +
		`"pending_requests":[],"rejected_total":0,"rejected_by_stream":{},"not_visited":null}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
}
