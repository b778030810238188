package simulator

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RegisterFlags binds the options and faults to command-line flags, for
// `thingsync simulate`.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&o.Seed, "seed", 1, "seed of the generated account (same seed, same data)")
	fs.IntVar(&o.Devices, "devices", 100, "number of devices in the account")
	fs.Func("fleet-mix", "activity classes of the devices, in parts: \"default\" (daily=25,intermittent=25,dormant=40,suspended=5,deactivated=5) or class=parts pairs; daily: a session and data every day; intermittent: a session every 2-8 days; dormant: no session for weeks, SMS-only usage days; suspended, deactivated: quiet for the last 10-59 days (unset: the fixed account)", func(v string) error {
		m, err := ParseFleetMix(v)
		o.Fleet = m
		return err
	})
	fs.Float64Var(&o.Churn.Change, "churn", 0, "share of active devices the device list shows with another state, service plan or groups in each period of --churn-every (deterministic by seed)")
	fs.Float64Var(&o.Churn.Leave, "churn-leave", 0, "share of devices left out of the device list in each period of --churn-every")
	fs.DurationVar(&o.Churn.Every, "churn-every", 0, "period of --churn and --churn-leave (0: 24h)")
	fs.StringVar(&o.AccountName, "account", "0000123456-00001", "billing account name")
	fs.StringVar(&o.ClientID, "client-id", "sim-client", "OAuth client id accepted")
	fs.StringVar(&o.ClientSecret, "client-secret", "sim-secret", "OAuth client secret accepted")
	fs.StringVar(&o.Username, "username", "sim-user", "login username accepted")
	fs.StringVar(&o.Password, "password", "sim-password", "login password accepted")
	fs.IntVar(&o.DevicePageSize, "device-page-size", 2000, "devices per device-list page (at most 2000)")
	fs.IntVar(&o.HistoryPageSize, "history-page-size", 500, "usage or connection records per page (at most 500)")
	fs.DurationVar(&o.Faults.Latency, "latency", 0, "delay added to every request")
	fs.Float64Var(&o.Faults.Rate429, "rate-429", 0, "share of data requests answered 429")
	fs.DurationVar(&o.Faults.RetryAfter, "retry-after", 0, "Retry-After sent with injected 429s")
	fs.Float64Var(&o.Faults.Rate5xx, "rate-5xx", 0, "share of data requests answered 5xx")
	fs.Func("fail-device", "identifier of a device whose data requests always fail (repeatable)", func(v string) error {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				o.Faults.FailDevices = append(o.Faults.FailDevices, id)
			}
		}
		return nil
	})
	fs.IntVar(&o.Faults.FailDeviceListAfter, "fail-device-list-after", 0, "fail device-list requests past this many devices (0: never)")
	fs.IntVar(&o.Faults.SessionExpiryEvery, "session-expiry-every", 0, "expire the session every N requests")
	fs.Func("max-range", "refuse usage and connection requests spanning more than this (e.g. 90d) with 400 INPUT_INVALID.DateRange", func(v string) error {
		d, err := parseDays(v)
		o.Faults.MaxRange = d
		return err
	})
	fs.Func("slow-range", "usage and connection requests spanning more than this (e.g. 8d) time out: REQUEST_FAILED.UnexpectedError", func(v string) error {
		d, err := parseDays(v)
		o.Faults.SlowRange = d
		return err
	})
	fs.BoolVar(&o.Faults.CacheRepeats, "cache-repeats", false, "answer an identical repeat of a too-long request within 60 s")
	fs.Float64Var(&o.Faults.RateCeiling, "rate-ceiling", 0, "requests per second above which to answer 429")
	fs.DurationVar(&o.Faults.BearerTTL, "bearer-ttl", 0, "bearer token lifetime (default the API's hour)")
	fs.BoolVar(&o.Faults.RejectLogin, "reject-login", false, "reject every login")
	fs.IntVar(&o.Faults.LoseCallbacks, "lose-callbacks", 0, "never send the callbacks of the first N promo aggregate requests")
	fs.IntVar(&o.Faults.HostileDevices, "hostile-devices", 0, "how many devices (the first of the list) the hostile history answers affect (0: one)")
	fs.DurationVar(&o.Faults.EndlessHistory, "endless-history", 0, "hostile devices' history never ends: 202 with a full page of made-up records this far apart, running past latest (e.g. 1s, 1h)")
	fs.Func("oversized-pages", "hostile devices' history pages are padded to this size, valid JSON with Content-Length (e.g. 60MB)", func(v string) error {
		n, err := parseSize(v)
		o.Faults.OversizedPages = n
		return err
	})
	fs.Func("giant-answer", "hostile devices' usage answers are this size, chunked without Content-Length (e.g. 200MB)", func(v string) error {
		n, err := parseSize(v)
		o.Faults.GiantAnswer = n
		return err
	})
	fs.Func("huge-values", "the first usage record of each of the hostile devices' pages carries an attribute value of this size (e.g. 12MB)", func(v string) error {
		n, err := parseSize(v)
		o.Faults.HugeValues = n
		return err
	})
	fs.BoolVar(&o.Faults.RepeatDeviceList, "repeat-device-list", false, "the device list never ends: 202 with devices already listed, largestDeviceIdSeen advancing")
	fs.DurationVar(&o.CallbackDelay, "callback-delay", 0, "delay before an aggregate request's callbacks (default 50ms)")
	fs.DurationVar(&o.CallbackRetryInterval, "callback-retry", 0, "pause between re-deliveries of a refused callback (default 5 min)")
	fs.BoolVar(&o.Quirks.OccuredAt, "quirk-occuredat", false, "device 1's events use the key occuredAt")
	fs.BoolVar(&o.Quirks.NumbersAsNumbers, "quirk-numbers", false, "device 4's attribute values are JSON numbers, not strings")
	fs.BoolVar(&o.Quirks.NumbersAsStrings, "quirk-number-strings", false, "device 5's bytesUsed and smsUsed are strings, not numbers")
	fs.BoolVar(&o.Quirks.UnknownKeys, "quirk-unknown-keys", false, "device 0 sends attribute keys the schema does not know, one of them hostile to SQL")
	fs.BoolVar(&o.Quirks.BadTimestamp, "quirk-bad-timestamp", false, "device 0's usage of 10 days ago has a malformed timestamp")
	fs.BoolVar(&o.Quirks.HostileKeys, "quirk-hostile-keys", false, "device 0's usage records carry keys with any bytes: NUL, quotes and SQL, line breaks, invalid UTF-8, other scripts, reserved words, a 10 KB key")
	fs.Int64Var(&o.Quirks.KeySeed, "quirk-random-keys", 0, "device 0's usage records carry keys of random bytes drawn from this seed (0: none)")
	fs.BoolVar(&o.Quirks.Implausible, "quirk-implausible", false, "device 0's usage of 12, 13 and 14 days ago has a negative bytesUsed, a date in 9999, the date 0001-01-01")
	fs.BoolVar(&o.Quirks.BadValue, "quirk-bad-value", false, "device 0's usage of 11 days ago has a non-numeric MoSms")
}

