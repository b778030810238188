package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/query"
	"github.com/thingsync/thingsync/schema"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// world is a simulator on loopback and a warehouse file, driven through
// the whole program.
type world struct {
	t     *testing.T
	sim   *simulator.Simulator
	clock *simulator.ManualClock
	env   map[string]string
	db    string
}

func newWorld(t *testing.T, opts simulator.Options) *world {
	t.Helper()
	clock := simulator.NewManualClock(t0)
	opts.Clock = clock
	if opts.Devices == 0 {
		opts.Devices = 24
	}
	if opts.Seed == 0 {
		opts.Seed = 42
	}
	sim := simulator.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	id, secret, user, pass := sim.Credentials()
	db := filepath.Join(t.TempDir(), "w.duckdb")
	return &world{t: t, sim: sim, clock: clock, db: db, env: map[string]string{
		"THINGSPACE_BASE_URL": srv.URL, "THINGSPACE_CLIENT_ID": id, "THINGSPACE_CLIENT_SECRET": secret,
		"THINGSPACE_USERNAME": user, "THINGSPACE_PASSWORD": pass, "THINGSPACE_ACCOUNT_NAME": sim.AccountName(),
		"THINGSYNC_DB": db, "THINGSYNC_RATE_LIMIT": "5000", "THINGSYNC_CONCURRENCY": "4",
		"THINGSYNC_STREAMS": "usage,connections", "THINGSYNC_LOG_LEVEL": "warn",
	}}
}

// fastClient keeps the client's pauses short: the behaviour under test is
// the same, the waiting is not.
func fastClient(c *extract.ClientConfig) {
	c.BackoffBase = 2 * time.Millisecond
	c.UnexpectedErrorPause = 5 * time.Millisecond
	c.MaxRetries = 3
}

// run runs one command line at the simulator's clock.
func (w *world) run(args ...string) (int, string) {
	w.t.Helper()
	var out, errb bytes.Buffer
	a := &App{Stdout: &out, Stderr: &errb, Now: w.clock.Now, TuneClient: fastClient,
		LookupEnv: func(k string) (string, bool) { v, ok := w.env[k]; return v, ok }}
	code := ExitCode(a.Run(context.Background(), args), &errb)
	return code, out.String() + errb.String()
}

func (w *world) query(q string, args ...any) []string {
	w.t.Helper()
	db, err := load.OpenReadOnly(context.Background(), w.db)
	if err != nil {
		w.t.Fatal(err)
	}
	defer db.Close()
	return queryLines(w.t, db, q, args...)
}

// queryLines renders each row as its columns joined by "|".
func queryLines(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				parts[i] = "NULL"
			case time.Time:
				parts[i] = x.UTC().Format(time.RFC3339)
			default:
				parts[i] = fmt.Sprint(x)
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantUsage renders the simulator's truth as usage_daily rows, of the
// devices only names if it names any.
func (w *world) wantUsage(at time.Time, only ...simulator.ID) []string {
	var out []string
	for _, u := range w.sim.TruthUsage(at, time.Time{}, time.Time{}, only...) {
		if u.Malformed {
			continue
		}
		out = append(out, fmt.Sprintf("%s|%s|%s|%d|%d|%d|%d|%d|%d|%s", u.Device.Kind, u.Device.ID, u.Date.Format(time.RFC3339),
			u.BytesUsed, u.SMSUsed, u.MoSMS, u.MtSMS, u.Domestic, u.International, u.Source))
	}
	sort.Strings(out)
	return out
}

func (w *world) gotUsage() []string {
	got := w.query(`SELECT device_kind, device_id, usage_date, bytes_used, sms_used, mo_sms, mt_sms, domestic_usage, international_usage, source FROM usage_daily`)
	sort.Strings(got)
	return got
}

func (w *world) wantEvents(at time.Time, only ...simulator.ID) []string {
	var out []string
	for _, e := range w.sim.TruthEvents(at, time.Time{}, time.Time{}, only...) {
		out = append(out, fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s", e.Device.Kind, e.Device.ID, e.OccurredAt.Format(time.RFC3339),
			e.Attrs["Event"], e.Attrs["AccountSessionId"], e.Attrs["BytesUsed"], e.Attrs["AccountTerminateCause"]))
	}
	sort.Strings(out)
	return out
}

func (w *world) gotEvents() []string {
	got := w.query(`SELECT device_kind, device_id, occurred_at, event, account_session_id, bytes_used, account_terminate_cause FROM connection_events`)
	sort.Strings(got)
	return got
}

func diffLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == len(want) {
		same := true
		for i := range got {
			if got[i] != want[i] {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	g, wm := map[string]bool{}, map[string]bool{}
	for _, s := range got {
		g[s] = true
	}
	for _, s := range want {
		wm[s] = true
	}
	var missing, extra []string
	for _, s := range want {
		if !g[s] {
			missing = append(missing, s)
		}
	}
	for _, s := range got {
		if !wm[s] {
			extra = append(extra, s)
		}
	}
	t.Errorf("%s: %d rows, want %d; %d missing (e.g. %v), %d unexpected (e.g. %v)", what, len(got), len(want),
		len(missing), head(missing), len(extra), head(extra))
}

func head(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

func (w *world) noDuplicateKeys() {
	w.t.Helper()
	for _, q := range []string{
		`SELECT count(*) FROM (SELECT 1 FROM usage_daily GROUP BY device_kind, device_id, usage_date HAVING count(*) > 1)`,
		`SELECT count(*) FROM (SELECT 1 FROM connection_events GROUP BY device_kind, device_id, occurred_at, event, account_session_id HAVING count(*) > 1)`,
		`SELECT count(*) FROM (SELECT 1 FROM devices GROUP BY device_kind, device_id HAVING count(*) > 1)`,
		`SELECT count(*) FROM (SELECT 1 FROM sync_checkpoints GROUP BY stream, device_kind, device_id HAVING count(*) > 1)`,
	} {
		if got := w.query(q); got[0] != "0" {
			w.t.Errorf("duplicate keys: %s = %s", q, got[0])
		}
	}
}

func TestSyncFirstRunExactThenIdempotent(t *testing.T) {
	w := newWorld(t, simulator.Options{Quirks: simulator.Quirks{
		OccuredAt: true, NumbersAsNumbers: true, UnknownKeys: true, BadTimestamp: true, BadValue: true}})
	code, out := w.run("sync")
	if code != 0 {
		t.Fatalf("sync exit %d: %s", code, out)
	}
	diffLines(t, "usage_daily", w.gotUsage(), w.wantUsage(t0))
	diffLines(t, "connection_events", w.gotEvents(), w.wantEvents(t0))
	w.noDuplicateKeys()

	t.Run("devices with lower-case kinds", func(t *testing.T) {
		got := w.query(`SELECT count(*), count(*) FILTER (WHERE device_kind <> lower(device_kind)) FROM devices`)
		if got[0] != "24|0" {
			t.Errorf("devices: %v", got)
		}
	})
	t.Run("offsets honoured", func(t *testing.T) {
		for _, e := range w.sim.TruthEvents(t0, t0.AddDate(0, 0, -3), time.Time{}) {
			if e.Offset != "-05:00" {
				continue
			}
			got := w.query(`SELECT count(*) FROM connection_events WHERE device_id = ? AND occurred_at = ?`, e.Device.ID, e.OccurredAt)
			if got[0] != "1" {
				t.Errorf("event of %s at %s (sent with -05:00) not found at its UTC instant", e.Device, e.OccurredAt)
			}
			return
		}
		t.Fatal("no -05:00 event in the account")
	})
	t.Run("unknown and hostile keys are data", func(t *testing.T) {
		got := w.query(`SELECT column_name FROM duckdb_columns() WHERE table_name = 'usage_daily' AND column_name IN ('roaming_sms', 'x_drop_table_usage_daily') ORDER BY 1`)
		if strings.Join(got, ",") != "roaming_sms,x_drop_table_usage_daily" {
			t.Errorf("evolved columns = %v", got)
		}
		keys := w.query(`SELECT attribute_key FROM schema_columns WHERE table_name = 'usage_daily' ORDER BY 1`)
		if len(keys) != 2 || keys[1] != `x"; DROP TABLE usage_daily; --` {
			t.Errorf("schema_columns = %v", keys)
		}
		if got := w.query(`SELECT count(*) FROM usage_daily WHERE x_drop_table_usage_daily = '1'`); got[0] == "0" {
			t.Error("the hostile key's values were not stored")
		}
		if got := w.query(`SELECT count(*) FROM connection_events WHERE nas_port_type = 'Wireless-Other'`); got[0] == "0" {
			t.Error("unknown event key not stored")
		}
	})
	t.Run("bad records rejected, the rest loaded", func(t *testing.T) {
		got := w.query(`SELECT stream, count(*) FROM rejected_records GROUP BY ALL`)
		if strings.Join(got, ",") != "usage|2" {
			t.Errorf("rejected_records = %v, want the bad timestamp and the bad value", got)
		}
	})

	t.Run("rerun: nothing changes, one request per device and stream", func(t *testing.T) {
		// Every device every run (the idle rule's own tests are in ingest).
		w.env["THINGSYNC_IDLE_RECHECK"] = "0"
		before := w.query(`SELECT max(loaded_at) FROM usage_daily`)
		w.sim.ResetStats()
		code, out := w.run("sync")
		if code != 0 {
			t.Fatalf("rerun exit %d: %s", code, out)
		}
		if !strings.Contains(out, "usage_daily +0 ~0") || !strings.Contains(out, "connection_events +0 ~0") {
			t.Errorf("rerun summary: %s", out)
		}
		if after := w.query(`SELECT max(loaded_at) FROM usage_daily`); after[0] != before[0] {
			t.Error("rerun rewrote rows")
		}
		stats := w.sim.Stats()
		for _, d := range w.sim.Devices() {
			want := 1
			if d.State == "deactive" {
				want = 0 // fetched a last time by the first run, then left alone
			}
			for _, ep := range []string{"usage", "connections"} {
				if n := stats.DeviceRequests[ep+" "+d.Identity.String()]; n != want {
					t.Errorf("%s %s (%s): %d requests, want %d", ep, d.Identity, d.State, n, want)
				}
			}
		}
	})
}

func TestSyncRevisionsOverwrite(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 8})
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("sync: %s", out)
	}
	w.clock.Advance(36 * time.Hour)
	code, out := w.run("sync")
	if code != 0 {
		t.Fatalf("second sync: %s", out)
	}
	if strings.Contains(out, "usage_daily +0 ~0") {
		t.Errorf("no revision counted: %s", out)
	}
	// The warehouse keeps what has meanwhile left the API's retention.
	floor := schema.RetentionFloor(w.clock.Now()).Format(time.RFC3339)
	retained := func(lines []string) []string {
		var keep []string
		for _, l := range lines {
			if strings.Split(l, "|")[2] >= floor {
				keep = append(keep, l)
			}
		}
		return keep
	}
	diffLines(t, "usage_daily after revisions", retained(w.gotUsage()), w.wantUsage(w.clock.Now()))
	diffLines(t, "connection_events after a day and a half", retained(w.gotEvents()), w.wantEvents(w.clock.Now()))
	w.noDuplicateKeys()
}

