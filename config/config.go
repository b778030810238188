// Package config decides what the environment means: it turns it into one
// validated Config (parsed once: typed streams, a cron schedule) and sets
// the Go runtime's defaults the environment does not override.
package config

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/schema"
)

// Secret holds a credential. Every way of printing it prints [redacted];
// Reveal returns the value for the code that must send it.
type Secret struct{ v string }

// NewSecret wraps a value.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return s.v }

// IsSet tells whether a value was given.
func (s Secret) IsSet() bool { return s.v != "" }

func (s Secret) String() string                { return "[redacted]" }
func (s Secret) GoString() string              { return "[redacted]" }
func (s Secret) MarshalJSON() ([]byte, error)  { return []byte(`"[redacted]"`), nil }
func (s Secret) MarshalText() ([]byte, error)  { return []byte("[redacted]"), nil }
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte("[redacted]")) }

// Config is the program's whole configuration.
type Config struct {
	BaseURL      string
	ClientID     string
	ClientSecret Secret
	Username     string
	Password     Secret
	AccountName  string

	DB       string
	Snapshot string
	Schedule string
	// Cron is Schedule parsed.
	Cron    cron.Schedule
	Streams []string
	Start   time.Time

	WindowUsage, WindowConnections     time.Duration
	LookbackUsage, LookbackConnections time.Duration
	// IdleRecheck is how often an idle device's usage is asked (0: every
	// device, every stream, every run).
	IdleRecheck time.Duration

	Concurrency int
	// RateLimit is the ceiling on requests per second: fixed, or with
	// RateAuto the most the adaptive rate may reach.
	RateLimit float64
	RateAuto  bool
	// RunBudget is THINGSYNC_RUN_BUDGET when RunBudgetSet; otherwise each
	// command has its own default (run: 90% of the gap to the next
	// scheduled run; sync and backfill: none). 0: no limit.
	RunBudget    time.Duration
	RunBudgetSet bool
	// MaxAnswerBytes caps one API answer, and the pages of one window
	// together.
	MaxAnswerBytes int64

	HTTPAddr         string
	CallbackURL      string
	CallbackUsername string
	CallbackPassword Secret

	LogLevel  string
	LogFormat string

	// Notes are remarks about the configuration that are not errors, such
	// as a stream switched off for want of a callback URL.
	Notes []string
}

// raw is what go-envconfig reads: text only, so that every bad value can be
// reported together rather than the first one alone.
type raw struct {
	BaseURL      string `env:"THINGSPACE_BASE_URL, default=https://thingspace.verizon.com"`
	ClientID     string `env:"THINGSPACE_CLIENT_ID"`
	ClientSecret string `env:"THINGSPACE_CLIENT_SECRET"`
	Username     string `env:"THINGSPACE_USERNAME"`
	Password     string `env:"THINGSPACE_PASSWORD"`
	AccountName  string `env:"THINGSPACE_ACCOUNT_NAME"`

	DB       string `env:"THINGSYNC_DB, default=thingsync.duckdb"`
	Snapshot string `env:"THINGSYNC_SNAPSHOT"`
	Schedule string `env:"THINGSYNC_SCHEDULE, default=0 2 * * *"`
	Streams  string `env:"THINGSYNC_STREAMS, default=usage,connections,rated,aggregate"`
	Start    string `env:"THINGSYNC_START"`

	WindowUsage         string `env:"THINGSYNC_WINDOW_USAGE, default=367d"`
	WindowConnections   string `env:"THINGSYNC_WINDOW_CONNECTIONS, default=367d"`
	LookbackUsage       string `env:"THINGSYNC_LOOKBACK_USAGE, default=3d"`
	LookbackConnections string `env:"THINGSYNC_LOOKBACK_CONNECTIONS, default=1d"`
	IdleRecheck         string `env:"THINGSYNC_IDLE_RECHECK, default=7d"`

	Concurrency string `env:"THINGSYNC_CONCURRENCY, default=8"`
	RateLimit   string `env:"THINGSYNC_RATE_LIMIT, default=10"`
	MaxAnswerMB string `env:"THINGSYNC_MAX_ANSWER_MB, default=16"`
	RunBudget   string `env:"THINGSYNC_RUN_BUDGET"`

	HTTPAddr         string `env:"THINGSYNC_HTTP_ADDR, default=:8080"`
	CallbackURL      string `env:"THINGSYNC_CALLBACK_URL"`
	CallbackUsername string `env:"THINGSYNC_CALLBACK_USERNAME"`
	CallbackPassword string `env:"THINGSYNC_CALLBACK_PASSWORD"`

	LogLevel  string `env:"THINGSYNC_LOG_LEVEL, default=info"`
	LogFormat string `env:"THINGSYNC_LOG_FORMAT"`
}

