package simulator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a simulated account. The zero value of every field has
// a sane default.
type Options struct {
	Seed    int64
	Devices int
	// Fleet, when set, gives the devices activity classes in these
	// proportions (FleetMix, Class); the zero value keeps the account of
	// the fixed rules.
	Fleet          FleetMix
	AccountName    string // default "0000123456-00001"
	ClientID       string // default "sim-client"
	ClientSecret   string // default "sim-secret"
	Username       string // default "sim-user"
	Password       string // default "sim-password"
	Clock          Clock  // nil: real time
	DevicePageSize int    // default 2000, the API's maximum
	// HistoryPageSize is the most usage or connection records a page holds
	// (default 500, the API's). Within the 12-month retention usage never
	// needs a second page of 500: a smaller size lets tests page it. A
	// size of 1 never advances under the documented procedure (the
	// repeated boundary record fills every page): a test of a client's
	// guard against a cursor that does not move.
	HistoryPageSize int
	Faults          Faults
	Quirks          Quirks
	// Churn changes devices' state, service plan and groups in the device
	// list over time, and leaves devices out of it (zero: never).
	Churn Churn
	// CallbackClient delivers callbacks; nil: a client with a 10 s timeout.
	CallbackClient *http.Client
	// CallbackRetryInterval is the pause between re-deliveries of a callback
	// the listener did not accept (default 5 minutes, as the vendor).
	CallbackRetryInterval time.Duration
	// CallbackDelay is how long after a promo aggregate request its
	// callbacks start (default 50 ms).
	CallbackDelay time.Duration
	// RequestLog, if above 0, keeps the first RequestLog device requests
	// in the order they arrived (RequestLog): tests check the order in
	// which a client visits devices.
	RequestLog int
}

// Faults are the failures the simulator injects; SetFaults changes them
// while it serves. Ratios are fractions of data requests in [0, 1]; data
// requests are those of the devices, usage, connections, rated and
// aggregate endpoints.
type Faults struct {
	Latency    time.Duration // added to every request
	Rate429    float64       // share of data requests answered 429
	RetryAfter time.Duration // Retry-After on those 429s (0: no header)
	Rate5xx    float64       // share answered 500, 502 or 503
	// FailDevices are identifiers (of any of a device's kinds) whose usage,
	// connection and rated requests always fail: HTTP 500 with the vendor
	// error body REQUEST_FAILED.InternalError.
	FailDevices []string
	// FailDeviceListAfter: device-list requests for the devices past the
	// first this many fail (HTTP 500, REQUEST_FAILED.InternalError), as
	// when the list breaks off part-way through a large account (0: never).
	FailDeviceListAfter int
	// SessionExpiryEvery: every Nth request that carries a session finds it
	// expired (REQUEST_FAILED.SessionToken.Expired); the session is dropped.
	SessionExpiryEvery int
	// MaxRange: usage and connection requests whose latest − earliest
	// exceeds it are refused, HTTP 400 INPUT_INVALID.DateRange, whatever
	// the device holds, as an account whose API limits the range one
	// request may span (0: no limit). The vendor publishes no such limit
	// nor its error code: the code is the simulator's choice, the one the
	// aggregate endpoint uses for its period.
	MaxRange time.Duration
	// SlowRange: usage and connection requests whose latest − earliest
	// exceeds it fail with 400 REQUEST_FAILED.UnexpectedError, as a request
	// the API cannot answer within 30 seconds does (0: none).
	SlowRange time.Duration
	// CacheRepeats: with SlowRange, the identical request sent again within
	// 60 s (wall clock) is answered, as the vendor's legacy page says (the
	// first run kept going and cached its result).
	CacheRepeats bool
	// RateCeiling: a request arriving when more than this many arrived in
	// the last second (wall clock, every endpoint) is answered 429 with
	// Retry-After: 1 (0: no ceiling).
	RateCeiling float64
	// RejectLogin: every login fails as with a wrong password (and counts
	// towards the lock-out).
	RejectLogin bool
	// BearerTTL shortens the life of bearer tokens (0: the API's hour).
	BearerTTL time.Duration
	// LoseCallbacks: the next this many promo aggregate requests are
	// answered with a requestId but their callbacks are never sent, as
	// when the vendor loses a request (counted from when the faults are
	// set).
	LoseCallbacks int

	// The hostile answers below affect the first HostileDevices devices
	// of the list (0: the first one); the others are served as usual.
	HostileDevices int
	// EndlessHistory: the usage and connection history of the hostile
	// devices never ends: every answer is 202 with hasMoreData and a full
	// page of made-up records EndlessHistory apart, the first one that far
	// after the request's earliest, so the records run on past its latest
	// (0: off).
	EndlessHistory time.Duration
	// OversizedPages: every usage and connection page of the hostile
	// devices is padded to this many bytes with a "padding" member: valid
	// JSON, the records unchanged, sent with its Content-Length (0: off).
	OversizedPages int64
	// GiantAnswer: every usage answer of the hostile devices is this many
	// bytes, padded as OversizedPages but sent without a Content-Length
	// (chunked), so a client learns its size only by reading it (0: off).
	GiantAnswer int64
	// HugeValues: the first record of every usage page of the hostile
	// devices carries an attribute "Note" whose value is this many bytes:
	// valid JSON, a record that loads (0: off).
	HugeValues int64
	// RepeatDeviceList: the device list never ends: past the account's
	// last device it keeps answering 202 with hasMoreData and the first
	// page's devices again, their DeviceId moved past the request's
	// largestDeviceIdSeen so that the cursor advances.
	RepeatDeviceList bool
}

