package main

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract/simulator"
)

// TestMain lets the crash test run this test binary as the real program:
// with THINGSYNC_TEST_MAIN=1 it is thingsync, nothing else.
func TestMain(m *testing.M) {
	if report := os.Getenv(relayEnv); report != "" {
		os.Exit(relayMain(report))
	}
	if os.Getenv("THINGSYNC_TEST_MAIN") == "1" {
		config.RuntimeDefaults(os.LookupEnv)
		// The child's clock starts at the simulator's t0, as the in-process
		// tests' does, so the retention floor does not depend on today.
		start := time.Now()
		now := func() time.Time { return t0.Add(time.Since(start)) }
		app := &App{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, Version: "test", Now: now, TuneClient: fastClient,
			ScheduleFloor: time.Second, Program: os.Args[0]}
		os.Exit(runMain(app, os.Args[1:]))
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
	// Windows of 30 and 3 days make the run long enough to be killed in.
	w.env["THINGSYNC_WINDOW_USAGE"], w.env["THINGSYNC_WINDOW_CONNECTIONS"] = "30d", "3d"
	env := append(os.Environ(), "THINGSYNC_TEST_MAIN=1")
	for k, v := range w.env {
		env = append(env, k+"="+v)
	}
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "sync")
		cmd.Env = env
		return cmd
	}
	// The kill moments are counted in data requests the simulator has
	// answered, not in time: a seed replays the same moments of the run on
	// any machine (THINGSYNC_TEST_SEED, printed below).
	rng := rand.New(rand.NewPCG(uint64(testSeed(t)), 1))
	data := func() int { st := w.sim.Stats(); return st.Requests["usage"] + st.Requests["connections"] }
	kills := 0
	for i := 0; i < 3; i++ {
		at := 50 + rng.IntN(1150) // a full first sync is about 4,000
		base := data()
		cmd := child()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.Now().Add(60 * time.Second)
	wait:
		for {
			select {
			case err := <-done:
				t.Logf("run %d finished before its kill at data request %d (%d made): %v", i, at, data()-base, err)
				break wait
			default:
			}
			if data()-base >= at {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
				kills++
				t.Logf("run %d killed at data request %d (%d made)", i, at, data()-base)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d made %d data requests in 60 s, its kill was due at %d", i, data()-base, at)
			}
			time.Sleep(time.Millisecond)
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

// SIGINT during a sync: the commit in flight finishes, the run is recorded
// as interrupted, the process exits promptly, and the next run completes.
func TestSyncInterrupted(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 30, Faults: simulator.Faults{Latency: 2 * time.Millisecond}})
	// Windows of 30 and 3 days make the run long enough to be killed in.
	w.env["THINGSYNC_WINDOW_USAGE"], w.env["THINGSYNC_WINDOW_CONNECTIONS"] = "30d", "3d"
	env := append(os.Environ(), "THINGSYNC_TEST_MAIN=1")
	for k, v := range w.env {
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(os.Args[0], "sync")
	cmd.Env = env
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Signal once the run is fetching (a loaded machine may take a while
	// to get there), not at a fixed moment.
	waitFor(t, 30*time.Second, "the run to fetch", func() bool {
		st := w.sim.Stats()
		return st.Requests["usage"]+st.Requests["connections"] > 50
	})
	_ = cmd.Process.Signal(os.Interrupt)
	start := time.Now()
	err := cmd.Wait()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to stop after SIGINT", d)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out.String(), "interrupted") {
		t.Fatalf("exit %v, output %s; want 1 and interrupted", err, out.String())
	}
	if got := w.query(`SELECT status FROM sync_runs`); len(got) != 1 || got[0] != "interrupted" {
		t.Errorf("sync_runs = %v", got)
	}
	cmd = exec.Command(os.Args[0], "sync")
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("next run: %v\n%s", err, b)
	}
	diffLines(t, "usage_daily after an interrupted run", w.gotUsage(), w.wantUsage(t0))
	diffLines(t, "connection_events after an interrupted run", w.gotEvents(), w.wantEvents(t0))
	w.noDuplicateKeys()
}
