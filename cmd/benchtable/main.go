// Command benchtable runs thingsync's end-to-end benchmarks side by side in
// one process tree and prints one table (make bench). Each sync runs as a
// child process of bin/thingsync against an in-process simulator, so its
// wall time and peak RSS are the program's own.
package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
)

type result struct {
	name, figure, value, target string
}

// childEnv, when set in the environment, makes this program a wrapper
// that runs its arguments as a command and writes the command's peak RSS
// to the file the variable names.
const childEnv = "BENCHTABLE_RSS_FILE"

func main() {
	if out := os.Getenv(childEnv); out != "" {
		os.Exit(wrap(out, os.Args[1:]))
	}
	bin := flag.String("bin", "bin/thingsync", "thingsync binary")
	devices := flag.Int("devices", 1000, "devices of the first-sync benchmark")
	big := flag.Int("rss-devices", 10000, "devices of the large memory benchmark")
	runs := flag.Int("runs", 3, "runs of each first sync and baseline (the median counts)")
	millionDevices := flag.Int("million", 0, "devices of the large-fleet rows (first sync, plan, next run; about 25 minutes at 1000000); 0: left out")
	only := flag.String("only", "", "run only this section (fleet) or these rows (adaptive-rate; million: the large fleet, 1000000 devices unless -million says)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "thingsync-bench")
	check(err)
	defer os.RemoveAll(dir)
	now := time.Now().UTC()
	var rs []result
	add := func(r ...result) {
		rs = append(rs, r...)
		for _, x := range r {
			fmt.Fprintf(os.Stderr, "%-44s %-26s %14s   %s\n", x.name, x.figure, x.value, x.target)
		}
	}
	switch *only {
	case "fleet":
		add(windowsBench(*bin, dir, *devices, now)...)
		add(fleet(dir, now)...)
		add(adaptiveRate(*bin, dir, now)...)
		if *millionDevices > 0 {
			add(million(*bin, dir, *millionDevices, now)...)
		}
		table(rs)
		return
	case "adaptive-rate":
		add(adaptiveRate(*bin, dir, now)...)
		table(rs)
		return
	case "million":
		n := *millionDevices
		if n == 0 {
			n = 1_000_000
		}
		add(million(*bin, dir, n, now)...)
		table(rs)
		return
	}

	// 1, 1b, 2. First syncs, run -runs times each, the variants taking
	// turns so a noisy moment on a shared machine hits them all alike;
	// rates are of the median wall time. 1 asks each device-stream's year
	// at once (the default windows), 1b in 31-day windows of connections;
	// 2 is the usage stream alone, in 30-day and 365-day windows, against
	// its ceilings.
	s1 := serve(simulator.Options{Seed: 1, Devices: *devices, Clock: simulator.NewManualClock(now)})
	variants := []struct {
		name string
		env  map[string]string
	}{
		{"full", nil},
		{"wide", map[string]string{"THINGSYNC_WINDOW_USAGE": "365d", "THINGSYNC_WINDOW_CONNECTIONS": "31d"}},
		{"usage", map[string]string{"THINGSYNC_STREAMS": "usage", "THINGSYNC_WINDOW_USAGE": "30d"}},
		{"usage-wide", map[string]string{"THINGSYNC_STREAMS": "usage", "THINGSYNC_WINDOW_USAGE": "365d"}},
	}
	walls := map[string][]time.Duration{}
	peak := map[string]int64{}
	usageRequests := map[string]int{}
	dbPath := func(v string) string { return filepath.Join(dir, v+".duckdb") }
	for i := 0; i < *runs; i++ {
		for _, v := range variants {
			// Every run starts from an empty warehouse; the last one's is kept.
			removeDB(dbPath(v.name))
			before := s1.sim.Stats().Requests["usage"]
			w, r := sync(*bin, s1, dbPath(v.name), v.env)
			usageRequests[v.name] = s1.sim.Stats().Requests["usage"] - before
			walls[v.name] = append(walls[v.name], w)
			peak[v.name] = max(peak[v.name], r)
		}
	}
	full := dbPath("full")
	usageRows, events := count(full, "usage_daily"), count(full, "connection_events")
	wall := median(walls["full"])
	add(result{fmt.Sprintf("first sync, %d devices × 365 d", *devices), "usage rows/s", rate(usageRows, wall), fmt.Sprintf("median of %d", *runs)},
		result{"", "events/s", rate(events, wall), "≥ 50,000"},
		result{"", "wall, peak RSS", fmt.Sprintf("%.1fs %dMB", wall.Seconds(), peak["full"]>>20), ""})
	wall = median(walls["wide"])
	add(result{"  same, windows usage 365d, connections 31d", "usage rows/s", rate(count(dbPath("wide"), "usage_daily"), wall), ""},
		result{"", "events/s", rate(count(dbPath("wide"), "connection_events"), wall), "≥ 50,000"},
		result{"", "wall, peak RSS", fmt.Sprintf("%.1fs %dMB", wall.Seconds(), peak["wide"]>>20), ""})

	uonly := dbPath("usage")
	uRows := count(uonly, "usage_daily")
	syncRate := float64(uRows) / median(walls["usage"]).Seconds()
	wideRate := float64(count(dbPath("usage-wide"), "usage_daily")) / median(walls["usage-wide"]).Seconds()
	// The baselines, medians of as many runs, taking turns as well.
	// read_json loads the pages each sync received (the planner's windows:
	// 13 a device-year at the default 30 days, 2 at 365), and, for
	// reference, one whole-year document per device, which no request
	// returns but suits read_json best.
	usagePlan := func(step time.Duration) extract.Plan {
		return extract.Plan{Now: now, Ceiling: step, Lookback: 3 * 24 * time.Hour, Daily: true}
	}
	pages30 := writePages(dir, "pages30", s1.sim, *devices, now, usagePlan(30*24*time.Hour).Incremental(time.Time{}))
	pages365 := writePages(dir, "pages365", s1.sim, *devices, now, usagePlan(365*24*time.Hour).Incremental(time.Time{}))
	whole := writePages(dir, "whole", s1.sim, *devices, now, []extract.Window{{From: schema.RetentionFloor(now), To: now.Add(time.Second)}})
	if pages30.n != usageRequests["usage"] || pages365.n != usageRequests["usage-wide"] {
		fmt.Fprintf(os.Stderr, "benchtable: warning: %d and %d pages written, the syncs sent %d and %d usage requests\n",
			pages30.n, pages365.n, usageRequests["usage"], usageRequests["usage-wide"])
	}
	var ceilings, rj30s, rj365s, rjWholes []float64
	for i := 0; i < *runs; i++ {
		ceilings = append(ceilings, appenderCeiling(dir, uRows))
		rj30s = append(rj30s, readJSON(dir, pages30.dir, uRows))
		rj365s = append(rj365s, readJSON(dir, pages365.dir, uRows))
		rjWholes = append(rjWholes, readJSON(dir, whole.dir, uRows))
	}
	ceiling, rj30, rj365, rjWhole := medianF(ceilings), medianF(rj30s), medianF(rj365s), medianF(rjWholes)
	st, _ := os.Stat(uonly)
	add(result{"usage-only sync, same account, window 30d", "usage rows/s", fmt.Sprintf("%.0f", syncRate), fmt.Sprintf("%d requests", usageRequests["usage"])},
		result{"  same, window 365d", "usage rows/s", fmt.Sprintf("%.0f", wideRate), fmt.Sprintf("%d requests", usageRequests["usage-wide"])},
		result{fmt.Sprintf("  DuckDB read_json of its %d pages", pages30.n), "usage rows/s", fmt.Sprintf("%.0f", rj30),
			fmt.Sprintf("sync/read_json = %.2f× (≥ 2×)", syncRate/rj30)},
		result{fmt.Sprintf("  DuckDB read_json of the 365d sync's %d pages", pages365.n), "usage rows/s", fmt.Sprintf("%.0f", rj365),
			fmt.Sprintf("365d sync/read_json = %.2f× (≥ 2×)", wideRate/rj365)},
		result{fmt.Sprintf("  read_json of %d whole-year files (no API page)", whole.n), "usage rows/s", fmt.Sprintf("%.0f", rjWhole),
			fmt.Sprintf("sync %.2f×, 365d %.2f× (reference)", syncRate/rjWhole, wideRate/rjWhole)},
		result{"  bare Appender ceiling", "usage rows/s", fmt.Sprintf("%.0f", ceiling),
			fmt.Sprintf("sync/ceiling = %.0f%%, 365d %.0f%% (≥ 50%%)", 100*syncRate/ceiling, 100*wideRate/ceiling)},
		result{"  file size", "bytes per usage row", fmt.Sprintf("%.1f", float64(st.Size())/float64(uRows)), "≤ 30"})
	s1.close()

	// 3. Nightly run on a full warehouse vs the same run on an empty one
	// (same checkpoints, no rows).
	empty := filepath.Join(dir, "empty.duckdb")
	copyFile(full, empty)
	db, err := sql.Open("duckdb", empty)
	check(err)
	_, err = db.Exec("DELETE FROM usage_daily; DELETE FROM connection_events; CHECKPOINT")
	check(err)
	db.Close()
	s3 := serve(simulator.Options{Seed: 1, Devices: *devices, Clock: simulator.NewManualClock(now)})
	// Median of three each, alternating, so one noisy moment does not
	// decide the ratio. Every run re-reads the same provisional days.
	var fulls, empties []time.Duration
	for i := 0; i < 3; i++ {
		w, _ := sync(*bin, s3, full, nil)
		fulls = append(fulls, w)
		w, _ = sync(*bin, s3, empty, nil)
		empties = append(empties, w)
	}
	s3.close()
	wallFull, wallEmpty := median(fulls), median(empties)
	add(result{"nightly incremental run (median of 3)", "full / empty warehouse", fmt.Sprintf("%.2fs / %.2fs", wallFull.Seconds(), wallEmpty.Seconds()),
		fmt.Sprintf("%.2f× (≤ 1.2×)", wallFull.Seconds()/wallEmpty.Seconds())})

	// 4. Rate-bound: 50 ms latency, ceiling 50 requests/s.
	s4 := serve(simulator.Options{Seed: 2, Devices: 50, Clock: simulator.NewManualClock(now), Faults: simulator.Faults{Latency: 50 * time.Millisecond}})
	start := time.Now()
	_, _ = sync(*bin, s4, filepath.Join(dir, "rate.duckdb"), map[string]string{"THINGSYNC_RATE_LIMIT": "50", "THINGSYNC_CONCURRENCY": "8",
		"THINGSYNC_START": now.AddDate(0, 0, -30).Format("2006-01-02")})
	el := time.Since(start)
	stats := s4.sim.Stats()
	total := 0
	for _, n := range stats.Requests {
		total += n
	}
	s4.close()
	// The achieved rate is measured while the client sends (first request
	// to last, on the simulator's side); the process's start-up and final
	// checkpoint are shown beside it.
	sending := float64(total-1) / stats.Busy.Seconds()
	add(result{"rate-bound sync (latency 50 ms, ceiling 50/s)", "requests/s, 429s", fmt.Sprintf("%.1f, %d", sending, stats.Status[429]),
		fmt.Sprintf("%.1f%% of 50 (≥ 95%%), peak %.0f/s; %.1f/s over the process's %.1fs", 100*sending/50, stats.PeakRPS, float64(total)/el.Seconds(), el.Seconds())})

	// 5. Peak RSS, 1,000 vs 10,000 devices (usage, 30 days).
	var rsss []int64
	for _, n := range []int{1000, *big} {
		s := serve(simulator.Options{Seed: 3, Devices: n, Clock: simulator.NewManualClock(now)})
		_, r := sync(*bin, s, filepath.Join(dir, fmt.Sprintf("rss%d.duckdb", n)), map[string]string{"THINGSYNC_STREAMS": "usage",
			"THINGSYNC_START": now.AddDate(0, 0, -30).Format("2006-01-02")})
		s.close()
		rsss = append(rsss, r)
	}
	add(result{fmt.Sprintf("peak RSS, 1,000 vs %d devices", *big), "MB", fmt.Sprintf("%d / %d", rsss[0]>>20, rsss[1]>>20),
		fmt.Sprintf("%.2f× (≤ 1.3×, ≤ 300 MB)", float64(rsss[1])/float64(rsss[0]))})

	add(windowsBench(*bin, dir, *devices, now)...)
	add(fleet(dir, now)...)
	add(adaptiveRate(*bin, dir, now)...)
	if *millionDevices > 0 {
		add(million(*bin, dir, *millionDevices, now)...)
	}
	table(rs)
}

// table prints the results as one Markdown table.
func table(rs []result) {
	fmt.Println()
	fmt.Printf("| %-44s | %-26s | %18s | %s\n", "benchmark", "figure", "value", "against target")
	fmt.Printf("|%s|%s|%s|%s\n", dash(46), dash(28), dash(20), dash(30))
	for _, r := range rs {
		fmt.Printf("| %-44s | %-26s | %18s | %s\n", r.name, r.figure, r.value, r.target)
	}
}

func dash(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '-'
	}
	return string(b)
}

