// Package simulator is a faithful stand-in for the ThingSpace M2M API: an
// http.Handler that serves a deterministic account generated from a seed,
// behaves as the vendor's pages and NOTES.md describe (500-record pages with
// 202 and hasMoreData, retention, expiring tokens and sessions, vendor-format
// errors, callbacks) and can inject each fault a client must survive. Tests,
// the demo and the benchmarks run against it; it also tells the ground truth
// a complete warehouse must hold.
package simulator

import (
	"context"
	"crypto/subtle"
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

// Options configure a simulated account.
type Options struct {
	Seed           int64
	Devices        int
	AccountName    string // default "0000123456-00001"
	ClientID       string // default "sim-client"
	ClientSecret   string // default "sim-secret"
	Username       string // default "sim-user"
	Password       string // default "sim-password"
	Clock          Clock  // nil: real time
	DevicePageSize int    // default 2000, the API's maximum
	Faults         Faults
	Quirks         Quirks
	// CallbackClient delivers callbacks; nil: a client with a 10 s timeout.
	CallbackClient *http.Client
	// CallbackRetryInterval is the pause between re-deliveries of a callback
	// the listener did not accept (the vendor: about 5 minutes).
	CallbackRetryInterval time.Duration
	// CallbackDelay is how long after a promo aggregate request its
	// callbacks start (default 50 ms).
	CallbackDelay time.Duration
}

// Faults are the failures the simulator injects. Ratios are fractions of
// data requests in [0, 1].
type Faults struct {
	Latency    time.Duration // added to every request
	Rate429    float64       // share of data requests answered 429
	RetryAfter time.Duration // Retry-After on those 429s (0: no header)
	Rate5xx    float64       // share answered 500/502/503
	// FailDevices are identifiers (of any kind) whose history and rated
	// requests always fail with HTTP 500.
	FailDevices []string
	// SessionExpiryEvery: every Nth authenticated request finds its session
	// expired (REQUEST_FAILED.SessionToken.Expired).
	SessionExpiryEvery int
	// MaxRange: history requests spanning more than this fail with
	// REQUEST_FAILED.UnexpectedError, as a request the API cannot answer in
	// 30 seconds does.
	MaxRange time.Duration
	// CacheRepeats: with MaxRange, the identical request sent again within
	// 60 s is answered, as the vendor's legacy page says (the first run kept
	// going and cached its result).
	CacheRepeats bool
	// RateCeiling: above this many requests in any 1-second window the
	// simulator answers 429 (0: none).
	RateCeiling float64
	// RejectLogin: every login fails as with a wrong password.
	RejectLogin bool
	// BearerTTL shortens the life of bearer tokens (0: the API's hour).
	BearerTTL time.Duration
}

// Quirks switch on data oddities seen in real payloads, on the first
// devices of the account, for the tests of tolerant decoding.
type Quirks struct {
	// OccuredAt: device 1's events carry the prose's "occuredAt" key.
	OccuredAt bool
	// NumbersAsNumbers: device 4's usage counts and attribute values are JSON
	// numbers, not strings.
	NumbersAsNumbers bool
	// UnknownKeys: device 0's usage records carry an attribute the schema
	// does not know ("RoamingSms") and a hostile one
	// (`x"; DROP TABLE usage_daily; --`); its events carry "NasPortType".
	UnknownKeys bool
	// BadTimestamp: device 0's usage record of 10 days ago has an
	// unparseable timestamp.
	BadTimestamp bool
	// BadValue: device 0's usage record of 11 days ago has MoSms "lots".
	BadValue bool
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
	if o.DevicePageSize <= 0 || o.DevicePageSize > 2000 {
		o.DevicePageSize = 2000
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
	tokenLife   = time.Hour
	sessionIdle = 20 * time.Minute
	pageSize    = 500
	lockAfter   = 5
)

// Simulator is the simulated API. Create it with New.
type Simulator struct {
	opts    Options
	epoch   time.Time // the day the account was generated
	devices []device
	byID    map[string]int // any identifier → device index

	faultsMu sync.RWMutex
	faults   Faults
	failing  map[string]bool

	mu          sync.Mutex
	token       string
	tokenIssued time.Time
	tokens      map[string]time.Time // bearer → issue time
	sessions    map[string]time.Time // session token → last use
	badLogins   int
	callbacks   map[string]callbackReg
	slowSeen    map[string]time.Time // too-long requests seen, for CacheRepeats
	stats       Stats
	window      []time.Time // arrival times in the last second

	seq     atomic.Uint64
	authReq atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Stats counts what the simulator saw.
type Stats struct {
	TokenRequests      int
	Logins             int // attempts, rejected ones included
	FailedLogins       int
	Logouts            int
	Requests           map[string]int // by endpoint name
	DeviceRequests     map[string]int // by endpoint + " " + kind:id
	Status             map[int]int
	Throttled          int // 429s answered for exceeding RateCeiling
	PeakRPS            float64
	CallbacksDelivered int // callbacks the listener accepted
	CallbackAttempts   int
}

// New builds the simulated account.
func New(opts Options) *Simulator {
	opts.setDefaults()
	s := &Simulator{
		opts:      opts,
		byID:      make(map[string]int, opts.Devices*4),
		tokens:    map[string]time.Time{},
		sessions:  map[string]time.Time{},
		callbacks: map[string]callbackReg{},
		slowSeen:  map[string]time.Time{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.epoch = dayOf(opts.Clock.Now())
	s.devices = make([]device, opts.Devices)
	for i := range s.devices {
		s.devices[i] = s.genDevice(i)
		for _, id := range s.devices[i].ids {
			s.byID[id.ID] = i
		}
	}
	s.SetFaults(opts.Faults)
	s.ResetStats()
	return s
}

// Close stops callback deliveries in flight.
func (s *Simulator) Close() {
	s.cancel()
	s.wg.Wait()
}

// SetFaults replaces the injected faults; the next requests see them.
func (s *Simulator) SetFaults(f Faults) {
	failing := make(map[string]bool, len(f.FailDevices))
	for _, id := range f.FailDevices {
		failing[id] = true
	}
	s.faultsMu.Lock()
	s.faults, s.failing = f, failing
	s.faultsMu.Unlock()
}

func (s *Simulator) currentFaults() (Faults, map[string]bool) {
	s.faultsMu.RLock()
	defer s.faultsMu.RUnlock()
	return s.faults, s.failing
}

// ExpireBearerTokens invalidates every bearer token issued so far.
func (s *Simulator) ExpireBearerTokens() {
	s.mu.Lock()
	s.tokens = map[string]time.Time{}
	s.token = ""
	s.mu.Unlock()
}

// ExpireSessions invalidates every session token.
func (s *Simulator) ExpireSessions() {
	s.mu.Lock()
	s.sessions = map[string]time.Time{}
	s.mu.Unlock()
}

// Stats returns a copy of the counters.
func (s *Simulator) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.stats
	c.Requests = copyMap(s.stats.Requests)
	c.DeviceRequests = copyMap(s.stats.DeviceRequests)
	c.Status = copyMap(s.stats.Status)
	return c
}

// ResetStats zeroes the counters.
func (s *Simulator) ResetStats() {
	s.mu.Lock()
	s.stats = Stats{Requests: map[string]int{}, DeviceRequests: map[string]int{}, Status: map[int]int{}}
	s.window = nil
	s.mu.Unlock()
}

func copyMap[K comparable](m map[K]int) map[K]int {
	c := make(map[K]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// AccountName is the simulated billing account.
func (s *Simulator) AccountName() string { return s.opts.AccountName }

// Credentials returns the client id and secret, username and password the
// simulator accepts.
func (s *Simulator) Credentials() (clientID, clientSecret, username, password string) {
	return s.opts.ClientID, s.opts.ClientSecret, s.opts.Username, s.opts.Password
}

// Now is the simulator's clock.
func (s *Simulator) Now() time.Time { return s.opts.Clock.Now().UTC() }

// rnd returns a deterministic pseudo-random number in [0, 1) for fault
// ratios: the n-th request of a run always gets the same draw.
func (s *Simulator) rnd() float64 {
	return float64(mix(uint64(s.opts.Seed), s.seq.Add(1), 9)>>11) / (1 << 53)
}

const m2m = "/api/m2m/v1"

// ServeHTTP answers one API request.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusWriter{ResponseWriter: w}
	endpoint := s.route(r)
	defer func() { s.count(endpoint, "", rec.status) }()
	f, _ := s.currentFaults()
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return
		}
	}
	if s.throttle(f.RateCeiling) {
		rec.Header().Set("Retry-After", "1")
		writeError(rec, http.StatusTooManyRequests, "REQUEST_FAILED.TooManyRequests", "rate limit exceeded")
		return
	}
	path := r.URL.Path
	switch {
	case path == "/api/ts/v1/oauth2/token" && r.Method == http.MethodPost:
		s.serveToken(rec, r)
	case !strings.HasPrefix(path, m2m+"/"):
		writeError(rec, http.StatusNotFound, "INPUT_INVALID.RequestUndefined", "no such resource")
	default:
		if !s.checkBearer(rec, r) {
			return
		}
		if path == m2m+"/session/login" && r.Method == http.MethodPost {
			s.serveLogin(rec, r)
			return
		}
		if !s.checkSession(rec, r, f) {
			return
		}
		s.serveM2M(rec, r, endpoint, f)
	}
}

func (s *Simulator) route(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, m2m)
	switch {
	case r.URL.Path == "/api/ts/v1/oauth2/token":
		return "token"
	case p == "/session/login":
		return "login"
	case p == "/session/logout":
		return "logout"
	case p == "/devices/actions/list":
		return "devices"
	case p == "/devices/usage/actions/list":
		return "usage"
	case p == "/devices/connections/actions/listHistory":
		return "connections"
	case p == "/devices/usage/actions/ratedusage":
		return "rated"
	case p == "/devices/usage/actions/promoaggregateusage":
		return "aggregate"
	case strings.HasPrefix(p, "/callbacks/"):
		return "callbacks"
	}
	return "other"
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Simulator) count(endpoint, device string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if device != "" {
		s.stats.DeviceRequests[endpoint+" "+device]++
		return
	}
	s.stats.Requests[endpoint]++
	s.stats.Status[status]++
}

// throttle records the request's arrival and tells whether it exceeds the
// rate ceiling. The window is real time: rates are about the wire.
func (s *Simulator) throttle(ceiling float64) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := 0
	for cut < len(s.window) && now.Sub(s.window[cut]) >= time.Second {
		cut++
	}
	s.window = append(s.window[cut:], now)
	if n := float64(len(s.window)); n > s.stats.PeakRPS {
		s.stats.PeakRPS = n
	}
	if ceiling > 0 && float64(len(s.window)) > ceiling {
		s.stats.Throttled++
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in the vendor's error format.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"errorCode": "UnifiedWebService." + code, "errorMessage": msg})
}

// writeFault answers in the API gateway's format.
func writeFault(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{"fault": map[string]any{
		"code": code, "message": msg, "description": msg + ". Make sure you have provided the correct security credentials",
	}})
}

func (s *Simulator) newToken(prefix string) string {
	n := s.seq.Add(1)
	h1, h2 := mix(uint64(s.opts.Seed), n, 11), mix(uint64(s.opts.Seed), n, 12)
	return fmt.Sprintf("%s%08x-%04x-%04x-%04x-%012x", prefix, uint32(h1), uint16(h1>>32), uint16(h1>>48), uint16(h2), h2>>16&0xffffffffffff)
}

func (s *Simulator) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.TokenRequests++
	s.mu.Unlock()
	user, pass, ok := r.BasicAuth()
	if !ok {
		writeFault(w, 900902, "Missing Credentials")
		return
	}
	if subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.opts.ClientSecret)) != 1 {
		writeFault(w, 900901, "Invalid Credentials")
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	now := s.Now()
	life := s.tokenLife()
	s.mu.Lock()
	// Asked again inside its hour, the vendor returns the same token.
	if s.token == "" || now.Sub(s.tokenIssued) >= life {
		s.token, s.tokenIssued = s.newToken(""), now
		s.tokens[s.token] = now
	}
	tok, left := s.token, life-now.Sub(s.tokenIssued)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "scope": "am_application_scope default", "token_type": "Bearer",
		"expires_in": int(left / time.Second),
	})
}

