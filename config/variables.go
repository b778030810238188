package config

import (
	"reflect"
	"strings"
)

// Variable is one environment variable the program reads.
type Variable struct {
	Name    string
	Default string // empty: none
	Meaning string
}

// Variables lists every variable the program reads, with its default as
// Load applies it, for help texts.
func Variables() []Variable {
	meaning := map[string]string{
		"THINGSPACE_BASE_URL":            "scheme and host of the API",
		"THINGSPACE_CLIENT_ID":           "OAuth2 client id for the bearer token (required)",
		"THINGSPACE_CLIENT_SECRET":       "OAuth2 client secret (required; secret)",
		"THINGSPACE_USERNAME":            "M2M session login (required)",
		"THINGSPACE_PASSWORD":            "M2M session password (required; secret)",
		"THINGSPACE_ACCOUNT_NAME":        "billing account whose devices are walked, leading zeros kept (required)",
		"THINGSYNC_DB":                   "the DuckDB warehouse file",
		"THINGSYNC_SNAPSHOT":             "read-only copy of the warehouse the daemon publishes after each successful run; read by sql, status, export",
		"THINGSYNC_SCHEDULE":             "cron spec for run: 5 fields, @daily, @every 6h (at least 1m), CRON_TZ= prefix",
		"THINGSYNC_STREAMS":              "streams: usage,connections,rated,aggregate",
		"THINGSYNC_START":                "first day fetched for a device without a checkpoint, YYYY-MM-DD (default: 12 months ago)",
		"THINGSYNC_WINDOW_USAGE":         "widest usage range one request asks for; narrower where the API refuses (learned) or times out",
		"THINGSYNC_WINDOW_CONNECTIONS":   "widest connection-history range one request asks for; narrower where the API refuses (learned) or times out",
		"THINGSYNC_LOOKBACK_USAGE":       "settlement period of usage: younger data is re-read",
		"THINGSYNC_LOOKBACK_CONNECTIONS": "settlement period of connection events",
		"THINGSYNC_IDLE_RECHECK":         "how often an idle device's usage is asked (the device list shows it not connected since what is settled: no connection-history request); 0: every device every run",
		"THINGSYNC_CONCURRENCY":          "devices in flight",
		"THINGSYNC_RATE_LIMIT":           "API requests per second, all endpoints: a number is a fixed ceiling (at least THINGSYNC_CONCURRENCY/60); auto or auto:MAX finds the account's ceiling (starts at 10 or the rate the last run learned, rises while answers are clean, backs off on 429/503, never above MAX, default 100)",
		"THINGSYNC_RUN_BUDGET":           "longest a run may fetch, then it commits, ends with status budget (exit 0) and the next run carries on where it stopped; 0: no limit (default: run 90% of the time to the next scheduled run; sync and backfill none)",
		"THINGSYNC_MAX_ANSWER_MB":        "largest API answer accepted, and most one window's pages may hold together, in MiB: bounds memory",
		"THINGSYNC_HTTP_ADDR":            "listen address for callbacks (and the daemon's /healthz, /metrics, status page)",
		"THINGSYNC_CALLBACK_URL":         "public URL registered for callbacks; unset: aggregate stream off",
		"THINGSYNC_CALLBACK_USERNAME":    "user name callbacks must carry",
		"THINGSYNC_CALLBACK_PASSWORD":    "password callbacks must carry (secret)",
		"THINGSYNC_LOG_LEVEL":            "debug, info, warn or error",
		"THINGSYNC_LOG_FORMAT":           "json or console (default: json unless stderr is a terminal)",
	}
	t := reflect.TypeFor[raw]()
	out := make([]Variable, 0, t.NumField())
	for i := range t.NumField() {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("env"), ",")
		v := Variable{Name: name, Meaning: meaning[name]}
		// The default runs to the end of the tag: it may hold commas.
		if _, def, ok := strings.Cut(opts, "default="); ok {
			v.Default = def
		}
		out = append(out, v)
	}
	return out
}
