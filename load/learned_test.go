package load

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// What a run learned is there for the next run, in a file reopened, the
// last value set winning.
func TestLearned(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	wh, err := Open(ctx, path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := wh.Learned(ctx, "rate"); ok || err != nil {
		t.Fatalf("a new file has learned something: %v, %v", ok, err)
	}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, v := range []string{"10", "42.5"} {
		if err := wh.SetLearned(ctx, "rate", v, at, "run-1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := wh.Close(); err != nil {
		t.Fatal(err)
	}
	wh, err = Open(ctx, path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	if v, ok, err := wh.Learned(ctx, "rate"); !ok || err != nil || v != "42.5" {
		t.Errorf("rate = %q, %v, %v; want 42.5", v, ok, err)
	}
}