// hostile tells whether the hostile history answers apply to dev.
func (f *faultSet) hostile(dev *device) bool {
	return dev.index < max(1, f.HostileDevices)
}

// Quirks switch on oddities of real payloads, each on one device, for the
// tests of tolerant decoding and of the loader. All are off by default.
type Quirks struct {
	// OccuredAt: device 1's connection events carry the prose's misspelt
	// key "occuredAt" instead of "occurredAt".
	OccuredAt bool
	// NumbersAsNumbers: device 4's usage attribute values (MoSms, MtSms,
	// domesticUsage, internationalUsage) and the numeric attributes of its
	// connection events (BytesUsed, InputBytes, AccountSessionTime, …) are
	// JSON numbers instead of strings.
	NumbersAsNumbers bool
	// NumbersAsStrings: device 5's bytesUsed and smsUsed are strings
	// ("4096") instead of JSON numbers.
	NumbersAsStrings bool
	// UnknownKeys: device 0's usage records carry two attribute keys the
	// schema does not know: "RoamingSms" and the hostile
	// `x"; DROP TABLE usage_daily; --` (value "1"); its connection events
	// carry "NasPortType" ("Wireless-Other").
	UnknownKeys bool
	// BadTimestamp: device 0's usage record of 10 days before the clock's
	// day has the unparseable timestamp "2026-13-45T99:00:00Z".
	BadTimestamp bool
	// BadValue: device 0's usage record of 11 days before the clock's day
	// has MoSms "lots".
	BadValue bool
	// HostileKeys: device 0's usage records carry attribute keys no column
	// name or statement text can hold as they are: NUL, quotes and SQL,
	// line breaks, invalid UTF-8, other scripts, reserved words, the empty
	// key, a 10 KB key (OddKeys lists them).
	HostileKeys bool
	// Implausible: device 0's usage record of 12 days before the clock's
	// day has a negative bytesUsed, that of 13 days is dated 9999-12-31,
	// that of 14 days 0001-01-01.
	Implausible bool
	// KeySeed: when not 0, device 0's usage records carry
	// RandomKeysPerRecord attribute keys of random bytes (any byte, up to
	// 10 KB) drawn from this seed (OddKeys lists them).
	KeySeed int64
}