// Error lists every problem found in the environment.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "configuration: " + strings.Join(e.Problems, "; ")
}

// Needs says which parts of the configuration a command requires.
type Needs struct {
	// API: the ThingSpace credentials and account (sync, backfill, run, check).
	API bool
	// ScheduleFloor is the shortest @every interval accepted (0:
	// MinScheduleInterval); the daemon's tests lower it to run often.
	ScheduleFloor time.Duration
}

// MinScheduleInterval is the shortest interval between scheduled runs:
// cron's own resolution. A shorter @every would start runs back to back.
const MinScheduleInterval = time.Minute

// Rate bounds. A request, the bearer token's included, may wait at most
// requestWait for its turn under the ceiling (the client's per-request
// timeout); with every device in flight queued ahead of it, the ceiling
// must let THINGSYNC_CONCURRENCY requests through in that time, or token
// renewals fail. The top is far above any account's real ceiling.
const (
	requestWait = 60 * time.Second
	MaxRate     = 100000
)

// Load reads and validates the environment. now fixes "12 months ago", the
// default of THINGSYNC_START.
func Load(ctx context.Context, lookuper envconfig.Lookuper, now time.Time, needs Needs) (*Config, error) {
	var r raw
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &r, Lookuper: lookuper}); err != nil {
		return nil, fmt.Errorf("read environment: %w", err)
	}
	var problems []string
	bad := func(name, format string, args ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, args...))
	}

	cfg := &Config{
		BaseURL:          strings.TrimRight(strings.TrimSpace(r.BaseURL), "/"),
		ClientID:         r.ClientID,
		ClientSecret:     NewSecret(r.ClientSecret),
		Username:         r.Username,
		Password:         NewSecret(r.Password),
		AccountName:      strings.TrimSpace(r.AccountName),
		DB:               r.DB,
		Snapshot:         r.Snapshot,
		Schedule:         strings.TrimSpace(r.Schedule),
		HTTPAddr:         r.HTTPAddr,
		CallbackURL:      strings.TrimSpace(r.CallbackURL),
		CallbackUsername: r.CallbackUsername,
		CallbackPassword: NewSecret(r.CallbackPassword),
		LogLevel:         strings.ToLower(strings.TrimSpace(r.LogLevel)),
		LogFormat:        strings.ToLower(strings.TrimSpace(r.LogFormat)),
	}

	if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("THINGSPACE_BASE_URL", "want an absolute http(s) URL, got %q", logging.RedactURL(r.BaseURL))
	}
	if needs.API {
		for _, v := range []struct{ name, val string }{
			{"THINGSPACE_CLIENT_ID", r.ClientID},
			{"THINGSPACE_CLIENT_SECRET", r.ClientSecret},
			{"THINGSPACE_USERNAME", r.Username},
			{"THINGSPACE_PASSWORD", r.Password},
			{"THINGSPACE_ACCOUNT_NAME", r.AccountName},
		} {
			if strings.TrimSpace(v.val) == "" {
				bad(v.name, "required")
			}
		}
	}
	if cfg.DB == "" {
		bad("THINGSYNC_DB", "must not be empty")
	} else if why := specialDBName(cfg.DB); why != "" {
		bad("THINGSYNC_DB", "%s: name a DuckDB file", why)
	}
	if cfg.Snapshot != "" && cfg.Snapshot == cfg.DB {
		bad("THINGSYNC_SNAPSHOT", "must differ from THINGSYNC_DB")
	}
	if sch, err := ParseSchedule(cfg.Schedule); err != nil {
		bad("THINGSYNC_SCHEDULE", "%v", err)
	} else {
		cfg.Cron = sch
		if floor := cmp.Or(needs.ScheduleFloor, MinScheduleInterval); interval(sch) > 0 && interval(sch) < floor {
			bad("THINGSYNC_SCHEDULE", "%q runs more often than once every %s", cfg.Schedule, strings.TrimSuffix(floor.String(), "0s"))
		}
	}

	streams, err := ParseStreams(r.Streams)
	if err != nil {
		bad("THINGSYNC_STREAMS", "%v", err)
	}
	cfg.Streams = streams

	cfg.Start = schema.RetentionFloor(now)
	if s := strings.TrimSpace(r.Start); s != "" {
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			bad("THINGSYNC_START", "want a date like 2026-01-31, got %q", s)
		} else if t.After(now) {
			bad("THINGSYNC_START", "%s is in the future", s)
		} else {
			cfg.Start = t
		}
	}

	for _, d := range []struct {
		name string
		val  string
		dst  *time.Duration
		min  time.Duration
	}{
		{"THINGSYNC_WINDOW_USAGE", r.WindowUsage, &cfg.WindowUsage, time.Hour},
		{"THINGSYNC_WINDOW_CONNECTIONS", r.WindowConnections, &cfg.WindowConnections, time.Hour},
		{"THINGSYNC_LOOKBACK_USAGE", r.LookbackUsage, &cfg.LookbackUsage, 0},
		{"THINGSYNC_LOOKBACK_CONNECTIONS", r.LookbackConnections, &cfg.LookbackConnections, 0},
		{"THINGSYNC_IDLE_RECHECK", r.IdleRecheck, &cfg.IdleRecheck, 0},
	} {
		v, err := ParseDuration(d.val)
		switch {
		case err != nil:
			bad(d.name, "%v", err)
		case v < d.min:
			bad(d.name, "%s is shorter than %s", d.val, d.min)
		default:
			*d.dst = v
		}
	}

	if strings.TrimSpace(r.RunBudget) != "" {
		v, err := ParseDuration(r.RunBudget)
		switch {
		case err != nil:
			bad("THINGSYNC_RUN_BUDGET", "%v", err)
		case v < 0:
			bad("THINGSYNC_RUN_BUDGET", "%s is negative (0 means no limit)", r.RunBudget)
		default:
			cfg.RunBudget, cfg.RunBudgetSet = v, true
		}
	}

	if n, err := strconv.Atoi(strings.TrimSpace(r.Concurrency)); err != nil || n < 1 || n > 1024 {
		bad("THINGSYNC_CONCURRENCY", "want an integer from 1 to 1024, got %q", r.Concurrency)
	} else {
		cfg.Concurrency = n
	}
	if f, auto, err := ParseRate(r.RateLimit, cfg.Concurrency); err != nil {
		bad("THINGSYNC_RATE_LIMIT", "%v", err)
	} else {
		cfg.RateLimit, cfg.RateAuto = f, auto
	}

	if n, err := strconv.Atoi(strings.TrimSpace(r.MaxAnswerMB)); err != nil || n < 1 || n > 4096 {
		bad("THINGSYNC_MAX_ANSWER_MB", "want whole MiB from 1 to 4096, got %q", r.MaxAnswerMB)
	} else {
		cfg.MaxAnswerBytes = int64(n) << 20
	}

	if cfg.CallbackURL != "" {
		if u, err := url.Parse(cfg.CallbackURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("THINGSYNC_CALLBACK_URL", "want an absolute http(s) URL, got %q", cfg.CallbackURL)
		}
		if cfg.CallbackUsername == "" {
			bad("THINGSYNC_CALLBACK_USERNAME", "required with THINGSYNC_CALLBACK_URL")
		}
		if !cfg.CallbackPassword.IsSet() {
			bad("THINGSYNC_CALLBACK_PASSWORD", "required with THINGSYNC_CALLBACK_URL")
		}
	} else if cfg.HasStream("aggregate") {
		cfg.Streams = without(cfg.Streams, "aggregate")
		cfg.Notes = append(cfg.Notes, "aggregate stream off: THINGSYNC_CALLBACK_URL is not set")
	}

	if _, err := logging.ParseLevel(cfg.LogLevel); err != nil {
		bad("THINGSYNC_LOG_LEVEL", "want debug, info, warn or error, got %q", r.LogLevel)
	}
	switch cfg.LogFormat {
	case "", "json", "console":
	default:
		bad("THINGSYNC_LOG_FORMAT", "want json or console, got %q", r.LogFormat)
	}

	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return cfg, nil
}

