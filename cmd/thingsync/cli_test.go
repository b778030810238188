package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/query"
)

// runBinary runs the program as a process (see TestMain) with only the
// given environment, and returns its exit status and both streams.
func runBinary(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = []string{"THINGSYNC_TEST_MAIN=1", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// What each command's help must list: its flags and their defaults, and
// the variables the command reads. A default of "" is shown as required or
// as a default in words.
var helpWants = map[string]struct {
	flags map[string]string // flag -> default text
	env   []string
}{
	"sync": {env: []string{"THINGSPACE_BASE_URL", "THINGSPACE_CLIENT_ID", "THINGSPACE_CLIENT_SECRET", "THINGSPACE_USERNAME",
		"THINGSPACE_PASSWORD", "THINGSPACE_ACCOUNT_NAME", "THINGSYNC_DB", "THINGSYNC_STREAMS", "THINGSYNC_START",
		"THINGSYNC_WINDOW_USAGE", "THINGSYNC_WINDOW_CONNECTIONS", "THINGSYNC_LOOKBACK_USAGE", "THINGSYNC_LOOKBACK_CONNECTIONS",
		"THINGSYNC_CONCURRENCY", "THINGSYNC_RATE_LIMIT", "THINGSYNC_HTTP_ADDR", "THINGSYNC_CALLBACK_URL",
		"THINGSYNC_CALLBACK_USERNAME", "THINGSYNC_CALLBACK_PASSWORD", "THINGSYNC_LOG_LEVEL", "THINGSYNC_LOG_FORMAT"}},
	"backfill": {flags: map[string]string{"from": "", "to": "", "streams": "", "gaps": "false", "device": ""},
		env: []string{"THINGSPACE_BASE_URL", "THINGSPACE_CLIENT_ID", "THINGSPACE_ACCOUNT_NAME", "THINGSYNC_DB",
			"THINGSYNC_STREAMS", "THINGSYNC_WINDOW_USAGE", "THINGSYNC_CONCURRENCY", "THINGSYNC_RATE_LIMIT", "THINGSYNC_LOG_LEVEL"}},
	"run": {flags: map[string]string{"now": "false"},
		env: []string{"THINGSPACE_CLIENT_ID", "THINGSYNC_DB", "THINGSYNC_SNAPSHOT", "THINGSYNC_SCHEDULE", "THINGSYNC_STREAMS",
			"THINGSYNC_RATE_LIMIT", "THINGSYNC_HTTP_ADDR", "THINGSYNC_CALLBACK_URL", "THINGSYNC_LOG_FORMAT"}},
	"status":   {flags: map[string]string{"format": "table"}, env: []string{"THINGSYNC_DB", "THINGSYNC_SNAPSHOT"}},
	"serve":    {flags: map[string]string{"addr": "127.0.0.1:8081"}, env: []string{"THINGSYNC_DB", "THINGSYNC_SNAPSHOT"}},
	"sql":      {flags: map[string]string{"format": "table"}, env: []string{"THINGSYNC_DB", "THINGSYNC_SNAPSHOT"}},
	"export":   {flags: map[string]string{"to": "", "tables": "", "since": ""}, env: []string{"THINGSYNC_DB", "THINGSYNC_SNAPSHOT"}},
	"schema":   {},
	"check":    {env: []string{"THINGSPACE_BASE_URL", "THINGSPACE_CLIENT_ID", "THINGSPACE_PASSWORD", "THINGSYNC_DB", "THINGSYNC_SNAPSHOT", "THINGSYNC_CALLBACK_URL"}},
	"simulate": {flags: map[string]string{"addr": "127.0.0.1:9090", "devices": "100", "seed": "1", "rate-ceiling": "0", "fail-device": ""}},
	"demo":     {flags: map[string]string{"devices": "50", "seed": "1", "db": "demo.duckdb"}},
	"version":  {},
}

// Every command's help, asked for as -h, --help or help CMD, goes to
// stdout with exit 0 and no configuration: its synopsis, every flag as
// --flag with its default, and the variables it reads with theirs.
func TestHelpEveryCommand(t *testing.T) {
	for _, c := range commands() {
		want, ok := helpWants[c.name]
		if !ok {
			t.Errorf("command %s: the test does not know what its help must say", c.name)
			continue
		}
		code, out, errOut := runBinary(t, nil, c.name, "-h")
		if code != 0 || errOut != "" {
			t.Errorf("%s -h: exit %d, stderr %q; want 0 and nothing", c.name, code, errOut)
		}
		if !strings.HasPrefix(out, "Usage: thingsync "+c.name) {
			t.Errorf("%s -h does not start with its synopsis:\n%s", c.name, out)
		}
		for _, alt := range [][]string{{c.name, "--help"}, {"help", c.name}} {
			if code, o, e := runBinary(t, nil, alt...); code != 0 || o != out || e != "" {
				t.Errorf("%v: exit %d, stderr %q, stdout differs from %s -h: %v", alt, code, e, c.name, o != out)
			}
		}
		// One style: flags are --flag everywhere, never -flag.
		if m := regexp.MustCompile(`(?m)(^|[\s\[(])-[a-z][a-z-]+`).FindString(out); m != "" {
			t.Errorf("%s -h names a flag with one dash (%q):\n%s", c.name, m, out)
		}
		flags := flagEntries(out)
		for name, def := range want.flags {
			text, ok := flags[name]
			switch {
			case !ok:
				t.Errorf("%s -h does not list --%s:\n%s", c.name, name, out)
			case def != "" && !strings.Contains(text, "default: "+def+")"):
				t.Errorf("%s -h: --%s does not show its default %s: %q", c.name, name, def, text)
			case def == "" && !strings.Contains(text, "default") && !strings.Contains(text, "required"):
				t.Errorf("%s -h: --%s says neither its default nor that it is required: %q", c.name, name, text)
			}
		}
		for name, text := range flags {
			if !strings.Contains(text, "default") && !strings.Contains(text, "required") {
				t.Errorf("%s -h: --%s has no default: %q", c.name, name, text)
			}
		}
		env := ""
		if i := strings.Index(out, "\nEnvironment"); i >= 0 {
			env = out[i:]
		} else {
			t.Errorf("%s -h has no Environment section", c.name)
		}
		for _, v := range want.env {
			if !regexp.MustCompile(`(?m)^  ` + v + ` +\S`).MatchString(env) {
				t.Errorf("%s -h does not list %s with its meaning:\n%s", c.name, v, env)
			}
		}
		if len(want.env) == 0 && !strings.Contains(env, "none") {
			t.Errorf("%s -h lists variables it does not read:\n%s", c.name, env)
		}
	}
	// The defaults shown are the ones the program applies.
	_, out, _ := runBinary(t, nil, "sync", "-h")
	for _, s := range []string{"THINGSYNC_RATE_LIMIT", "(default: 10)", "THINGSYNC_CONCURRENCY", "(default: 8)", "(default: thingsync.duckdb)"} {
		if !strings.Contains(out, s) {
			t.Errorf("sync -h lacks %q", s)
		}
	}
}

// flagEntries reads the Flags section of a help text: flag name -> its
// description.
func flagEntries(help string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(help))
	name, in := "", false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "Flags:":
			in = true
		case !in:
		case line == "" || !strings.HasPrefix(line, " "):
			in = false
		case strings.HasPrefix(line, "  --"):
			name = strings.Fields(line)[0][2:]
			out[name] = ""
		case name != "":
			out[name] += strings.TrimSpace(line)
		}
	}
	return out
}

