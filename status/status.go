// Package status decides what the status command shows and where it reads
// it: the warehouse when it can be opened; while a run holds it, the run's
// progress report and the published snapshot's state (or nothing, said
// plainly); text stored by runs with the configured secrets blanked out;
// and how the document prints for a person. --format json prints the
// Document as it is.
package status

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/load"
)

// Where a Document's warehouse state was read.
const (
	SourceWarehouse = "warehouse"
	SourceSnapshot  = "snapshot" // the warehouse is held by a run
	SourceNone      = "none"     // held, and no snapshot to read
)

// Document is what status shows; --format json prints it as is, so its
// field names are a documented interface.
type Document struct {
	Warehouse string    `json:"warehouse"`
	At        time.Time `json:"at"`
	// Source is where the state below was read.
	Source       string    `json:"source"`
	Snapshot     string    `json:"snapshot,omitempty"`
	SnapshotTime time.Time `json:"snapshot_time,omitzero"`
	// InUse: another process holds the warehouse file.
	InUse bool `json:"in_use"`
	// Progress is the running run's last report, if there is one.
	Progress *ingest.ProgressView `json:"progress"`
	load.Status
}

// Read reads the status of cfg's warehouse at now. The caller adds the
// running run's progress report.
func Read(ctx context.Context, cfg *config.Config, now time.Time) (*Document, error) {
	if err := load.CheckExists(cfg.DB); err != nil {
		return nil, err
	}
	doc := &Document{Warehouse: cfg.DB, At: now, Source: SourceWarehouse, Status: load.EmptyStatus()}
	db, err := load.OpenReadOnly(ctx, cfg.DB)
	if errors.Is(err, load.ErrLocked) {
		// A running sync holds the file: what it last reported, and the
		// snapshot of the last successful run when there is one.
		doc.InUse, doc.Source = true, SourceNone
		db, err = nil, nil
		if cfg.Snapshot != "" {
			if st, serr := os.Stat(cfg.Snapshot); serr == nil {
				if sdb, oerr := load.OpenReadOnly(ctx, cfg.Snapshot); oerr == nil {
					db, doc.Source = sdb, SourceSnapshot
					doc.Snapshot, doc.SnapshotTime = cfg.Snapshot, st.ModTime().UTC()
				}
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if db == nil {
		return doc, nil
	}
	defer db.Close()
	// Whoever could open the file holds no run: a run still marked
	// running there ended without recording it (killed).
	doc.Status, err = load.ReadStatus(ctx, db, load.StatusOptions{Now: now, NoWriter: true, Redact: Redactor(cfg),
		Lookback: map[string]time.Duration{"usage": cfg.LookbackUsage, "connections": cfg.LookbackConnections}})
	if err != nil {
		return nil, err
	}
	return doc, nil
}

// Redactor blanks the configured secrets out of text read back from the
// warehouse: an error message stored by some run could quote one.
func Redactor(cfg *config.Config) func(string) string {
	var pairs []string
	for _, s := range []config.Secret{cfg.ClientSecret, cfg.Password, cfg.CallbackPassword} {
		// A very short value would blank ordinary text; config refuses none.
		if v := s.Reveal(); len(v) >= 4 {
			pairs = append(pairs, v, "[redacted]")
		}
	}
	return strings.NewReplacer(pairs...).Replace
}