// activeDevice is the first active device with history: the one tests
// make fail.
func (w *world) activeDevice() simulator.TruthDevice {
	w.t.Helper()
	for _, d := range w.sim.Devices() {
		if d.State == "active" && !d.Silent {
			return d
		}
	}
	w.t.Fatal("the simulated account has no active device with history")
	return simulator.TruthDevice{}
}

func TestSyncFailingDevice(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 10})
	bad := w.activeDevice()
	w.sim.SetFaults(simulator.Faults{FailDevices: []string{bad.Identity.ID}})
	code, out := w.run("sync")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, out)
	}
	others := func(lines []string) []string {
		var keep []string
		for _, l := range lines {
			if !strings.Contains(l, "|"+bad.Identity.ID+"|") {
				keep = append(keep, l)
			}
		}
		return keep
	}
	diffLines(t, "usage of the other devices", others(w.gotUsage()), others(w.wantUsage(t0)))
	diffLines(t, "events of the other devices", others(w.gotEvents()), others(w.wantEvents(t0)))
	cp := w.query(`SELECT stream, coalesce(settled_until::VARCHAR, 'none'), failures, last_error IS NOT NULL FROM sync_checkpoints WHERE device_id = ? ORDER BY 1`, bad.Identity.ID)
	if strings.Join(cp, ",") != "connections|none|1|true,usage|none|1|true" {
		t.Errorf("failing device's checkpoints = %v", cp)
	}
	if got := w.query(`SELECT status, devices_failed FROM sync_runs`); got[0] != "partial|1" {
		t.Errorf("sync_runs = %v", got)
	}

	w.sim.SetFaults(simulator.Faults{})
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("next run exit %d: %s", code, out)
	}
	diffLines(t, "usage after recovery", w.gotUsage(), w.wantUsage(t0))
	diffLines(t, "events after recovery", w.gotEvents(), w.wantEvents(t0))
	if got := w.query(`SELECT count(*) FROM sync_checkpoints WHERE last_error IS NOT NULL OR failures > 0`); got[0] != "0" {
		t.Errorf("errors left after recovery: %v", got)
	}
}