// A typo gets the error and a suggestion, not the list of commands; a bad
// flag gets one line naming it as --flag; --version is version.
func TestCommandLineMistakes(t *testing.T) {
	for _, tt := range []struct {
		args     []string
		code     int
		stdout   string
		stderr   string
		maxLines int
	}{
		{[]string{"snyc"}, 2, "", `unknown command "snyc"; did you mean sync?`, 1},
		{[]string{"bakfill", "--from", "x"}, 2, "", "did you mean backfill?", 1},
		{[]string{"stauts"}, 2, "", "did you mean status?", 1},
		{[]string{"help", "snyc"}, 2, "", "did you mean sync?", 1},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate" (thingsync help lists the commands)`, 1},
		{[]string{"simulate", "--devices", "many"}, 2, "", `simulate: invalid value "many" for flag --devices`, 1},
		{[]string{"demo", "--bogus"}, 2, "", "demo: flag provided but not defined: --bogus (thingsync demo -h lists the flags)", 1},
		{[]string{"--version"}, 0, "thingsync test\n", "", 0},
		{[]string{"version"}, 0, "thingsync test\n", "", 0},
		{[]string{"help"}, 0, "Commands:", "", 0},
	} {
		code, out, errOut := runBinary(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.stdout) || (tt.stdout == "" && out != "") || !strings.Contains(errOut, tt.stderr) {
			t.Errorf("%v: exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout %q, stderr with %q", tt.args, code, out, errOut, tt.code, tt.stdout, tt.stderr)
		}
		if n := strings.Count(errOut, "\n"); n > tt.maxLines {
			t.Errorf("%v: %d lines on stderr, want at most %d:\n%s", tt.args, n, tt.maxLines, errOut)
		}
	}
}