// HasStream tells whether the stream is configured.
func (c *Config) HasStream(s string) bool {
	for _, v := range c.Streams {
		if v == s {
			return true
		}
	}
	return false
}

func without(list []string, drop string) []string {
	var out []string
	for _, v := range list {
		if v != drop {
			out = append(out, v)
		}
	}
	return out
}

// ParseStreams reads a comma-separated list of stream names.
func ParseStreams(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		p := strings.ToLower(strings.TrimSpace(part))
		if p == "" {
			continue
		}
		if !slices.Contains(schema.Streams(), p) {
			return nil, fmt.Errorf("unknown stream %q (want some of %s)", p, strings.Join(schema.Streams(), ","))
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no stream named")
	}
	return out, nil
}

var dayPart = regexp.MustCompile(`^(\d+(?:\.\d+)?)d(.*)$`)

// ParseDuration accepts Go durations plus a leading days part: "3d",
// "1d12h", "36h".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var total time.Duration
	if m := dayPart.FindStringSubmatch(s); m != nil {
		days, err := strconv.ParseFloat(m[1], 64)
		if err != nil || days > 100000 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		total = time.Duration(days * float64(24*time.Hour))
		s = m[2]
		if s == "" {
			return total, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (want e.g. 30d, 36h, 1d12h)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	if total+d < total {
		return 0, fmt.Errorf("bad duration %q: too long", s)
	}
	return total + d, nil
}

// DefaultAutoRate is the most THINGSYNC_RATE_LIMIT=auto may reach.
const DefaultAutoRate = 100

// ParseRate reads THINGSYNC_RATE_LIMIT: requests per second, a finite
// number from what concurrency devices in flight need (see requestWait)
// up to MaxRate, a fixed ceiling; or auto (auto: true), the client finding
// the account's ceiling itself, never above MAX in auto:MAX (default
// DefaultAutoRate), which has the same bounds. concurrency 0: not known,
// at least one device.
func ParseRate(s string, concurrency int) (limit float64, auto bool, err error) {
	v := strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(strings.ToLower(v), "auto"); ok {
		most, ok := strings.CutPrefix(rest, ":")
		if rest == "" {
			most, ok = strconv.Itoa(DefaultAutoRate), true
		}
		if !ok {
			return 0, false, fmt.Errorf("want a number of requests per second, auto or auto:MAX, got %q", s)
		}
		f, err := parseRate(most, concurrency)
		if err != nil {
			return 0, false, fmt.Errorf("auto:MAX: %w", err)
		}
		return f, true, nil
	}
	f, err := parseRate(v, concurrency)
	return f, false, err
}

func parseRate(s string, concurrency int) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("want requests per second as a number, auto or auto:MAX, got %q", s)
	}
	least := float64(max(concurrency, 1)) / requestWait.Seconds()
	switch {
	case f <= 0 || f > MaxRate:
		return 0, fmt.Errorf("want requests per second above 0 and at most %d, got %q", MaxRate, s)
	case f < least:
		return 0, fmt.Errorf("%s requests per second cannot serve %d devices in flight (THINGSYNC_CONCURRENCY): a request may wait %g s for its turn; "+
			"want at least %.3g, or fewer devices in flight", strings.TrimSpace(s), max(concurrency, 1), requestWait.Seconds(), least)
	}
	return f, nil
}