func TestSyncSplitsWindowsThatTimeOut(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 4, Faults: simulator.Faults{SlowRange: 8 * 24 * time.Hour}})
	w.env["THINGSYNC_WINDOW_CONNECTIONS"] = "20d"
	code, out := w.run("sync")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	diffLines(t, "usage_daily", w.gotUsage(), w.wantUsage(t0))
	diffLines(t, "connection_events", w.gotEvents(), w.wantEvents(t0))
	if s := w.sim.Stats(); s.Status[400] == 0 {
		t.Error("no window timed out: the test proves nothing")
	}
}

func TestBackfillNeverMovesCheckpointsBack(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 6})
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("sync: %s", out)
	}
	q := `SELECT stream, device_kind, device_id, settled_until, fetched_until FROM sync_checkpoints ORDER BY ALL`
	before := w.query(q)
	w.sim.ResetStats()
	code, out := w.run("backfill", "--from", "2026-09-01", "--to", "2026-09-10", "--streams", "usage,connections")
	if code != 0 {
		t.Fatalf("backfill exit %d: %s", code, out)
	}
	if s := w.sim.Stats(); s.Requests["usage"] == 0 || s.Requests["connections"] == 0 {
		t.Errorf("backfill fetched nothing: %v", s.Requests)
	}
	diffLines(t, "checkpoints after backfill", w.query(q), before)
	diffLines(t, "usage after backfill", w.gotUsage(), w.wantUsage(t0))
	w.noDuplicateKeys()

	one := w.sim.Devices()[0].Identity
	w.sim.ResetStats()
	if code, out := w.run("backfill", "--from", "2026-10-01", "--to", "2026-10-02", "--device", strings.ToUpper(one.Kind)+":"+one.ID); code != 0 {
		t.Fatalf("backfill one device: %s", out)
	}
	for k, n := range w.sim.Stats().DeviceRequests {
		if !strings.HasSuffix(k, one.String()) && n > 0 {
			t.Errorf("backfill --device %s also fetched %s", one, k)
		}
	}
}

func TestBadFlagsAndDates(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 1})
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"backfill", "--from", "2026-13-01", "--to", "2026-01-01"}, "--from"},
		{[]string{"backfill", "--from", "2026-02-01", "--to", "2026-01-01"}, "--to is before --from"},
		{[]string{"backfill", "--from", "2026-01-01"}, "--to"},
		{[]string{"backfill", "--from", "2026-01-01", "--to", "2026-01-02", "--device", "nokind"}, "KIND:ID"},
		{[]string{"backfill", "--from", "2026-01-01", "--to", "2026-01-02", "--streams", "gossip"}, "gossip"},
		{[]string{"sync", "extra"}, "unexpected"},
	}
	for _, tt := range tests {
		code, out := w.run(tt.args...)
		if code != 2 || !strings.Contains(out, tt.want) {
			t.Errorf("%v: exit %d, output %q; want 2 naming %q", tt.args, code, out, tt.want)
		}
	}
}

