package main

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
)

// TestMain lets the crash test run this test binary as the real program:
// with THINGSYNC_TEST_MAIN=1 it is thingsync, nothing else.
func TestMain(m *testing.M) {
	if os.Getenv("THINGSYNC_TEST_MAIN") == "1" {
		app := &App{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, Version: "test", TuneClient: fastClient}
		os.Exit(ExitCode(app.Run(context.Background(), os.Args[1:]), os.Stderr))
	}
	os.Exit(m.Run())
}

// The program killed with SIGKILL at random moments of a sync, then run to
// completion: the warehouse is exact, with no duplicate key.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	w := newWorld(t, simulator.Options{Devices: 30, Faults: simulator.Faults{Latency: 2 * time.Millisecond}})
	env := append(os.Environ(), "THINGSYNC_TEST_MAIN=1")
	for k, v := range w.env {
		env = append(env, k+"="+v)
	}
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "sync")
		cmd.Env = env
		return cmd
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("kill moments seeded with %d", seed)
	kills := 0
	for i := 0; i < 3; i++ {
		cmd := child()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		at := time.Duration(300+rng.IntN(1500)) * time.Millisecond
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Logf("run %d finished before its kill at %v: %v", i, at, err)
		case <-time.After(at):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
			t.Logf("run %d killed after %v", i, at)
		}
	}
	if kills == 0 {
		t.Fatal("no run was killed: the test proves nothing")
	}
	out, err := child().CombinedOutput()
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	diffLines(t, "usage_daily after crashes", w.gotUsage(), w.wantUsage(t0))
	diffLines(t, "connection_events after crashes", w.gotEvents(), w.wantEvents(t0))
	w.noDuplicateKeys()
	// A killed run stays "running" in sync_runs; the final one is ok.
	if got := w.query(`SELECT count(*) FILTER (WHERE status = 'ok') FROM sync_runs`); got[0] != "1" {
		t.Errorf("ok runs: %v", got)
	}
}
