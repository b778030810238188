// Package testseed gives random tests their seed: THINGSYNC_TEST_SEED when
// it is set (to replay a failure), else a fresh one, named in the test's
// log with the command that replays it.
package testseed

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// Seed is the test's seed, never 0 (some generators take 0 for "none").
// pkg is the package's path for the replay command, e.g. ./cmd/thingsync.
func Seed(t testing.TB, pkg string) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("THINGSYNC_TEST_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("THINGSYNC_TEST_SEED=%q: %v", s, err)
		}
	}
	if seed == 0 {
		seed = 1
	}
	t.Logf("seed %d (replay: THINGSYNC_TEST_SEED=%d go test %s -run '%s')", seed, seed, pkg, t.Name())
	return seed
}