func (o *Options) setDefaults() {
	if o.AccountName == "" {
		o.AccountName = "0000123456-00001"
	}
	if o.ClientID == "" {
		o.ClientID = "sim-client"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "sim-secret"
	}
	if o.Username == "" {
		o.Username = "sim-user"
	}
	if o.Password == "" {
		o.Password = "sim-password"
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Devices < 0 {
		o.Devices = 0
	}
	if o.DevicePageSize <= 0 || o.DevicePageSize > maxDevicePage {
		o.DevicePageSize = maxDevicePage
	}
	if o.HistoryPageSize <= 0 || o.HistoryPageSize > pageSize {
		o.HistoryPageSize = pageSize
	}
	if o.CallbackClient == nil {
		o.CallbackClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.CallbackRetryInterval <= 0 {
		o.CallbackRetryInterval = 5 * time.Minute
	}
	if o.CallbackDelay <= 0 {
		o.CallbackDelay = 50 * time.Millisecond
	}
}

const (
	tokenLife     = time.Hour
	sessionIdle   = 20 * time.Minute
	pageSize      = 500
	maxDevicePage = 2000
	lockAfter     = 5
)

// Simulator is the simulated API. Create it with New; Close it to stop
// callback deliveries.
type Simulator struct {
	opts    Options
	epoch   time.Time // the clock's day when the account was generated
	oddKeys []OddKey  // the HostileKeys and KeySeed quirks' keys

	faults atomic.Pointer[faultSet]

	auth auth

	cbMu      sync.Mutex
	callbacks map[string]callbackReg

	slowMu   sync.Mutex
	slowSeen map[string]time.Time // too-long requests seen, for CacheRepeats

	ctr  counters
	rate *rateWindow

	logMu sync.Mutex
	log   []string // the first Options.RequestLog device requests

	seq     atomic.Uint64 // draws for fault ratios and token names
	authReq atomic.Uint64 // requests that carried a session, for SessionExpiryEvery
	lost    atomic.Int64  // aggregate requests still to lose (Faults.LoseCallbacks)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// faultSet is Faults with FailDevices as a set, swapped atomically.
type faultSet struct {
	Faults
	failing map[string]bool
}

// New builds the simulated account.
func New(opts Options) *Simulator {
	opts.setDefaults()
	s := &Simulator{
		opts:      opts,
		callbacks: map[string]callbackReg{},
		slowSeen:  map[string]time.Time{},
		rate:      newRateWindow(),
	}
	s.auth.init()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.epoch = dayOf(opts.Clock.Now())
	s.ctr.devices.init(opts.Devices * len(deviceEndpoints))
	s.oddKeys = oddKeys(opts.Quirks)
	s.SetFaults(opts.Faults)
	return s
}

// Close stops callback deliveries in flight and waits for them; no new ones
// start.
func (s *Simulator) Close() {
	s.cbMu.Lock()
	s.cancel()
	s.cbMu.Unlock()
	s.wg.Wait()
}

// SetFaults replaces the injected faults; the next requests see them.
// SessionExpiryEvery counts from here.
func (s *Simulator) SetFaults(f Faults) {
	s.authReq.Store(0)
	s.lost.Store(int64(f.LoseCallbacks))
	fs := &faultSet{Faults: f, failing: make(map[string]bool, len(f.FailDevices))}
	for _, id := range f.FailDevices {
		fs.failing[id] = true
	}
	s.faults.Store(fs)
}

func (s *Simulator) currentFaults() *faultSet { return s.faults.Load() }

// AccountName is the simulated billing account.
func (s *Simulator) AccountName() string { return s.opts.AccountName }

// Credentials returns the client id and secret, username and password the
// simulator accepts.
func (s *Simulator) Credentials() (clientID, clientSecret, username, password string) {
	return s.opts.ClientID, s.opts.ClientSecret, s.opts.Username, s.opts.Password
}

// ClientEnv is the environment a thingsync client needs to reach the
// simulator at baseURL (its THINGSPACE_ variables), with more added.
func (s *Simulator) ClientEnv(baseURL string, more map[string]string) map[string]string {
	env := map[string]string{
		"THINGSPACE_BASE_URL": baseURL, "THINGSPACE_CLIENT_ID": s.opts.ClientID, "THINGSPACE_CLIENT_SECRET": s.opts.ClientSecret,
		"THINGSPACE_USERNAME": s.opts.Username, "THINGSPACE_PASSWORD": s.opts.Password, "THINGSPACE_ACCOUNT_NAME": s.opts.AccountName,
	}
	for k, v := range more {
		env[k] = v
	}
	return env
}

// Now is the simulator's clock, in UTC.
func (s *Simulator) Now() time.Time { return s.opts.Clock.Now().UTC() }

// rnd returns a pseudo-random number in [0, 1) for fault ratios: the n-th
// draw of a simulator is the same on every run.
func (s *Simulator) rnd() float64 {
	return float64(mix(uint64(s.opts.Seed), s.seq.Add(1), 9)>>11) / (1 << 53)
}

const m2m = "/api/m2m/v1"

// ServeHTTP answers one API request.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ep := route(r.URL.Path)
	// The request is counted as its answer starts, before the client can
	// have it: a test that reads the counters after an answer sees it.
	rec := &statusWriter{ResponseWriter: w, count: func(status int) {
		s.ctr.requests[ep].Add(1)
		s.ctr.countStatus(status)
	}}
	defer rec.counted()
	f := s.currentFaults()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			rec.status = 499 // the client went away; counted, never sent
			return
		}
	}
	if n := s.rate.arrive(); f.RateCeiling > 0 && float64(n) > f.RateCeiling {
		s.ctr.throttled.Add(1)
		rec.Header().Set("Retry-After", "1")
		writeError(rec, http.StatusTooManyRequests, "REQUEST_FAILED.TooManyRequests", "Too many requests: the rate limit of the account is exceeded")
		return
	}
	switch ep {
	case epToken:
		if r.Method != http.MethodPost {
			writeError(rec, http.StatusMethodNotAllowed, "INPUT_INVALID.RequestUndefined", "method not allowed")
			return
		}
		s.serveToken(rec, r)
		return
	case epOther:
		writeError(rec, http.StatusNotFound, "INPUT_INVALID.RequestUndefined", "no such resource")
		return
	}
	if !s.checkBearer(rec, r) {
		return
	}
	if ep == epLogin {
		s.serveLogin(rec, r)
		return
	}
	if !s.checkSession(rec, r, f) {
		return
	}
	if ep != epCallbacks && ep != epLogout && r.Method != http.MethodPost {
		writeError(rec, http.StatusMethodNotAllowed, "INPUT_INVALID.RequestUndefined", "method not allowed")
		return
	}
	if ep == epDevices || ep == epUsage || ep == epConnections || ep == epRated || ep == epAggregate {
		if s.injectFailure(rec, f) {
			return
		}
	}
	switch ep {
	case epLogout:
		s.serveLogout(rec, r)
	case epDevices:
		s.serveDevices(rec, r, f)
	case epUsage, epConnections:
		s.serveHistory(rec, r, ep, f)
	case epRated:
		s.serveRated(rec, r, f)
	case epAggregate:
		s.serveAggregate(rec, r)
	case epCallbacks:
		s.serveCallbacks(rec, r)
	}
}

