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
		{"window usage", cfg.WindowUsage, 30 * 24 * time.Hour},
		{"window connections", cfg.WindowConnections, 3 * 24 * time.Hour},
		{"lookback usage", cfg.LookbackUsage, 3 * 24 * time.Hour},
		{"lookback connections", cfg.LookbackConnections, 24 * time.Hour},
		{"concurrency", cfg.Concurrency, 8},
		{"rate", cfg.RateLimit, 10.0},
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