type server struct {
	sim *simulator.Simulator
	url string
	srv *http.Server
}

func serve(o simulator.Options) *server {
	sim := simulator.New(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	srv := &http.Server{Handler: sim}
	go func() { _ = srv.Serve(ln) }()
	return &server{sim: sim, url: "http://" + ln.Addr().String(), srv: srv}
}

func (s *server) close() { s.srv.Close(); s.sim.Close() }

// sync runs bin/thingsync sync against the simulator and returns its wall
// time and peak RSS.
func sync(bin string, s *server, db string, extra map[string]string) (time.Duration, int64) {
	env := s.sim.ClientEnv(s.url, map[string]string{
		"THINGSYNC_DB": db, "THINGSYNC_RATE_LIMIT": "100000", "THINGSYNC_CONCURRENCY": "8",
		"THINGSYNC_STREAMS": "usage,connections", "THINGSYNC_LOG_LEVEL": "warn",
	})
	for k, v := range extra {
		env[k] = v
	}
	// The sync runs under a copy of this program: Linux starts a child's
	// peak RSS at its parent's (Go's exec shares the parent's memory until
	// execve, and the kernel carries that memory's high-water mark over),
	// so a child of this process, which holds the simulator and has run
	// read_json, would report this process's peak instead of its own.
	self, err := os.Executable()
	check(err)
	rssFile := filepath.Join(os.TempDir(), fmt.Sprintf("benchtable-rss-%d", os.Getpid()))
	defer os.Remove(rssFile)
	cmd := exec.Command(self, bin, "sync")
	cmd.Env = append(os.Environ(), childEnv+"="+rssFile)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "sync failed: %v\n%s", err, out)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "  %s", out)
	b, err := os.ReadFile(rssFile)
	check(err)
	var rss, wall int64
	_, err = fmt.Sscan(string(b), &rss, &wall)
	check(err)
	return time.Duration(wall), rss
}