func route(path string) int {
	if path == "/api/ts/v1/oauth2/token" {
		return epToken
	}
	p, ok := strings.CutPrefix(path, m2m)
	if !ok {
		return epOther
	}
	switch p {
	case "/session/login":
		return epLogin
	case "/session/logout":
		return epLogout
	case "/devices/actions/list":
		return epDevices
	case "/devices/usage/actions/list":
		return epUsage
	case "/devices/connections/actions/listHistory":
		return epConnections
	case "/devices/usage/actions/ratedusage":
		return epRated
	case "/devices/usage/actions/promoaggregateusage":
		return epAggregate
	}
	if strings.HasPrefix(p, "/callbacks/") {
		return epCallbacks
	}
	return epOther
}

// injectFailure answers the Rate429 and Rate5xx faults.
func (s *Simulator) injectFailure(w http.ResponseWriter, f *faultSet) bool {
	if f.Rate429 <= 0 && f.Rate5xx <= 0 {
		return false
	}
	switch x := s.rnd(); {
	case x < f.Rate429:
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
		}
		writeError(w, http.StatusTooManyRequests, "REQUEST_FAILED.TooManyRequests", "Too many requests")
		return true
	case x < f.Rate429+f.Rate5xx:
		switch int(x*1e6) % 3 {
		case 0:
			writeError(w, http.StatusInternalServerError, "REQUEST_FAILED.UnexpectedError", "An unexpected error occurred")
		case 1:
			// [choice] A gateway in front of the service answers in HTML.
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n")
		default:
			writeError(w, http.StatusServiceUnavailable, "REQUEST_FAILED.ServiceUnavailable", "The service is temporarily unavailable")
		}
		return true
	}
	return false
}

type statusWriter struct {
	http.ResponseWriter
	status int
	count  func(status int)
	done   bool
}