func (s *Simulator) tokenLife() time.Duration {
	if f, _ := s.currentFaults(); f.BearerTTL > 0 {
		return f.BearerTTL
	}
	return tokenLife
}

func (s *Simulator) checkBearer(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(h, "Bearer ") {
		writeFault(w, 900902, "Missing Credentials")
		return false
	}
	tok := strings.TrimPrefix(h, "Bearer ")
	now := s.Now()
	s.mu.Lock()
	issued, ok := s.tokens[tok]
	s.mu.Unlock()
	if !ok || now.Sub(issued) >= s.tokenLife() {
		writeFault(w, 900901, "Invalid Credentials")
		return false
	}
	return true
}

func (s *Simulator) serveLogin(w http.ResponseWriter, r *http.Request) {
	var body struct{ Username, Password string }
	err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body)
	f, _ := s.currentFaults()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Logins++
	if s.badLogins >= lockAfter {
		s.stats.FailedLogins++
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.UserLocked", "the account is locked after too many failed logins; contact support")
		return
	}
	if err != nil || f.RejectLogin ||
		subtle.ConstantTimeCompare([]byte(body.Username), []byte(s.opts.Username)) != 1 ||
		subtle.ConstantTimeCompare([]byte(body.Password), []byte(s.opts.Password)) != 1 {
		s.badLogins++
		s.stats.FailedLogins++
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.UserCredentials.Invalid", "invalid username or password")
		return
	}
	s.badLogins = 0
	tok := s.newToken("")
	s.sessions[tok] = s.Now()
	writeJSON(w, http.StatusOK, map[string]string{"sessionToken": tok})
}

