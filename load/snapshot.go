package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// PublishSnapshot publishes a consistent read-only copy of the warehouse at
// path for analysts, who must never be locked out: DuckDB lets no other
// process open a file while a writer holds it, so they read a copy instead.
//
// The copy is taken while this process holds the warehouse's only
// connection, right after a CHECKPOINT: every commit is then in the main
// file, the WAL is empty, and no commit (a callback's, say) can slip in
// between the CHECKPOINT and the copy. The copy goes to a temporary file in
// path's directory, is synced, and is renamed over path, so a reader sees
// either the old snapshot or the new one, never a part; readers that have
// the old one open keep its inode until they close it.
func (w *Warehouse) PublishSnapshot(ctx context.Context, path string) error {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("publish snapshot %s: take the warehouse connection: %w", path, err)
	}
	defer conn.Close()

	src, err := databasePath(ctx, conn)
	if err != nil {
		return fmt.Errorf("publish snapshot %s: %w", path, err)
	}
	if same, err := sameFile(src, path); err != nil {
		return fmt.Errorf("publish snapshot %s: %w", path, err)
	} else if same {
		return fmt.Errorf("publish snapshot %s: it is the warehouse file itself (set THINGSYNC_SNAPSHOT to another path)", path)
	}
	if _, err := conn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("publish snapshot %s: checkpoint the warehouse: %w", path, err)
	}
	if err := copyAtomically(src, path); err != nil {
		return fmt.Errorf("publish snapshot %s: %w", path, err)
	}
	return nil
}

// databasePath is the file the connection's database lives in.
func databasePath(ctx context.Context, conn *sql.Conn) (string, error) {
	var p sql.NullString
	err := conn.QueryRowContext(ctx, `SELECT path FROM duckdb_databases() WHERE database_name = current_database()`).Scan(&p)
	if err != nil {
		return "", fmt.Errorf("find the warehouse file: %w", err)
	}
	if !p.Valid || p.String == "" {
		return "", errors.New("the warehouse is in memory: there is no file to copy")
	}
	return p.String, nil
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, fmt.Errorf("stat warehouse: %w", err)
	}
	sb, err := os.Stat(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat snapshot: %w", err)
	}
	return os.SameFile(sa, sb), nil
}

// copyAtomically copies src to dst through a synced temporary file in dst's
// directory (a rename is atomic only within one file system) and a rename.
func copyAtomically(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open warehouse: %w", err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return fmt.Errorf("stat warehouse: %w", err)
	}
	dir := filepath.Dir(dst)
	removeStaleCopies(dir, filepath.Base(dst))
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return fmt.Errorf("create temporary copy: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		return fmt.Errorf("copy to %s: %w", tmp.Name(), err)
	}
	// The warehouse's own mode: whoever may read it may read its copy
	// (CreateTemp makes 0600).
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		return fmt.Errorf("set mode of %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	// A WAL beside the published path belongs to the old file (someone
	// opened the snapshot read-write); DuckDB would replay it onto the new
	// one.
	if err := os.Remove(dst + ".wal"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale %s.wal: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("rename over %s: %w", dst, err)
	}
	// The rename is durable only once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// removeStaleCopies removes the temporary copies a publication killed
// part-way left in dir: only regular files named as this snapshot's own
// temporary files are (".<base>.<digits>.tmp", what os.CreateTemp makes of
// the pattern above). One process publishes a snapshot at a time (it holds
// the warehouse), so none of them is being written.
func removeStaleCopies(dir, base string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // the copy that follows says what is wrong
	}
	prefix := "." + base + "."
	for _, e := range entries {
		name := e.Name()
		mid, ok := strings.CutPrefix(name, prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		digits, ok := strings.CutSuffix(mid, ".tmp")
		if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" {
			continue
		}
		_ = os.Remove(filepath.Join(dir, name))
	}
}

// CheckSnapshotPath tells whether a snapshot can be published at path for
// the warehouse at db, before any run: its directory exists, is a
// directory and takes a new file; path is not a directory, nor db itself.
func CheckSnapshotPath(path, db string) error {
	abs, err1 := filepath.Abs(path)
	absDB, err2 := filepath.Abs(db)
	if err1 == nil && err2 == nil && abs == absDB {
		return errors.New("it is the warehouse file itself; the snapshot is a copy published beside it")
	}
	if same, err := sameFile(db, path); err == nil && same {
		return errors.New("it is the warehouse file itself; the snapshot is a copy published beside it")
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("directory %s does not exist", dir)
	case err != nil:
		return fmt.Errorf("directory %s: %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory; name the snapshot file", path)
	}
	// A file named as the publication's own temporary copies: one left
	// behind is removed by the next publication.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("directory %s does not take a new file: %w", dir, err)
	}
	tmp.Close()
	os.Remove(tmp.Name())
	return nil
}
