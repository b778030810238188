package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func base() map[string]string {
	return map[string]string{
		"THINGSPACE_CLIENT_ID":        "client",
		"THINGSPACE_CLIENT_SECRET":    "s3cr3t-client",
		"THINGSPACE_USERNAME":         "user",
		"THINGSPACE_PASSWORD":         "s3cr3t-pass",
		"THINGSPACE_ACCOUNT_NAME":     "0000123456-00001",
		"THINGSYNC_CALLBACK_PASSWORD": "s3cr3t-cb",
	}
}

func load(t *testing.T, env map[string]string) (*Config, error) {
	t.Helper()
	return Load(context.Background(), envconfig.MapLookuper(env), now, Needs{API: true})
}

func TestDefaults(t *testing.T) {
	cfg, err := load(t, base())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"base url", cfg.BaseURL, "https://thingspace.verizon.com"},
		{"db", cfg.DB, "thingsync.duckdb"},
		{"schedule", cfg.Schedule, "0 2 * * *"},
		{"streams (aggregate off without a callback URL)", strings.Join(cfg.Streams, ","), "usage,connections,rated"},
		{"start", cfg.Start, time.Date(2025, 11, 22, 0, 0, 0, 0, time.UTC)},
		{"window usage", cfg.WindowUsage, 367 * 24 * time.Hour},
		{"window connections", cfg.WindowConnections, 367 * 24 * time.Hour},
		{"lookback usage", cfg.LookbackUsage, 3 * 24 * time.Hour},
		{"lookback connections", cfg.LookbackConnections, 24 * time.Hour},
		{"concurrency", cfg.Concurrency, 8},
		{"rate", cfg.RateLimit, 10.0},
		{"rate fixed", cfg.RateAuto, false},
		{"addr", cfg.HTTPAddr, ":8080"},
		{"level", cfg.LogLevel, "info"},
		{"account keeps zeros", cfg.AccountName, "0000123456-00001"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(cfg.Notes) != 1 || !strings.Contains(cfg.Notes[0], "aggregate") {
		t.Errorf("notes = %v, want the aggregate stream noted off", cfg.Notes)
	}
}

func TestParsed(t *testing.T) {
	env := base()
	for k, v := range map[string]string{
		"THINGSYNC_STREAMS":            "usage, Connections,aggregate",
		"THINGSYNC_START":              "2026-03-01",
		"THINGSYNC_WINDOW_USAGE":       "1d12h",
		"THINGSYNC_WINDOW_CONNECTIONS": "36h",
		"THINGSYNC_CONCURRENCY":        "3",
		"THINGSYNC_RATE_LIMIT":         "2.5",
		"THINGSYNC_SCHEDULE":           "CRON_TZ=Europe/Paris 30 1 * * *",
		"THINGSYNC_CALLBACK_URL":       "https://example.com/cb",
		"THINGSYNC_CALLBACK_USERNAME":  "cbuser",
		"THINGSPACE_BASE_URL":          "http://127.0.0.1:9000/",
	} {
		env[k] = v
	}
	cfg, err := load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Streams, ","); got != "usage,connections,aggregate" {
		t.Errorf("streams = %s", got)
	}
	if cfg.Start != time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) || cfg.WindowUsage != 36*time.Hour ||
		cfg.WindowConnections != 36*time.Hour || cfg.Concurrency != 3 || cfg.RateLimit != 2.5 ||
		cfg.BaseURL != "http://127.0.0.1:9000" || cfg.CallbackPassword.Reveal() != "s3cr3t-cb" {
		t.Errorf("parsed config = %+v", cfg)
	}
}

func TestEveryProblemReportedTogether(t *testing.T) {
	env := map[string]string{
		"THINGSPACE_PASSWORD":          "s3cr3t-pass",
		"THINGSYNC_STREAMS":            "usage,bogus",
		"THINGSYNC_START":              "yesterday",
		"THINGSYNC_WINDOW_USAGE":       "10x",
		"THINGSYNC_LOOKBACK_USAGE":     "-3d",
		"THINGSYNC_CONCURRENCY":        "0",
		"THINGSYNC_RATE_LIMIT":         "fast",
		"THINGSYNC_SCHEDULE":           "every night",
		"THINGSYNC_CALLBACK_URL":       "ftp://x",
		"THINGSYNC_LOG_LEVEL":          "loud",
		"THINGSYNC_WINDOW_CONNECTIONS": "10m",
	}
	_, err := load(t, env)
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v, want *config.Error", err)
	}
	for _, name := range []string{"THINGSPACE_CLIENT_ID", "THINGSPACE_CLIENT_SECRET", "THINGSPACE_USERNAME",
		"THINGSPACE_ACCOUNT_NAME", "THINGSYNC_STREAMS", "THINGSYNC_START", "THINGSYNC_WINDOW_USAGE",
		"THINGSYNC_LOOKBACK_USAGE", "THINGSYNC_CONCURRENCY", "THINGSYNC_RATE_LIMIT", "THINGSYNC_SCHEDULE",
		"THINGSYNC_CALLBACK_URL", "THINGSYNC_CALLBACK_USERNAME", "THINGSYNC_CALLBACK_PASSWORD",
		"THINGSYNC_LOG_LEVEL", "THINGSYNC_WINDOW_CONNECTIONS"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error shows a secret: %v", err)
	}
}