func (s *Simulator) checkSession(w http.ResponseWriter, r *http.Request, f Faults) bool {
	tok := r.Header.Get("VZ-M2M-Token")
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.sessions[tok]
	switch {
	case tok == "" || !ok:
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.SessionToken.Invalid", "session token is invalid")
		return false
	case now.Sub(last) >= sessionIdle:
		delete(s.sessions, tok)
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.SessionToken.Expired", "session token expired")
		return false
	}
	if n := f.SessionExpiryEvery; n > 0 && s.authReq.Add(1)%uint64(n) == 0 {
		delete(s.sessions, tok)
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.SessionToken.Expired", "session token expired")
		return false
	}
	s.sessions[tok] = now
	return true
}

func (s *Simulator) serveM2M(w http.ResponseWriter, r *http.Request, endpoint string, f Faults) {
	if r.Method == http.MethodPost && endpoint != "callbacks" && endpoint != "logout" {
		switch x := s.rnd(); {
		case x < f.Rate429:
			if f.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
			}
			writeError(w, http.StatusTooManyRequests, "REQUEST_FAILED.TooManyRequests", "too many requests")
			return
		case x < f.Rate429+f.Rate5xx:
			codes := []int{500, 502, 503}
			writeError(w, codes[int(x*1000)%3], "REQUEST_FAILED.UnexpectedError", "service unavailable")
			return
		}
	}
	switch endpoint {
	case "logout":
		s.mu.Lock()
		delete(s.sessions, r.Header.Get("VZ-M2M-Token"))
		s.stats.Logouts++
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]bool{"success": true})
	case "devices":
		s.serveDevices(w, r)
	case "usage", "connections":
		s.serveHistory(w, r, endpoint, f)
	case "rated":
		s.serveRated(w, r)
	case "aggregate":
		s.serveAggregate(w, r)
	case "callbacks":
		s.serveCallbacks(w, r)
	default:
		writeError(w, http.StatusNotFound, "INPUT_INVALID.RequestUndefined", "no such resource")
	}
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	return dec.Decode(v)
}