// counted counts the answer once: when it starts, or, for one never sent,
// when the handler returns.
func (w *statusWriter) counted() {
	if !w.done {
		w.done = true
		w.count(w.status)
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.counted()
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.counted()
	return w.ResponseWriter.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errorCode":"UnifiedWebService.REQUEST_FAILED.UnexpectedError","errorMessage":"encoding"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

type errorJSON struct {
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// writeError answers in the vendor's error format; code is the part after
// the service prefix.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorJSON{ErrorCode: "UnifiedWebService." + code, ErrorMessage: msg})
}

type faultJSON struct {
	Fault struct {
		Code        int    `json:"code"`
		Message     string `json:"message"`
		Description string `json:"description"`
	} `json:"fault"`
}

// writeFault answers in the API gateway's format, HTTP 401.
func writeFault(w http.ResponseWriter, code int, msg, desc string) {
	var f faultJSON
	f.Fault.Code, f.Fault.Message, f.Fault.Description = code, msg, desc
	writeJSON(w, http.StatusUnauthorized, f)
}

// decodeBody reads a JSON request body into v; anything else (or more) is
// a malformed body.
func decodeBody(r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

func badBody(w http.ResponseWriter) {
	writeError(w, http.StatusBadRequest, "INPUT_INVALID.RequestUndefined", "The request body is not valid JSON of the expected shape")
}

type wireID struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

var knownKinds = map[string]bool{"iccid": true, "imei": true, "mdn": true, "msisdn": true, "meid": true, "esn": true, "eid": true, "imsi": true}

// lookup finds the device an identifier names (kind in any case, any of
// the device's identifiers), answering the vendor's error when it cannot.
func (s *Simulator) lookup(w http.ResponseWriter, id wireID) (*device, bool) {
	kind := strings.ToLower(id.Kind)
	if !knownKinds[kind] {
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.Device.Kind.Invalid", "The device kind is not valid")
		return nil, false
	}
	if id.ID == "" {
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.Device.Identifier.Invalid", "The device identifier is missing")
		return nil, false
	}
	i, ok := s.indexOf(kind, id.ID)
	if !ok {
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.DeviceNotFound", "Device not found: "+kind+" "+id.ID)
		return nil, false
	}
	d := s.device(i)
	return &d, true
}

func (s *Simulator) failing(f *faultSet, d *device) bool {
	if len(f.failing) == 0 {
		return false
	}
	for _, id := range d.ids {
		if f.failing[id.ID] {
			return true
		}
	}
	return false
}

func (s *Simulator) serveDevices(w http.ResponseWriter, r *http.Request, f *faultSet) {
	var req struct {
		AccountName         string `json:"accountName"`
		LargestDeviceIDSeen *int64 `json:"largestDeviceIdSeen"`
		MaxNumberOfDevices  int    `json:"maxNumberOfDevices"`
	}
	if !decodeBody(r, &req) {
		badBody(w)
		return
	}
	if req.AccountName != s.opts.AccountName {
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.AccountNotFound", "Account not found")
		return
	}
	after := int64(-1)
	if req.LargestDeviceIDSeen != nil {
		after = *req.LargestDeviceIDSeen
	}
	limit := s.opts.DevicePageSize
	if req.MaxNumberOfDevices > 0 && req.MaxNumberOfDevices < limit {
		limit = req.MaxNumberOfDevices
	}
	// Devices are generated in DeviceId order: find the first after the
	// cursor by bisection. Only the page's devices are generated.
	n := s.opts.Devices
	lo, hi := 0, n
	for lo < hi {
		m := (lo + hi) / 2
		if s.apiID(m) <= after {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if f.FailDeviceListAfter > 0 && lo >= f.FailDeviceListAfter {
		writeError(w, http.StatusInternalServerError, "REQUEST_FAILED.InternalError", "An internal error occurred")
		return
	}
	now := s.Now()
	end := min(lo+limit, n)
	page := struct {
		HasMoreData bool         `json:"hasMoreData"`
		Devices     []deviceJSON `json:"devices"`
	}{HasMoreData: end < n, Devices: make([]deviceJSON, 0, end-lo)}
	for i := lo; i < end; i++ {
		d := s.device(i)
		if !s.listing(&d, now).Listed {
			continue
		}
		page.Devices = append(page.Devices, s.deviceJSON(&d, now))
	}
	if f.RepeatDeviceList {
		page.HasMoreData = true
		if lo >= n {
			// Past the end: the first devices again, renumbered past the
			// cursor.
			for i := range min(limit, n) {
				d := s.device(i)
				d.apiID = after + 1 + int64(i)
				page.Devices = append(page.Devices, s.deviceJSON(&d, now))
			}
		}
	}
	status := http.StatusOK
	if page.HasMoreData {
		status = http.StatusAccepted
	}
	writeJSON(w, status, page)
}

type historyRequest struct {
	DeviceID wireID `json:"deviceId"`
	Earliest string `json:"earliest"`
	Latest   string `json:"latest"`
}

// parseWhen reads a request's date-time: RFC 3339, or without a zone (UTC),
// or a bare date.
func parseWhen(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func (s *Simulator) serveHistory(w http.ResponseWriter, r *http.Request, ep int, f *faultSet) {
	var req historyRequest
	if !decodeBody(r, &req) {
		badBody(w)
		return
	}
	dev, ok := s.lookup(w, req.DeviceID)
	if !ok {
		return
	}
	s.countDevice(ep, dev)
	earliest, ok1 := parseWhen(req.Earliest)
	latest, ok2 := parseWhen(req.Latest)
	if !ok1 || !ok2 {
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.Request.InvalidCharacter", "earliest and latest must be date-times")
		return
	}
	if s.failing(f, dev) {
		writeError(w, http.StatusInternalServerError, "REQUEST_FAILED.InternalError", "An internal error occurred")
		return
	}
	if f.MaxRange > 0 && latest.Sub(earliest) > f.MaxRange {
		s.ctr.refused.Add(1)
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.DateRange",
			fmt.Sprintf("The range from earliest to latest is longer than the %s one request may span", days(f.MaxRange)))
		return
	}
	if f.SlowRange > 0 && latest.Sub(earliest) > f.SlowRange && !s.cachedRepeat(ep, req, f.CacheRepeats) {
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.UnexpectedError", "An unexpected error occurred")
		return
	}
	now := s.Now()
	bp := getBuf()
	defer putBuf(bp)
	var more bool
	hostile := f.hostile(dev)
	switch {
	case hostile && f.EndlessHistory > 0:
		*bp, more = s.appendEndlessPage(*bp, ep, dev, earliest, f.EndlessHistory)
	case ep == epUsage:
		*bp, more = s.appendUsagePage(*bp, dev, earliest, latest, now)
	default:
		*bp, more = s.appendConnectionPage(*bp, dev, earliest, latest, now)
	}
	switch {
	case hostile && ep == epUsage && f.GiantAnswer > 0:
		writePadded(w, *bp, more, f.GiantAnswer, false)
	case hostile && ep == epUsage && f.HugeValues > 0:
		writeHugeValue(w, *bp, more, f.HugeValues)
	case hostile && f.OversizedPages > 0:
		writePadded(w, *bp, more, f.OversizedPages, true)
	default:
		writePage(w, *bp, more)
	}
}

// days writes a duration in days when it is a whole number of them.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// cachedRepeat tells whether a too-long request is answered because the
// identical one failed less than a minute ago.
func (s *Simulator) cachedRepeat(ep int, req historyRequest, enabled bool) bool {
	if !enabled {
		return false
	}
	key := endpoints[ep] + "|" + strings.ToLower(req.DeviceID.Kind) + ":" + req.DeviceID.ID + "|" + req.Earliest + "|" + req.Latest
	now := time.Now()
	s.slowMu.Lock()
	defer s.slowMu.Unlock()
	if t, ok := s.slowSeen[key]; ok && now.Sub(t) < time.Minute {
		return true
	}
	if len(s.slowSeen) > 10_000 {
		for k, t := range s.slowSeen {
			if now.Sub(t) >= time.Minute {
				delete(s.slowSeen, k)
			}
		}
	}
	s.slowSeen[key] = now
	return false
}

func (s *Simulator) serveRated(w http.ResponseWriter, r *http.Request, f *faultSet) {
	var req struct {
		DeviceID wireID `json:"deviceId"`
	}
	if !decodeBody(r, &req) {
		badBody(w)
		return
	}
	dev, ok := s.lookup(w, req.DeviceID)
	if !ok {
		return
	}
	s.countDevice(epRated, dev)
	if s.failing(f, dev) {
		writeError(w, http.StatusInternalServerError, "REQUEST_FAILED.InternalError", "An internal error occurred")
		return
	}
	mdn := dev.id("mdn")
	if mdn == "" {
		// [choice] Rated usage exists only for devices with a phone number.
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.DeviceNotFound", "No rated usage: the device has no MDN")
		return
	}
	ru := s.rated(dev, s.Now())
	var out ratedJSON
	di := &out.DeviceInformation
	di.BillingEndDate = ru.end.Format(ratedLayout)
	di.BillingResetDate = ru.reset.Format(ratedLayout)
	di.BillingStartDate = ru.start.Format(ratedLayout)
	di.DataUsage = ru.usage
	di.MDN, _ = strconv.ParseInt(mdn, 10, 64)
	di.Unit = ru.unit
	writeJSON(w, http.StatusOK, out)
}
