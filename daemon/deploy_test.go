package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/ingest"
)

// The files operators load beside the daemon: the Prometheus alerting
// rules (deploy/prometheus) and the Grafana dashboard (deploy/grafana),
// checked by promtool and against the metrics a daemon serves after a real
// run.

const (
	alertsDir     = "../deploy/prometheus"
	alertsFile    = "alerts.yml"
	alertsTest    = "alerts_test.yml"
	dashboardFile = "../deploy/grafana/thingsync.json"
)

// promtool is the path of Prometheus's promtool. Its absence fails the
// test: .ci/run installs it (Debian's prometheus package).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is needed to check the alerting rules and is not on PATH (apt-get install prometheus; .ci/run does): %v", err)
	}
	return p
}

// runPromtool runs promtool with args in dir and fails the test, showing
// its output, when it does not exit 0.
func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// ruleFile is a Prometheus rule file, as far as the tests read it.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string `yaml:"alert"`
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleTests is a promtool unit-test file, as far as the tests read it.
type ruleTests struct {
	Tests []struct {
		Name       string `yaml:"name"`
		AlertTests []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The alerting rules are valid, and their unit tests pass; every alert has
// a test where it fires and one where it does not, and a line in the README.
func TestAlertRules(t *testing.T) {
	runPromtool(t, alertsDir, "check", "rules", alertsFile)
	runPromtool(t, alertsDir, "test", "rules", alertsTest)

	var rules ruleFile
	readYAML(t, filepath.Join(alertsDir, alertsFile), &rules)
	var tests ruleTests
	readYAML(t, filepath.Join(alertsDir, alertsTest), &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertTests {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			} else {
				quiet[at.Alertname] = true
			}
		}
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("alert %s: a unit test where it fires %v, where it does not %v; want both", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}
	if alerts == 0 {
		t.Fatalf("%s has no alert", alertsFile)
	}
	// The README's table of alerts names each of them.
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !strings.Contains(string(readme), "| `"+r.Alert+"` |") {
				t.Errorf("README's table of alerts lacks %s", r.Alert)
			}
		}
	}
}

// dashboard is a Grafana dashboard, as far as the tests read it.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// dashVar is the data source variable every query goes through, so that
// the dashboard imports into any Grafana whatever its Prometheus is named.
const dashVar = "${datasource}"

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// exprs are the dashboard's PromQL expressions, by where they are.
func (d dashboard) exprs() map[string]string {
	out := map[string]string{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// grafanaVars are the dashboard's variables as a check replaces them: the
// instance variable and Grafana's own intervals.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1d", "$instance", ".*")

// The dashboard is a Grafana dashboard that imports anywhere: a schema
// version, a uid, panels laid on the 24-column grid with their queries,
// every query through the data source variable, and every expression valid
// PromQL (promtool checks them as recording rules).
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.SchemaVersion < 30 || d.UID == "" || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q; want a dashboard of schema 30 or later with a uid and a title", d.SchemaVersion, d.UID, d.Title)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && "${"+v.Name+"}" == dashVar && string(v.Query) == `"prometheus"` {
			hasDS = true
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != dashVar) {
			t.Errorf("variable %s: data source %+v, want %s", v.Name, v.Datasource, dashVar)
		}
	}
	if !hasDS {
		t.Errorf("no Prometheus data source variable named %s", dashVar)
	}
	ids := map[int]bool{}
	queries := 0
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("panel %q: id %d missing or not unique", p.Title, p.ID)
			}
			ids[p.ID] = true
			g := p.GridPos
			if p.Title == "" || g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %d %q: grid position %+v; want a title and a place on the 24-column grid", p.ID, p.Title, g)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != dashVar || len(p.Targets) == 0 {
				t.Errorf("panel %q: data source %+v, %d targets; want %s and at least one", p.Title, p.Datasource, len(p.Targets), dashVar)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] || tg.Datasource == nil || tg.Datasource.UID != dashVar {
					t.Errorf("panel %q target %q: want an expression, a refId of its own and the data source %s", p.Title, tg.RefID, dashVar)
				}
				refs[tg.RefID] = true
				queries++
			}
		}
	}
	walk(d.Panels)
	if queries == 0 {
		t.Fatal("the dashboard has no query")
	}

	// promtool checks PromQL in rule files: each expression becomes a
	// recording rule.
	var rf strings.Builder
	rf.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	exprs := d.exprs()
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range exprs {
			if !yield(k) {
				return
			}
		}
	})
	for i, k := range keys {
		q, err := json.Marshal(grafanaVars.Replace(exprs[k])) // a JSON string is a YAML string
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&rf, "      - record: dashboard_query_%d\n        expr: %s\n", i, q)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yml"), []byte(rf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, dir, "check", "rules", "dashboard.yml")
}