// wrap runs args as a command with this process's standard streams and
// writes its peak RSS in bytes and its wall time in nanoseconds to out.
// This process is small, so the RSS is the command's own; the wall time
// leaves out this wrapper's own start.
func wrap(out string, args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, childEnv+"=") })
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		return 1
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	check(os.WriteFile(out, []byte(fmt.Sprint(ru.Maxrss*1024, int64(wall))), 0o644))
	return cmd.ProcessState.ExitCode()
}

func count(db, table string) int64 {
	d, err := load.OpenReadOnly(context.Background(), db)
	check(err)
	defer d.Close()
	var n int64
	check(d.QueryRow("SELECT count(*) FROM " + table).Scan(&n))
	return n
}

func rate(n int64, d time.Duration) string { return fmt.Sprintf("%.0f", float64(n)/d.Seconds()) }

// appenderCeiling appends n usage rows straight into usage_daily in one
// transaction: no staging, no key, values built beforehand, the fastest
// DuckDB's Appender takes rows from Go.
func appenderCeiling(dir string, n int64) float64 {
	path := filepath.Join(dir, "ceiling.duckdb")
	removeDB(path)
	w, err := load.Open(context.Background(), path, zerolog.Nop())
	check(err)
	w.Close()
	connector, err := duckdb.NewConnector(path, nil)
	check(err)
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(context.Background())
	check(err)
	defer conn.Close()
	day0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	loaded := time.Now()
	rows := make([][]driver.Value, n)
	for i := range rows {
		x := int64(i)
		rows[i] = []driver.Value{"iccid", fmt.Sprintf("8914%016d", x/365), day0.AddDate(0, 0, int(x%365)), x * 7, int32(x % 9), int32(x % 4), int32(x % 5),
			x * 6, x, "Raw Usage", loaded, nil, nil}
	}
	start := time.Now()
	_, err = conn.ExecContext(context.Background(), "BEGIN")
	check(err)
	check(conn.Raw(func(dc any) error {
		app, err := duckdb.NewAppender(dc.(driver.Conn), "", "main", "usage_daily")
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := app.AppendRow(r...); err != nil {
				return err
			}
		}
		return app.Close()
	}))
	_, err = conn.ExecContext(context.Background(), "COMMIT")
	check(err)
	return float64(n) / time.Since(start).Seconds()
}