// parseDays reads a duration: Go's syntax with an optional leading number
// of days ("90d", "1d12h", "72h").
func parseDays(v string) (time.Duration, error) {
	s := strings.TrimSpace(v)
	var total time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || n > 100_000 {
			return 0, fmt.Errorf("want a duration such as 90d or 36h, got %q", v)
		}
		total, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return total, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration such as 90d or 36h, got %q", v)
	}
	return total + d, nil
}

// parseSize reads a byte count: a number with an optional unit, KB, MB and
// GB decimal, KiB, MiB and GiB binary ("60MB", "1.5GiB", "4096").
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if len(s) > len(u.suffix) && strings.EqualFold(s[len(s)-len(u.suffix):], u.suffix) {
			s, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*mult > 1<<40 {
		return 0, fmt.Errorf("want a size such as 60MB or 1GiB, got %q", v)
	}
	return int64(f * mult), nil
}

// ClientRate is the THINGSYNC_RATE_LIMIT to sync against a simulator whose
// RateCeiling is ceiling: without one, 2000 (the simulator has no ceiling
// of its own; the demo syncs at this rate); under one, a tenth below it,
// since the simulator counts requests over a sliding second and the
// client's evenly spaced ones would graze it.
func ClientRate(ceiling float64) string {
	if ceiling <= 0 {
		return "2000"
	}
	return strconv.FormatFloat(max(ceiling*0.9, 1.0/60), 'g', 4, 64)
}