// promqlToken is a number (durations included), a string, or an
// identifier with the "(" that may follow it.
var promqlToken = regexp.MustCompile(`[0-9][0-9A-Za-z_.]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[A-Za-z_:][A-Za-z0-9_:]*\s*\(?`)

// labelLists are the label lists of grouping and matching clauses.
var labelLists = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)

// promqlWords are PromQL's keywords and aggregation operators, which may
// stand without a "(" right after them.
var promqlWords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
	"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "inf": true, "nan": true}

// metricNames lists the metric names an expression selects: what is left
// once label matchers, ranges, strings, label lists, numbers, functions
// and keywords are set aside. It reads as much PromQL as the rules and the
// dashboard use; promtool checks that they are PromQL.
func metricNames(expr string) []string {
	s := regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`).ReplaceAllString(expr, " ")
	s = labelLists.ReplaceAllString(s, " $1 ")
	var names []string
	for _, tok := range promqlToken.FindAllString(s, -1) {
		if c := tok[0]; c >= '0' && c <= '9' || c == '"' || c == '\'' || strings.HasSuffix(tok, "(") {
			continue
		}
		if tok = strings.TrimSpace(tok); !promqlWords[tok] && !slices.Contains(names, tok) {
			names = append(names, tok)
		}
	}
	return names
}

// The name reader finds the metrics of an expression and nothing else.
func TestMetricNames(t *testing.T) {
	expr := `sum by (job, instance) (increase(a_total{status="429",x=~"$instance"}[30m])) / ignoring(le) b offset 1d > 0.05
		and on (job) time() - c_seconds > 26 * 3600 or max without (x) (d) unless group_left (y) a_total`
	if got, want := metricNames(expr), []string{"a_total", "b", "c_seconds", "d"}; !slices.Equal(got, want) {
		t.Errorf("metricNames = %v, want %v", got, want)
	}
}

// Every metric the dashboard and the alerting rules read is one the daemon
// serves: names scraped from /metrics after a real run (with throttled
// answers to retry, and a snapshot).
func TestDeployMetricsExported(t *testing.T) {
	used := map[string][]string{} // metric name → where it is used
	var rules ruleFile
	readYAML(t, filepath.Join(alertsDir, alertsFile), &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			where := "alert " + r.Alert + r.Record
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("%s: no metric found in %q", where, r.Expr)
			}
			for _, n := range names {
				used[n] = append(used[n], where)
			}
		}
	}
	d := readDashboard(t)
	for where, e := range d.exprs() {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("%s: no metric found in %q", where, e)
		}
		for _, n := range names {
			used[n] = append(used[n], "dashboard "+where)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,`)
	for _, v := range d.Templating.List {
		var q struct{ Query string }
		if v.Type != "query" || json.Unmarshal(v.Query, &q) != nil {
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("dashboard variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
			continue
		}
		used[m[1]] = append(used[m[1]], "dashboard variable "+v.Name)
	}

	w := newSimWorld(t, simulator.Options{Devices: 6, Faults: simulator.Faults{Rate429: 0.2}}, filepath.Join(t.TempDir(), "snapshot.duckdb"))
	if st := w.run(); st != ingest.StatusOK {
		t.Fatalf("run: %s", st)
	}
	mf, _ := w.scrape()
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range used {
			if !yield(n) {
				return
			}
		}
	}) {
		if _, ok := mf[n]; !ok {
			t.Errorf("%s is not served at /metrics; used by %s", n, strings.Join(used[n], ", "))
		}
	}
	t.Logf("%d metric names used by the rules and the dashboard, all served", len(used))
}