type wireID struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

var knownKinds = map[string]bool{"iccid": true, "imei": true, "mdn": true, "msisdn": true, "meid": true, "esn": true, "eid": true, "imsi": true}

// lookup finds the device an identifier names, answering the vendor's error
// when it cannot.
func (s *Simulator) lookup(w http.ResponseWriter, id wireID) (device, bool) {
	kind := strings.ToLower(id.Kind)
	if !knownKinds[kind] {
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.Device.Kind.Invalid", "device kind is invalid")
		return device{}, false
	}
	i, ok := s.byID[id.ID]
	if !ok || s.devices[i].id(kind) != id.ID {
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.DeviceNotFound", "device not found")
		return device{}, false
	}
	return s.devices[i], true
}

func (s *Simulator) serveDevices(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AccountName         string `json:"accountName"`
		LargestDeviceIDSeen *int64 `json:"largestDeviceIdSeen"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.RequestUndefined", "request body is not valid")
		return
	}
	if body.AccountName != s.opts.AccountName {
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.AccountNotFound", "account not found")
		return
	}
	var after int64 = -1
	if body.LargestDeviceIDSeen != nil {
		after = *body.LargestDeviceIDSeen
	}
	// Devices are generated in apiID order.
	lo := 0
	for lo < len(s.devices) && s.devices[lo].apiID <= after {
		lo++
	}
	hi := min(lo+s.opts.DevicePageSize, len(s.devices))
	page := make([]map[string]any, 0, hi-lo)
	for _, d := range s.devices[lo:hi] {
		page = append(page, s.deviceJSON(d))
	}
	more := hi < len(s.devices)
	status := http.StatusOK
	if more {
		status = http.StatusAccepted
	}
	writeJSON(w, status, map[string]any{"hasMoreData": more, "devices": page})
}

func (s *Simulator) deviceJSON(d device) map[string]any {
	ids := make([]map[string]string, len(d.ids))
	for i, id := range d.ids {
		ids[i] = map[string]string{"id": id.ID, "kind": d.spelled[i]}
	}
	created := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(d.index) * time.Hour)
	return map[string]any{
		"accountName": s.opts.AccountName,
		"deviceIds":   ids,
		"carrierInformations": []map[string]string{{
			"carrierName": "Verizon Wireless", "servicePlan": "M2M-4G-5GB", "state": d.state,
		}},
		"connected":           d.state == "active" && !d.silent,
		"createdAt":           created.Format(time.RFC3339),
		"extendedAttributes":  []map[string]string{{"key": "DeviceId", "value": strconv.FormatInt(d.apiID, 10)}},
		"groupNames":          []string{"Default: " + s.opts.AccountName},
		"ipAddress":           "0.0.0.0",
		"lastActivationDate":  created.Add(24 * time.Hour).Format(time.RFC3339),
		"lastConnectionDate":  "",
		"billingCycleEndDate": nil,
	}
}

type historyRequest struct {
	DeviceID wireID `json:"deviceId"`
	Earliest string `json:"earliest"`
	Latest   string `json:"latest"`
}

func parseWhen(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func (s *Simulator) serveHistory(w http.ResponseWriter, r *http.Request, endpoint string, f Faults) {
	var req historyRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.RequestUndefined", "request body is not valid")
		return
	}
	dev, ok := s.lookup(w, req.DeviceID)
	if !ok {
		return
	}
	s.countDevice(endpoint, dev)
	earliest, ok1 := parseWhen(req.Earliest)
	latest, ok2 := parseWhen(req.Latest)
	if !ok1 || !ok2 {
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.Request.InvalidCharacter", "earliest or latest is not a date")
		return
	}
	_, failing := s.currentFaults()
	for _, id := range dev.ids {
		if failing[id.ID] {
			writeError(w, http.StatusInternalServerError, "REQUEST_FAILED.InternalError", "internal error")
			return
		}
	}
	if f.MaxRange > 0 && latest.Sub(earliest) > f.MaxRange && !s.cachedRepeat(endpoint, req, f.CacheRepeats) {
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.UnexpectedError", "An unexpected error occurred")
		return
	}
	now := s.Now()
	var b []byte
	var more bool
	if endpoint == "usage" {
		b, more = s.usagePage(dev, earliest, latest, now)
	} else {
		b, more = s.connectionPage(dev, earliest, latest, now)
	}
	w.Header().Set("Content-Type", "application/json")
	if more {
		w.WriteHeader(http.StatusAccepted)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	_, _ = w.Write(b)
}

func (s *Simulator) countDevice(endpoint string, d device) {
	s.mu.Lock()
	s.stats.DeviceRequests[endpoint+" "+d.identity().String()]++
	s.mu.Unlock()
}

// cachedRepeat tells whether a too-long request is answered because the
// identical one failed less than a minute ago.
func (s *Simulator) cachedRepeat(endpoint string, req historyRequest, enabled bool) bool {
	if !enabled {
		return false
	}
	key := endpoint + "|" + strings.ToLower(req.DeviceID.Kind) + ":" + req.DeviceID.ID + "|" + req.Earliest + "|" + req.Latest
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.slowSeen[key]; ok && now.Sub(t) < time.Minute {
		delete(s.slowSeen, key)
		return true
	}
	s.slowSeen[key] = now
	return false
}