// runBinary on the world's simulator and warehouse, with extra variables.
func (w *world) runBinary(extra map[string]string, args ...string) (int, string, string) {
	w.t.Helper()
	env := map[string]string{}
	for k, v := range w.env {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return runBinary(w.t, env, args...)
}

// Backfill refuses a range that starts after today (the child's today is
// t0), fetches a range that ends after it up to today, fetches usage and
// connections only, and names a --device the account does not list.
func TestBackfillDatesStreamsAndDevices(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 3})
	w.env["THINGSYNC_STREAMS"] = "usage,connections,rated"
	today := t0.Format(time.DateOnly)
	tomorrow := t0.AddDate(0, 0, 1).Format(time.DateOnly)

	code, out, errOut := w.runBinary(nil, "backfill", "--from", tomorrow, "--to", "2027-01-31")
	if code != 2 || !strings.Contains(errOut, "--from "+tomorrow+" is after today ("+today+")") || out != "" {
		t.Errorf("backfill from tomorrow: exit %d\n%s%s\nwant 2 and the reason", code, out, errOut)
	}
	if n := w.sim.Stats().Requests["token"]; n != 0 {
		t.Errorf("a refused backfill made %d token requests", n)
	}
	code, out, errOut = w.runBinary(nil, "backfill", "--streams", "rated", "--from", today, "--to", today)
	if code != 2 || !strings.Contains(errOut, "rated has no dates to re-fetch") {
		t.Errorf("backfill --streams rated: exit %d\n%s%s", code, out, errOut)
	}

	from := t0.AddDate(0, 0, -5).Format(time.DateOnly)
	code, out, errOut = w.runBinary(map[string]string{"THINGSYNC_LOG_FORMAT": "json"}, "backfill", "--from", from, "--to", "2027-01-31")
	if code != 0 || !strings.Contains(errOut, "--to is after today; fetching up to today, "+today) {
		t.Fatalf("backfill to a future date: exit %d\n%s%s\nwant 0 and a note", code, out, errOut)
	}
	// The streams the run says it fetched are the ones it fetched.
	if got := w.query(`SELECT kind, streams, status, devices FROM sync_runs`); len(got) != 1 || got[0] != "backfill|usage,connections|ok|3" {
		t.Errorf("sync_runs = %v, want one ok backfill of usage,connections over 3 devices", got)
	}
	if n := w.sim.Stats().Requests["rated"]; n != 0 {
		t.Errorf("backfill made %d rated-usage requests", n)
	}
	if got := w.query(`SELECT count(*) FROM usage_daily WHERE usage_date > ?`, t0); got[0] != "0" {
		t.Errorf("%s usage rows after today", got[0])
	}

	one := w.activeDevice().Identity
	code, out, errOut = w.runBinary(nil, "backfill", "--from", from, "--to", today, "--device", one.String(), "--device", "imei:000000000000000")
	if code != 1 || !strings.Contains(errOut, "no device of the account matches --device imei:000000000000000") || strings.Contains(errOut, one.String()) {
		t.Errorf("backfill of an unknown device: exit %d\n%s%s\nwant 1 naming it, and only it", code, out, errOut)
	}
	// Each process's clock starts at t0: the runs are told apart by outcome.
	if got := w.query(`SELECT status, devices, error FROM sync_runs WHERE status <> 'ok'`); len(got) != 1 ||
		!strings.HasPrefix(got[0], "partial|1|no device of the account matches --device imei:000000000000000") {
		t.Errorf("last run = %v, want partial over the one device listed", got)
	}
}

// The environment simulate prints is enough to sync against it at the
// rate the demo uses, or under the simulator's --rate-ceiling.
func TestSimulateEnvLine(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want float64
	}{
		{nil, 2000},
		{[]string{"--rate-ceiling", "50"}, 45},
	} {
		cmd := exec.Command(os.Args[0], append([]string{"simulate", "--addr", "127.0.0.1:0", "--devices", "2"}, tt.args...)...)
		cmd.Env = []string{"THINGSYNC_TEST_MAIN=1"}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		var line string
		for sc.Scan() {
			if strings.Contains(sc.Text(), "THINGSPACE_BASE_URL=") {
				line = strings.TrimSpace(sc.Text())
				break
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		env := map[string]string{}
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		rate, err := strconv.ParseFloat(env["THINGSYNC_RATE_LIMIT"], 64)
		if err != nil || rate != tt.want {
			t.Errorf("simulate %v prints %q: THINGSYNC_RATE_LIMIT %v, want %v", tt.args, line, env["THINGSYNC_RATE_LIMIT"], tt.want)
		}
	}
}

// The demo shows each query's SQL before its result, and its last hint is
// a command line that runs as printed.
func TestDemoShowsItsSQL(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "demo.duckdb")
	code, out, errOut := runBinary(t, nil, "demo", "--devices", "3", "--db", db)
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s%s", code, out, errOut)
	}
	for _, q := range query.Examples() {
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(q.SQL), "\n") {
			lines = append(lines, strings.TrimSpace(l))
		}
		i := strings.Index(out, q.Title)
		if i < 0 {
			t.Errorf("demo does not show %q", q.Title)
			continue
		}
		// The SQL follows its title, line by line, before the next title.
		rest := out[i:]
		for _, l := range lines {
			j := strings.Index(rest, l)
			if j < 0 {
				t.Errorf("demo does not show the SQL of %q: line %q missing after it\n%s", q.Title, l, out)
				break
			}
			rest = rest[j+len(l):]
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	hint, ok := strings.CutPrefix(lines[len(lines)-1], "Try: ")
	if !ok {
		t.Fatalf("last line is not a hint: %q", lines[len(lines)-1])
	}
	sh := exec.Command("sh", "-c", hint)
	sh.Env = []string{"THINGSYNC_TEST_MAIN=1", "PATH=/nonexistent"}
	got, err := sh.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "session_id") {
		t.Errorf("the hint %q: %v\n%s", hint, err, got)
	}
}