// ParseSchedule parses a cron spec: five fields, descriptors such as
// @daily or @every 1h, and an optional CRON_TZ= prefix. @every takes the
// durations of the other variables (30d, 1d12h, 90m) and must be positive
// (cron runs a shorter one than a second every second).
func ParseSchedule(spec string) (cron.Schedule, error) {
	orig := spec
	spec = strings.TrimSpace(spec)
	tz, rest := "", spec
	if strings.HasPrefix(rest, "CRON_TZ=") || strings.HasPrefix(rest, "TZ=") {
		tz, rest, _ = strings.Cut(rest, " ")
		tz, rest = tz+" ", strings.TrimSpace(rest)
	}
	if every, ok := strings.CutPrefix(rest, "@every"); ok && (every == "" || every[0] == ' ' || every[0] == '\t') {
		d, err := ParseDuration(every)
		if err != nil {
			return nil, fmt.Errorf("bad cron spec %q: %v", orig, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("bad cron spec %q: @every needs an interval above zero", orig)
		}
		// cron reads Go durations only: hand it the days as hours.
		spec = tz + "@every " + d.String()
	}
	p := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	sch, err := p.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("bad cron spec %q: %v", orig, err)
	}
	return sch, nil
}

// interval is an @every schedule's period; 0 for calendar schedules,
// which cron cannot fire more than once a minute.
func interval(s cron.Schedule) time.Duration {
	if c, ok := s.(cron.ConstantDelaySchedule); ok {
		return c.Delay
	}
	return 0
}

// specialDBName says why a THINGSYNC_DB value is not a file path DuckDB
// opens as such: ":memory:" keeps nothing, a "?" passes options to the
// driver, a "name:" prefix (md:, s3:) reaches another service.
func specialDBName(db string) string {
	switch {
	case strings.HasPrefix(db, ":memory:"):
		return ":memory: is an in-memory database that saves nothing"
	case strings.Contains(db, "?"):
		return "a path with ? would pass options to DuckDB"
	}
	if i := strings.IndexByte(db, ':'); i > 1 && !strings.ContainsAny(db[:i], `/\.`) {
		return fmt.Sprintf("%q names a DuckDB service, not a file", db[:i+1])
	}
	return ""
}