// pageSet is a directory of usage pages as the API sends them.
type pageSet struct {
	dir string
	n   int
}

// writePages writes every device's usage pages for windows, as the
// simulator answers them: a first sync's windows give the bytes it received.
func writePages(dir, name string, sim *simulator.Simulator, devices int, now time.Time, windows []extract.Window) pageSet {
	ps := pageSet{dir: filepath.Join(dir, name)}
	check(os.MkdirAll(ps.dir, 0o755))
	for i := 0; i < devices; i++ {
		for j, w := range windows {
			b := sim.UsagePageJSON(i, w.From, w.Latest(), now)
			check(os.WriteFile(filepath.Join(ps.dir, fmt.Sprintf("%05d-%03d.json", i, j)), b, 0o644))
			ps.n++
		}
	}
	return ps
}

// readJSON loads a directory of usage pages with DuckDB's read_json into
// a fresh usage_daily, flattening the attributes as the sync does, and
// returns the rate; it checks every one of the sync's rows arrived.
func readJSON(dir, pages string, want int64) float64 {
	path := filepath.Join(dir, "readjson.duckdb")
	removeDB(path)
	w, err := load.Open(context.Background(), path, zerolog.Nop())
	check(err)
	defer w.Close()
	// The baseline gets DuckDB's default memory, not the loader's limit.
	_, err = w.DB().Exec("SET memory_limit = '8GB'")
	check(err)
	start := time.Now()
	_, err = w.DB().Exec(fmt.Sprintf(`INSERT INTO usage_daily (device_kind, device_id, usage_date, bytes_used, sms_used, mo_sms, mt_sms,
		domestic_usage, international_usage, source, loaded_at)
		WITH p AS (SELECT deviceId, unnest(usageHistory) AS u FROM read_json(%s, maximum_object_size = 100000000))
		SELECT lower(deviceId.kind), deviceId.id, u.timestamp::TIMESTAMPTZ::DATE, u.bytesUsed::BIGINT, u.smsUsed::INTEGER,
		  list_filter(u.extendedAttributes, a -> a.key = 'MoSms')[1].value::INTEGER,
		  list_filter(u.extendedAttributes, a -> a.key = 'MtSms')[1].value::INTEGER,
		  list_filter(u.extendedAttributes, a -> a.key = 'domesticUsage')[1].value::BIGINT,
		  list_filter(u.extendedAttributes, a -> a.key = 'internationalUsage')[1].value::BIGINT,
		  u.source, now()
		FROM p`, "'"+filepath.Join(pages, "*.json")+"'"))
	check(err)
	var n int64
	check(w.DB().QueryRow("SELECT count(*) FROM usage_daily").Scan(&n))
	el := time.Since(start)
	if n != want {
		check(fmt.Errorf("read_json of %s loaded %d usage rows, the sync %d", pages, n, want))
	}
	return float64(n) / el.Seconds()
}

func medianF(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// removeDB removes a DuckDB file and its WAL, if they exist.
func removeDB(path string) {
	_ = os.Remove(path)
	_ = os.Remove(path + ".wal")
}

func copyFile(from, to string) {
	b, err := os.ReadFile(from)
	check(err)
	check(os.WriteFile(to, b, 0o644))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}