func TestAPICredentialsOnlyWhenNeeded(t *testing.T) {
	if _, err := Load(context.Background(), envconfig.MapLookuper(nil), now, Needs{}); err != nil {
		t.Errorf("without API needs: %v", err)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	env := base()
	env["THINGSYNC_CALLBACK_URL"] = "https://example.com/cb"
	env["THINGSYNC_CALLBACK_USERNAME"] = "u"
	cfg, err := load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(cfg)
	for _, out := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
		fmt.Sprintf("%s", cfg.Password), fmt.Sprint(*cfg), string(js)} {
		if strings.Contains(out, "s3cr3t") {
			t.Errorf("secret printed: %s", out)
		}
	}
	if cfg.ClientSecret.Reveal() != "s3cr3t-client" || cfg.Password.Reveal() != "s3cr3t-pass" {
		t.Error("Reveal lost the value")
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3d", 72 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0.5d", 12 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"", 0, false},
		{"d", 0, false},
		{"3days", 0, false},
		{"-1h", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	for _, ok := range []string{"0 2 * * *", "@daily", "@every 1h", "CRON_TZ=UTC 0 3 * * 1-5"} {
		if _, err := ParseSchedule(ok); err != nil {
			t.Errorf("ParseSchedule(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "0 2 * *", "61 * * * *", "@sometimes"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", bad)
		}
	}
}

// A rate that is not a number, or too low to serve the devices in flight
// (a request waits at most 60 s for its turn), stops the program at start
// with the others; one that works is kept.
func TestRateLimitBounds(t *testing.T) {
	for _, tt := range []struct {
		rate, concurrency string
		ok                bool
	}{
		{"10", "8", true},
		{"0.5", "8", true},
		{"0.14", "8", true},
		{"0.1", "8", false}, // 8 devices in flight need 8 requests in 60 s
		{"0.1", "6", true},
		{"100000", "8", true},
		{"NaN", "8", false},
		{"nan", "1", false},
		{"Inf", "8", false},
		{"-Inf", "8", false},
		{"1e-9", "1", false},
		{"0", "1", false},
		{"-1", "1", false},
		{"100001", "8", false},
		{"auto", "8", true},
		{"auto:250", "8", true},
		{"AUTO:0.14", "8", true},
		{"auto:0.1", "8", false}, // the same floor as a fixed rate
		{"auto:0", "8", false},
		{"auto:x", "8", false},
		{"auto:NaN", "8", false},
		{"auto:", "8", false},
		{"auto:100001", "8", false},
		{"automatic", "8", false},
		{"auto 50", "8", false},
	} {
		env := base()
		env["THINGSYNC_RATE_LIMIT"] = tt.rate
		env["THINGSYNC_CONCURRENCY"] = tt.concurrency
		env["THINGSYNC_SCHEDULE"] = "@every 0s" // bad too: reported together
		_, err := load(t, env)
		if err == nil || !strings.Contains(err.Error(), "THINGSYNC_SCHEDULE") {
			t.Fatalf("@every 0s accepted: %v", err)
		}
		if got := strings.Contains(err.Error(), "THINGSYNC_RATE_LIMIT"); got == tt.ok {
			t.Errorf("THINGSYNC_RATE_LIMIT=%s with THINGSYNC_CONCURRENCY=%s: accepted %v, want %v (%v)", tt.rate, tt.concurrency, !got, tt.ok, err)
		}
	}
}

// auto and auto:MAX turn the adaptive rate on, with MAX (default 100) as
// its ceiling; a number is a fixed ceiling.
func TestRateLimitAuto(t *testing.T) {
	for _, tt := range []struct {
		rate  string
		limit float64
		auto  bool
	}{
		{"auto", 100, true},
		{" auto:250 ", 250, true},
		{"Auto:2.5", 2.5, true},
		{"40", 40, false},
	} {
		env := base()
		env["THINGSYNC_RATE_LIMIT"] = tt.rate
		cfg, err := load(t, env)
		if err != nil {
			t.Fatalf("THINGSYNC_RATE_LIMIT=%q: %v", tt.rate, err)
		}
		if cfg.RateLimit != tt.limit || cfg.RateAuto != tt.auto {
			t.Errorf("THINGSYNC_RATE_LIMIT=%q: limit %v auto %v, want %v %v", tt.rate, cfg.RateLimit, cfg.RateAuto, tt.limit, tt.auto)
		}
	}
	env := base()
	env["THINGSYNC_RATE_LIMIT"] = "auto:x"
	if _, err := load(t, env); err == nil || !strings.Contains(err.Error(), "THINGSYNC_RATE_LIMIT") || !strings.Contains(err.Error(), "auto:MAX") {
		t.Errorf("auto:x: %v, want an error naming THINGSYNC_RATE_LIMIT and auto:MAX", err)
	}
}

// @every takes the durations the other variables take, and no interval
// shorter than a minute (cron's resolution) unless the caller lowers it.
func TestScheduleBounds(t *testing.T) {
	for _, tt := range []struct {
		spec  string
		floor time.Duration
		want  time.Duration // between runs; 0: refused
	}{
		{"@every 1d", 0, 24 * time.Hour},
		{"@every 1d12h", 0, 36 * time.Hour},
		{"@every 6h", 0, 6 * time.Hour},
		{"CRON_TZ=Europe/Paris @every 2d", 0, 48 * time.Hour},
		{"@every 1m", 0, time.Minute},
		{"@every 0s", 0, 0},
		{"@every 0", 0, 0},
		{"@every 30s", 0, 0},
		{"@every 59s", 0, 0},
		{"@every", 0, 0},
		{"@every 1x", 0, 0},
		{"@every 1s", time.Second, time.Second},
		{"@every 0s", time.Second, 0},
	} {
		env := base()
		env["THINGSYNC_SCHEDULE"] = tt.spec
		cfg, err := Load(context.Background(), envconfig.MapLookuper(env), now, Needs{API: true, ScheduleFloor: tt.floor})
		if tt.want == 0 {
			if err == nil || !strings.Contains(err.Error(), "THINGSYNC_SCHEDULE") {
				t.Errorf("%q (floor %v) accepted: %v", tt.spec, tt.floor, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.spec, err)
			continue
		}
		sch, err := ParseSchedule(cfg.Schedule)
		if err != nil {
			t.Fatal(err)
		}
		if next := sch.Next(now); next.Sub(now) != tt.want {
			t.Errorf("%q: next run %v after now, want %v", tt.spec, next.Sub(now), tt.want)
		}
	}
}

// Every variable has a meaning for the help texts, and the defaults are
// the ones Load applies.
func TestVariables(t *testing.T) {
	vars := Variables()
	if len(vars) < 20 {
		t.Fatalf("%d variables", len(vars))
	}
	defaults := map[string]string{}
	for _, v := range vars {
		if v.Meaning == "" {
			t.Errorf("%s has no meaning", v.Name)
		}
		defaults[v.Name] = v.Default
	}
	for name, want := range map[string]string{"THINGSYNC_STREAMS": "usage,connections,rated,aggregate",
		"THINGSYNC_RATE_LIMIT": "10", "THINGSYNC_DB": "thingsync.duckdb", "THINGSYNC_SNAPSHOT": "", "THINGSYNC_SCHEDULE": "0 2 * * *"} {
		if got, ok := defaults[name]; !ok || got != want {
			t.Errorf("%s default = %q (listed %v), want %q", name, got, ok, want)
		}
	}
}

// THINGSYNC_RUN_BUDGET: unset leaves the command's default; a duration or
// 0 (no limit) is taken; a bad or negative one is refused naming it.
func TestRunBudget(t *testing.T) {
	env := base()
	cfg, err := load(t, env)
	if err != nil || cfg.RunBudgetSet {
		t.Fatalf("unset: set %v, %v; want the command's default", cfg.RunBudgetSet, err)
	}
	for v, want := range map[string]time.Duration{"5h": 5 * time.Hour, "1d": 24 * time.Hour, "0": 0} {
		env["THINGSYNC_RUN_BUDGET"] = v
		cfg, err := load(t, env)
		if err != nil || !cfg.RunBudgetSet || cfg.RunBudget != want {
			t.Errorf("%q: %v (set %v), %v; want %v", v, cfg.RunBudget, cfg.RunBudgetSet, err, want)
		}
	}
	for _, v := range []string{"-1h", "soon"} {
		env["THINGSYNC_RUN_BUDGET"] = v
		if _, err := load(t, env); err == nil || !strings.Contains(err.Error(), "THINGSYNC_RUN_BUDGET") {
			t.Errorf("%q: %v; want an error naming THINGSYNC_RUN_BUDGET", v, err)
		}
	}
}
