package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
)

// Hostile answers are about time and memory, so these tests run `sync`
// as a real child process (see TestMain) and read its peak RSS from the
// kernel. A sync of these small accounts peaks at 60-90 MB.

// hostileStart is THINGSYNC_START of the hostile tests: 20 days before t0,
// so that a device has one usage window and seven connection windows.
const hostileStart = "2026-11-02"

// syncProcess runs `thingsync sync` on w as a child process with env added
// to w.env, killing it after limit. It returns the exit code, the output
// and the child's peak RSS in bytes.
func (w *world) syncProcess(env map[string]string, limit time.Duration) (code int, out string, peak int64) {
	w.t.Helper()
	full := append(os.Environ(), "THINGSYNC_TEST_MAIN=1")
	for k, v := range w.env {
		full = append(full, k+"="+v)
	}
	for k, v := range env {
		full = append(full, k+"="+v)
	}
	cmd := exec.Command(os.Args[0], "sync")
	cmd.Env = full
	measure := measured(w.t, cmd)
	var b strings.Builder
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	killed := false
	select {
	case <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		killed = true
	}
	out = b.String()
	if killed {
		w.t.Fatalf("sync still running after %v, killed; output:\n%.3000s", limit, out)
	}
	peak = measure()
	w.t.Logf("sync: exit %d, peak RSS %d MB", cmd.ProcessState.ExitCode(), peak>>20)
	return cmd.ProcessState.ExitCode(), out, peak
}

// since keeps the rows (device_kind|device_id|time|…) at or after start.
func since(lines []string, start string) []string {
	var out []string
	for _, l := range lines {
		if f := strings.SplitN(l, "|", 4); len(f) > 2 && f[2] >= start {
			out = append(out, l)
		}
	}
	return out
}

// hostileWorld is a world whose first n devices get the hostile faults f;
// it returns those devices' identities and the others'. Its windows are
// 30 days of usage and 3 of connections, which the tests' page and
// request counts are about.
func hostileWorld(t *testing.T, devices, n int, f simulator.Faults) (w *world, hostile, others []simulator.ID) {
	f.HostileDevices = n
	w = newWorld(t, simulator.Options{Devices: devices, Faults: f})
	w.env["THINGSYNC_START"] = hostileStart
	w.env["THINGSYNC_WINDOW_USAGE"] = "30d"
	w.env["THINGSYNC_WINDOW_CONNECTIONS"] = "3d"
	for i, d := range w.sim.Devices() {
		if i < n {
			hostile = append(hostile, d.Identity)
		} else {
			others = append(others, d.Identity)
		}
	}
	return w, hostile, others
}

// othersExact checks that the devices the faults spared hold exactly the
// simulator's truth.
func (w *world) othersExact(others []simulator.ID) {
	w.t.Helper()
	not := func(lines []string) []string {
		keep := map[string]bool{}
		for _, id := range others {
			keep[id.Kind+"|"+id.ID] = true
		}
		var out []string
		for _, l := range lines {
			if f := strings.SplitN(l, "|", 3); keep[f[0]+"|"+f[1]] {
				out = append(out, l)
			}
		}
		return out
	}
	wantU, wantE := since(w.wantUsage(t0, others...), hostileStart), since(w.wantEvents(t0, others...), hostileStart)
	if len(wantU) == 0 || len(wantE) == 0 {
		w.t.Fatal("the other devices have no history to compare")
	}
	diffLines(w.t, "usage of the other devices", not(w.gotUsage()), wantU)
	diffLines(w.t, "events of the other devices", not(w.gotEvents()), wantE)
	w.noDuplicateKeys()
}

// failedWith checks that each device failed on stream with an error
// containing reason.
func (w *world) failedWith(devices []simulator.ID, stream, reason string) {
	w.t.Helper()
	for _, id := range devices {
		got := w.query(`SELECT coalesce(last_error, 'none') FROM sync_checkpoints WHERE stream = ? AND device_id = ?`, stream, id.ID)
		if len(got) != 1 || !strings.Contains(got[0], reason) {
			w.t.Errorf("%s checkpoint of %s: last_error %v, want one containing %q", stream, id, got, reason)
		}
	}
}

// A history that answers 202 forever with records that stay inside the
// window: the window's page ceiling fails the device, in seconds and
// little memory; the others complete. (With the default answer cap, the
// window's memory budget stops it first, after ~70 pages: the cap is
// raised here so that the ceiling is what is tried.)
func TestSyncEndlessHistoryHitsThePageCeiling(t *testing.T) {
	w, hostile, others := hostileWorld(t, 12, 1, simulator.Faults{EndlessHistory: time.Second})
	code, out, peak := w.syncProcess(map[string]string{"THINGSYNC_MAX_ANSWER_MB": "64"}, 60*time.Second)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %.2000s", code, out)
	}
	if peak > 300<<20 {
		t.Errorf("peak RSS %d MB, want under 300", peak>>20)
	}
	w.failedWith(hostile, "usage", "too many pages: still more after 100 pages")
	w.failedWith(hostile, "connections", "too many pages: still more after 150 pages")
	w.othersExact(others)
	if got := w.query(`SELECT status, devices_failed FROM sync_runs`); len(got) != 1 || got[0] != "partial|1" {
		t.Errorf("sync_runs = %v, want partial|1", got)
	}
}