func TestDemo(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.duckdb")
	code, out, errOut := run(t, nil, "demo", "--devices", "5", "--db", db)
	if code != 0 {
		t.Fatalf("demo exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"sync: 5 devices (0 failed)", "Top 5 data users this month", "Sessions per day and their median duration",
		"SMS by day", "Devices with no data for 7 days", "International share by month"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// The README shows the same queries, so a reader can run them.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range query.Examples() {
		if !strings.Contains(string(readme), "**"+q.Title+"**") {
			t.Errorf("README does not show the demo query %q", q.Title)
		}
	}
}

// Rated usage: one row per device with an MDN, equal to the simulator's
// truth in every unit (KB, MB, GB as sent; bytes by powers of ten); a
// rerun changes nothing.
func TestSyncRated(t *testing.T) {
	w := newWorld(t, simulator.Options{})
	w.env["THINGSYNC_STREAMS"] = "rated"
	w.env["THINGSYNC_IDLE_RECHECK"] = "0" // every device every run
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, out)
	}
	var want []string
	units := map[string]bool{}
	for _, r := range w.sim.TruthRated(t0) {
		units[r.Unit] = true
		want = append(want, fmt.Sprintf("%s|%s|%s|%s|%s|%v|%s|%d", r.Device.Kind, r.Device.ID, r.Start.Format(time.RFC3339),
			r.End.Format(time.RFC3339), r.Reset.Format(time.RFC3339), r.DataUsage, r.Unit, r.DataUsageBytes))
	}
	if len(units) < 2 {
		t.Fatalf("the simulated account uses units %v: the test would not compare units", units)
	}
	got := func() []string {
		return w.query(`SELECT device_kind, device_id, billing_start_date, billing_end_date, billing_reset_date,
			data_usage, unit, data_usage_bytes FROM rated_usage ORDER BY device_kind, device_id`)
	}
	diffLines(t, "rated_usage", got(), want)
	w.clock.Advance(time.Minute)
	code, out := w.run("sync")
	if code != 0 || !strings.Contains(out, "rated_usage +0 ~0") {
		t.Errorf("rerun: exit %d, %s; want rated_usage +0 ~0", code, out)
	}
	diffLines(t, "rated_usage after a rerun", got(), want)
	// Deactivated devices were fetched a last time by the first run; the
	// others were fetched again.
	stale := w.query(`SELECT r.device_id FROM rated_usage r WHERE r.fetched_at <> ?::TIMESTAMPTZ ORDER BY 1`, t0.Add(time.Minute))
	retired := w.query(`SELECT device_id FROM sync_checkpoints WHERE stream = 'rated' AND retired ORDER BY 1`)
	if len(retired) == 0 || strings.Join(stale, ",") != strings.Join(retired, ",") {
		t.Errorf("rows not refreshed by the rerun: %v, want exactly the retired devices %v", stale, retired)
	}
}

// A device list that breaks off part-way leaves a partial run: the devices
// of the pages it did list are loaded and checkpointed, exit 1, and the
// next run reaches the rest. A list that fails at its first page is a run
// that could not start (exit 3).
func TestSyncDeviceListFailsPartWay(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 30, DevicePageSize: 10})
	w.sim.SetFaults(simulator.Faults{Rate5xx: 1})
	if code, out := w.run("sync"); code != 3 || !strings.Contains(out, "list devices") {
		t.Fatalf("list failing at once: exit %d, want 3 naming the device list: %s", code, out)
	}

	w.sim.SetFaults(simulator.Faults{FailDeviceListAfter: 10})
	code, out := w.run("sync")
	if code != 1 || !strings.Contains(out, "device list incomplete after 10 devices") {
		t.Fatalf("exit %d, want 1 naming the incomplete list: %s", code, out)
	}
	var first []simulator.ID
	for _, d := range w.sim.Devices()[:10] {
		first = append(first, d.Identity)
	}
	wantU, wantE := w.wantUsage(t0, first...), w.wantEvents(t0, first...)
	if len(wantU) == 0 || len(wantE) == 0 {
		t.Fatal("the first page's devices have no history to compare")
	}
	diffLines(t, "usage of the listed devices", w.gotUsage(), wantU)
	diffLines(t, "events of the listed devices", w.gotEvents(), wantE)
	if got := w.query(`SELECT count(*), count(DISTINCT device_id) FROM devices`); got[0] != "10|10" {
		t.Errorf("devices = %v, want the first page's 10", got)
	}
	// Both runs start at the same simulated instant: order by outcome.
	if got := strings.Join(w.query(`SELECT status, error LIKE '%device list incomplete%' FROM sync_runs ORDER BY status`), ","); got != "failed|false,partial|true" {
		t.Errorf("sync_runs = %v, want the failed first run and a partial one naming the list", got)
	}

	w.sim.SetFaults(simulator.Faults{})
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("next run exit %d: %s", code, out)
	}
	diffLines(t, "usage after the list recovers", w.gotUsage(), w.wantUsage(t0))
	diffLines(t, "events after the list recovers", w.gotEvents(), w.wantEvents(t0))
	w.noDuplicateKeys()
}

// sync --plan prints the plan and exits 0, asking the device list only.
func TestSyncPlan(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 6})
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, out)
	}
	w.clock.Advance(24 * time.Hour)
	w.sim.ResetStats()
	code, out := w.run("sync", "--plan")
	st := w.sim.Stats()
	if code != 0 || !strings.Contains(out, "6 devices listed") || !strings.Contains(out, "skipped idle") {
		t.Errorf("sync --plan: exit %d\n%s", code, out)
	}
	if st.Requests["devices"] == 0 || st.Requests["usage"]+st.Requests["connections"]+st.Requests["rated"] != 0 {
		t.Errorf("sync --plan asked %v; want the device list only", st.Requests)
	}
}
