package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/ingest"
)

// syncProcess starts `thingsync sync` as a real child process on w.
func syncProcess(t *testing.T, w *world, stdout *strings.Builder) *exec.Cmd {
	t.Helper()
	env := append(os.Environ(), "THINGSYNC_TEST_MAIN=1")
	for k, v := range w.env {
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(os.Args[0], "sync")
	cmd.Env = env
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// waitProgress waits for the running sync's progress file to report done
// devices.
func waitProgress(t *testing.T, w *world) ingest.RunProgress {
	t.Helper()
	var p *ingest.RunProgress
	waitFor(t, 60*time.Second, "the sync's progress file to report devices done", func() bool {
		got, err := ingest.ReadProgress(ingest.ProgressPath(w.db))
		if err != nil {
			t.Fatal(err)
		}
		p = got
		return p != nil && p.DevicesDone > 0
	})
	return *p
}

// status answers while a sync holds the warehouse (and no snapshot
// exists): exit 0, the run's progress from the file it keeps beside the
// warehouse, with its pid, as a table and as JSON. The file is gone once
// the run ends; an interrupted run's summary counts the devices done, not
// those listed.
func TestStatusDuringSync(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 30, Faults: simulator.Faults{Latency: 20 * time.Millisecond}})
	// Windows of 30 and 3 days make the run long enough to act during it.
	w.env["THINGSYNC_WINDOW_USAGE"], w.env["THINGSYNC_WINDOW_CONNECTIONS"] = "30d", "3d"
	var stdout strings.Builder
	cmd := syncProcess(t, w, &stdout)
	p := waitProgress(t, w)
	if p.PID != cmd.Process.Pid || p.Kind != "sync" || p.RunID == "" {
		t.Errorf("progress file: %+v; want the child's pid %d, kind sync and a run id", p, cmd.Process.Pid)
	}

	code, out := w.run("status")
	if code != 0 {
		t.Fatalf("status during a sync: exit %d\n%s", code, out)
	}
	t.Logf("status during the sync:\n%s", out)
	for _, want := range []string{"Run in progress: sync " + p.RunID + " (pid " + strconv.Itoa(cmd.Process.Pid) + ")", "in use by another process"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	if !regexp.MustCompile(`devices \d+ listed.*, [1-9]\d* done, \d+ failed; [1-9]\d* requests`).MatchString(out) {
		t.Errorf("status does not show the devices done and the requests")
	}

	code, out = w.run("status", "--format", "json")
	if code != 0 {
		t.Fatalf("status --format json during a sync: exit %d\n%s", code, out)
	}
	var doc struct {
		Source   string `json:"source"`
		InUse    bool   `json:"in_use"`
		Progress *struct {
			PID         int    `json:"pid"`
			RunID       string `json:"run_id"`
			Process     string `json:"process"`
			DevicesDone int    `json:"devices_done"`
			Requests    int    `json:"requests"`
		} `json:"progress"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("status --format json: %v\n%s", err, out)
	}
	if doc.Source != "none" || !doc.InUse || doc.Progress == nil || doc.Progress.PID != cmd.Process.Pid ||
		doc.Progress.Process != "running" || doc.Progress.DevicesDone == 0 || doc.Progress.Requests == 0 {
		t.Errorf("status --format json during a sync: %s", out)
	}

	// sql cannot read a file DuckDB has given a writer; it says who holds it
	// and what to do instead.
	code, out = w.run("sql", "SELECT 1")
	if code != 3 {
		t.Errorf("sql during a sync: exit %d, want 3\n%s", code, out)
	}
	for _, want := range []string{"thingsync sync (pid " + strconv.Itoa(cmd.Process.Pid) + ", run " + p.RunID, "thingsync status", "THINGSYNC_SNAPSHOT"} {
		if !strings.Contains(out, want) {
			t.Errorf("sql during a sync says %q; want it to name %q", out, want)
		}
	}

	// SIGINT: the run stops, says what it did, and removes its file.
	_ = cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("interrupted sync: %v, want exit 1", err)
	}
	if _, err := os.Stat(ingest.ProgressPath(w.db)); !os.IsNotExist(err) {
		t.Errorf("progress file after the run: %v, want it removed", err)
	}
	summary := stdout.String()
	m := regexp.MustCompile(`^sync: (\d+) listed, (\d+) done, (\d+) failed`).FindStringSubmatch(summary)
	if m == nil {
		t.Fatalf("interrupted run's summary %q; want the devices listed and done", summary)
	}
	listed, _ := strconv.Atoi(m[1])
	done, _ := strconv.Atoi(m[2])
	// Ground truth: the devices with a checkpoint for both streams are at
	// least those done; the run cannot have done all 30 (it was stopped
	// while status showed it going).
	both, _ := strconv.Atoi(w.query(`SELECT count(*) FROM (SELECT device_kind, device_id FROM sync_checkpoints
		GROUP BY ALL HAVING count(DISTINCT stream) = 2)`)[0])
	if done == 0 || done >= listed || done > both {
		t.Errorf("summary says %d listed, %d done; %d devices have both checkpoints", listed, done, both)
	}
	code, out = w.run("status")
	if code != 0 || strings.Contains(out, "Run in progress") {
		t.Errorf("status after the run: exit %d, still showing a run in progress:\n%s", code, out)
	}
}

// A sync killed with SIGKILL leaves its run "running" in sync_runs: status
// shows it abandoned (with the dead pid of the progress file left behind),
// and the next run records it so.
func TestKilledRunIsAbandoned(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 30, Faults: simulator.Faults{Latency: 20 * time.Millisecond}})
	// Windows of 30 and 3 days make the run long enough to act during it.
	w.env["THINGSYNC_WINDOW_USAGE"], w.env["THINGSYNC_WINDOW_CONNECTIONS"] = "30d", "3d"
	cmd := syncProcess(t, w, &strings.Builder{})
	p := waitProgress(t, w)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	code, out := w.run("status")
	if code != 0 {
		t.Fatalf("status after kill -9: exit %d\n%s", code, out)
	}
	t.Logf("status after kill -9:\n%s", out)
	if !regexp.MustCompile(`(?m)^sync\s+\S+\s+-\s+abandoned`).MatchString(out) {
		t.Errorf("status does not show the killed run as abandoned")
	}
	if !strings.Contains(out, "pid "+strconv.Itoa(p.PID)+", which is gone") {
		t.Errorf("status does not say the progress file's process is gone")
	}

	w.sim.SetFaults(simulator.Faults{}) // the next run need not be slow
	code, out = w.run("sync")
	if code != 0 {
		t.Fatalf("next sync: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "marked abandoned") {
		t.Errorf("the next run does not say it found an abandoned run:\n%s", out)
	}
	// (The child's clock and this process's start at the same simulated
	// instant: order by outcome, not time.)
	got := w.query(`SELECT run_id = ?, status FROM sync_runs ORDER BY status`, p.RunID)
	if len(got) != 2 || got[0] != "true|abandoned" || got[1] != "false|ok" {
		t.Errorf("sync_runs after the next run = %v; want the killed run %s abandoned, the next ok", got, p.RunID)
	}
	diffLines(t, "usage_daily after a killed run", w.gotUsage(), w.wantUsage(t0))
}

// A run that fails (exit 3) prints the error, not a summary of zeros.
func TestFailedRunPrintsNoSummary(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 2})
	w.env["THINGSPACE_PASSWORD"] = "wrong-password"
	var out, errb bytes.Buffer
	a := &App{Stdout: &out, Stderr: &errb, Now: w.clock.Now, TuneClient: fastClient,
		LookupEnv: func(k string) (string, bool) { v, ok := w.env[k]; return v, ok }}
	code := ExitCode(a.Run(context.Background(), []string{"sync"}), &errb)
	if code != exitCannotRun || !strings.Contains(errb.String(), "thingsync: ") {
		t.Fatalf("sync with a wrong password: exit %d, stderr %q; want 3 and the error", code, errb.String())
	}
	if out.Len() != 0 {
		t.Errorf("a failed run printed on stdout: %q", out.String())
	}
}