// A history that answers 202 forever with records running past latest:
// the first record past latest ends the window's paging and is not
// loaded, so each window costs one request and the device completes.
func TestSyncRecordsPastLatestEndPaging(t *testing.T) {
	w, hostile, others := hostileWorld(t, 8, 1, simulator.Faults{EndlessHistory: 7 * time.Hour})
	code, out, _ := w.syncProcess(nil, 60*time.Second)
	if code != 0 {
		t.Fatalf("exit %d, want 0: %.2000s", code, out)
	}
	w.othersExact(others)
	id := hostile[0]
	st := w.sim.Stats()
	// One usage window (20 days) and seven connection windows (3 days).
	if u, c := st.DeviceRequests["usage "+id.String()], st.DeviceRequests["connections "+id.String()]; u != 1 || c != 7 {
		t.Errorf("hostile device asked %d usage and %d connection pages, want 1 and 7: one a window", u, c)
	}
	// The made-up records are 7 hours apart from the window's start: a
	// usage row for each day from the 2nd to t0's day (t0 is 12:00, the
	// last record before it 10:00), none later.
	got := w.query(`SELECT count(*), min(usage_date)::VARCHAR, max(usage_date)::VARCHAR FROM usage_daily WHERE device_id = ?`, id.ID)
	if want := "21|2026-11-02|2026-11-22"; got[0] != want {
		t.Errorf("hostile device's usage rows (count, first, last) = %v, want %s", got, want)
	}
	if got := w.query(`SELECT count(*) FROM connection_events WHERE device_id = ? AND occurred_at > ?`, id.ID, t0.Add(time.Minute)); got[0] != "0" {
		t.Errorf("%s connection events after the run's end were loaded", got[0])
	}
	// The records past each window's latest are kept aside with the reason.
	got = w.query(`SELECT stream, count(*), count(*) FILTER (WHERE reason LIKE '% is after %, the latest asked for') FROM rejected_records WHERE device_id = ? GROUP BY stream ORDER BY stream`, id.ID)
	if len(got) != 2 || !strings.HasPrefix(got[0], "connections|") || !strings.HasPrefix(got[1], "usage|") {
		t.Fatalf("rejected records of the hostile device by stream = %v, want connections and usage", got)
	}
	for _, g := range got {
		if f := strings.Split(g, "|"); f[1] != f[2] || f[1] == "0" {
			t.Errorf("rejected %s records (count, past latest) = %v, want all of them past latest", f[0], f[1:])
		}
	}
}

// A device list that keeps answering 202 with the devices it already
// listed, largestDeviceIdSeen advancing: the list ends at the first page
// with no new device, the run is partial (exit 1) naming the list, and
// every device is loaded.
func TestSyncDeviceListRepeatingItself(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 30, DevicePageSize: 10, Faults: simulator.Faults{RepeatDeviceList: true}})
	w.env["THINGSYNC_START"] = hostileStart
	code, out, _ := w.syncProcess(nil, 60*time.Second)
	if code != 1 || !strings.Contains(out, "device list incomplete after 30 devices") || !strings.Contains(out, "repeats itself") {
		t.Fatalf("exit %d, want 1 naming the repeating list: %.2000s", code, out)
	}
	if got := w.sim.Stats().Requests["devices"]; got != 4 {
		t.Errorf("%d device-list requests, want 4 (three pages and the repeat)", got)
	}
	var all []simulator.ID
	for _, d := range w.sim.Devices() {
		all = append(all, d.Identity)
	}
	w.othersExact(all)
	if got := w.query(`SELECT status, error LIKE '%repeats itself%' FROM sync_runs`); len(got) != 1 || got[0] != "partial|true" {
		t.Errorf("sync_runs = %v, want one partial run naming the list", got)
	}
}

// Pages larger than THINGSYNC_MAX_ANSWER_MB are refused on their
// Content-Length, unread and unretried: those devices fail naming the
// cap, the others complete, and memory stays at what the others need.
func TestSyncOversizedPagesRefused(t *testing.T) {
	w, hostile, others := hostileWorld(t, 12, 4, simulator.Faults{OversizedPages: 60 << 20})
	code, out, peak := w.syncProcess(nil, 60*time.Second)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %.2000s", code, out)
	}
	if peak > 300<<20 {
		t.Errorf("peak RSS %d MB, want under 300", peak>>20)
	}
	w.failedWith(hostile, "usage", "larger than the 16 MiB cap (THINGSYNC_MAX_ANSWER_MB)")
	w.failedWith(hostile, "connections", "larger than the 16 MiB cap (THINGSYNC_MAX_ANSWER_MB)")
	w.othersExact(others)
	if got := w.sim.Stats().Status[500]; got != 0 {
		t.Errorf("%d answers 500", got)
	}
	for _, id := range hostile {
		if n := w.sim.Stats().DeviceRequests["usage "+id.String()]; n != 1 {
			t.Errorf("usage of %s asked %d times, want once: an answer over the cap is not retried", id, n)
		}
	}
}

