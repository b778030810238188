package statuspage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/thingsync/thingsync/load"
)

// snapshots keeps the published snapshot open between requests: it is
// never written in place (each publication is a new file renamed over the
// path), so a handle stays consistent, and a warm handle answers the page
// in a fraction of the time a fresh open takes (DuckDB reads the catalog
// and the columns again on each open). A request that finds another file
// at the path waits for the readers of the old one, closes it, and opens
// the new one: DuckDB shares one database per path within a process, so
// opening the new file while the old is open would read the old.
type snapshots struct {
	path string

	mu   sync.RWMutex // held for reading by each read of cur
	cur  *sql.DB
	info os.FileInfo
}

// read runs read on the snapshot; ok is false when none is published.
func (s *snapshots) read(ctx context.Context, read func(*sql.DB, From) error) (ok bool, err error) {
	if s.path == "" {
		return false, nil
	}
	info, err := os.Stat(s.path)
	if err != nil {
		return false, nil
	}
	for {
		s.mu.RLock()
		if s.cur != nil && s.same(info) {
			defer s.mu.RUnlock()
			return true, read(s.cur, From{Path: s.path, Snapshot: true, ModTime: info.ModTime().UTC()})
		}
		s.mu.RUnlock()
		if err := s.reopen(ctx, info); err != nil {
			return true, err
		}
	}
}

func (s *snapshots) same(info os.FileInfo) bool {
	return os.SameFile(s.info, info) && s.info.ModTime().Equal(info.ModTime())
}

// reopen replaces the handle with one on the file info describes, once no
// request reads the old one.
func (s *snapshots) reopen(ctx context.Context, info os.FileInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && s.same(info) {
		return nil
	}
	if s.cur != nil {
		s.cur.Close()
		s.cur, s.info = nil, nil
	}
	db, err := openLimited(ctx, s.path)
	if err != nil {
		return err
	}
	s.cur, s.info = db, info
	return nil
}

// openLimited opens path read-only with DuckDB held to a small share of
// the machine: the page's reads are small.
func openLimited(ctx context.Context, path string) (*sql.DB, error) {
	db, err := load.OpenReadOnly(ctx, path)
	if errors.Is(err, load.ErrLocked) {
		return nil, ErrHeld
	}
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `SET memory_limit = '256MB'; SET threads = 2`); err != nil {
		db.Close()
		return nil, fmt.Errorf("limit the page's reads: %w", err)
	}
	return db, nil
}