// Pages padded to 12 MB, under the cap, are loaded exactly: the cap
// refuses what would break the memory bound, not large answers. Four
// devices' worth of them (32 pages, 400 MB) go through within
// concurrency × the cap.
func TestSyncLargePagesUnderTheCap(t *testing.T) {
	w, _, _ := hostileWorld(t, 6, 4, simulator.Faults{OversizedPages: 12 << 20})
	code, out, peak := w.syncProcess(map[string]string{"THINGSYNC_CONCURRENCY": "4"}, 60*time.Second)
	if code != 0 {
		t.Fatalf("exit %d, want 0: %.2000s", code, out)
	}
	if peak > 350<<20 {
		t.Errorf("peak RSS %d MB, want under 350", peak>>20)
	}
	var all []simulator.ID
	for _, d := range w.sim.Devices() {
		all = append(all, d.Identity)
	}
	w.othersExact(all)
}

// An answer without Content-Length that runs on (200 MB) is cut off at
// the cap: the device's usage fails naming it, unretried, its other
// stream and the other devices complete.
func TestSyncGiantAnswerCutOff(t *testing.T) {
	w, hostile, others := hostileWorld(t, 8, 1, simulator.Faults{GiantAnswer: 200 << 20})
	code, out, peak := w.syncProcess(nil, 60*time.Second)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %.2000s", code, out)
	}
	if peak > 250<<20 {
		t.Errorf("peak RSS %d MB, want under 250", peak>>20)
	}
	w.failedWith(hostile, "usage", "answer larger than the 16 MiB cap (THINGSYNC_MAX_ANSWER_MB)")
	w.othersExact(others)
	if n := w.sim.Stats().DeviceRequests["usage "+hostile[0].String()]; n != 1 {
		t.Errorf("usage asked %d times, want once", n)
	}
	got := w.query(`SELECT count(*) FROM connection_events WHERE device_id = ?`, hostile[0].ID)
	want := len(since(w.wantEvents(t0, hostile...), hostileStart))
	if got[0] != fmt.Sprint(want) {
		t.Errorf("hostile device's connection events: %s, want %d (only its usage fails)", got[0], want)
	}
}

// Records carrying values of megabytes, in answers under the cap: each is
// rejected with its reason (and a summary as its raw record), the rest of
// the device's records load, and memory stays bounded. Before, 8 MB
// values on 78 pages took the sync past 2 GB, until DuckDB's commit ran
// out of memory and the whole run stopped (exit 3).
func TestSyncHugeValuesRejected(t *testing.T) {
	w, hostile, others := hostileWorld(t, 10, 6, simulator.Faults{HugeValues: 8 << 20})
	delete(w.env, "THINGSYNC_START") // 13 usage windows a device
	code, out, peak := w.syncProcess(map[string]string{"THINGSYNC_STREAMS": "usage", "THINGSYNC_CONCURRENCY": "4"}, 90*time.Second)
	if code != 0 {
		t.Fatalf("exit %d, want 0: %.2000s", code, out)
	}
	if peak > 400<<20 {
		t.Errorf("peak RSS %d MB, want under 400", peak>>20)
	}
	not := map[string]bool{}
	for _, id := range hostile {
		not[id.ID] = true
	}
	var got []string
	for _, l := range w.gotUsage() {
		if !not[strings.Split(l, "|")[1]] {
			got = append(got, l)
		}
	}
	diffLines(t, "usage of the other devices", got, w.wantUsage(t0, others...))
	// The fault puts a huge value on the first record of each page: a
	// device with history loses one record a window (13) to rejection.
	for _, id := range hostile {
		want := len(w.wantUsage(t0, id))
		rej := w.query(`SELECT count(*), count(*) FILTER (WHERE reason LIKE 'record of % bytes is larger than 1 MiB%' AND json_extract_string(raw, '$.truncated') = 'true') FROM rejected_records WHERE device_id = ?`, id.ID)
		rows := w.query(`SELECT count(*) FROM usage_daily WHERE device_id = ?`, id.ID)
		var n, big, loaded int
		fmt.Sscanf(rej[0], "%d|%d", &n, &big)
		fmt.Sscan(rows[0], &loaded)
		if n != big || loaded+n != want || (want > 13 && n < 12) {
			t.Errorf("%s: %d rejected (%d as too large), %d loaded; want %d records in all, about one a window rejected as too large", id, n, big, loaded, want)
		}
	}
}
