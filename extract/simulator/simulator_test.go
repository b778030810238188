package simulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// api is a bare HTTP client of the simulator for these tests: the real
// client is tested against the simulator in package extract.
type api struct {
	t       *testing.T
	srv     *httptest.Server
	sim     *Simulator
	bearer  string
	session string
}

func newAPI(t *testing.T, opts Options) *api {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = NewManualClock(t0)
	}
	sim := New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	return &api{t: t, srv: srv, sim: sim}
}

func (a *api) token() (int, map[string]any) {
	req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/api/ts/v1/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	id, secret, _, _ := a.sim.Credentials()
	req.SetBasicAuth(id, secret)
	return a.do(req)
}

func (a *api) do(req *http.Request) (int, map[string]any) {
	a.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"_raw": string(b)}
	}
	return resp.StatusCode, m
}

func (a *api) post(path string, body any) (int, map[string]any) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/api/m2m/v1"+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if a.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+a.bearer)
	}
	if a.session != "" {
		req.Header.Set("VZ-M2M-Token", a.session)
	}
	return a.do(req)
}

func (a *api) login() {
	a.t.Helper()
	st, tok := a.token()
	if st != 200 {
		a.t.Fatalf("token: %d %v", st, tok)
	}
	a.bearer = tok["access_token"].(string)
	_, _, user, pass := a.sim.Credentials()
	st, sess := a.post("/session/login", map[string]string{"username": user, "password": pass})
	if st != 200 {
		a.t.Fatalf("login: %d %v", st, sess)
	}
	a.session = sess["sessionToken"].(string)
}

func errorCode(m map[string]any) string {
	if f, ok := m["fault"].(map[string]any); ok {
		return "fault " + strings.TrimSuffix(strings.TrimSuffix(jsonString(f["code"]), ".0"), "")
	}
	s, _ := m["errorCode"].(string)
	return strings.TrimPrefix(s, "UnifiedWebService.")
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestDeterministic(t *testing.T) {
	bodies := make([]string, 2)
	for i := range bodies {
		a := newAPI(t, Options{Seed: 7, Devices: 10})
		a.login()
		id := a.sim.Devices()[0].Identity
		_, m := a.post("/devices/usage/actions/list", map[string]any{"deviceId": map[string]string{"kind": id.Kind, "id": id.ID},
			"earliest": "2026-10-01T00:00:00Z", "latest": "2026-11-01T00:00:00Z"})
		bodies[i] = jsonString(m)
	}
	if bodies[0] != bodies[1] || len(bodies[0]) < 1000 {
		t.Errorf("same seed served different or empty bodies: %d vs %d bytes", len(bodies[0]), len(bodies[1]))
	}
}

// Following the documented paging (earliest moves to the last record's
// time) yields every record, the boundary one twice.
func TestPagingBoundary(t *testing.T) {
	a := newAPI(t, Options{Seed: 3, Devices: 30})
	a.login()
	var dev TruthDevice
	for _, d := range a.sim.Devices() {
		if !d.Silent {
			dev = d
			break
		}
	}
	want := a.sim.TruthEvents(t0, time.Time{}, time.Time{}, dev.Identity)
	if len(want) < 1000 {
		t.Fatalf("too few events to page: %d", len(want))
	}
	earliest := retentionFloor(t0).Format(time.RFC3339)
	seen := map[string]int{}
	pages, repeats := 0, 0
	for {
		st, m := a.post("/devices/connections/actions/listHistory", map[string]any{
			"deviceId": map[string]string{"kind": dev.Identity.Kind, "id": dev.Identity.ID},
			"earliest": earliest, "latest": t0.Format(time.RFC3339)})
		pages++
		evs := m["connectionHistory"].([]any)
		more := m["hasMoreData"].(bool)
		if more != (st == 202) || len(evs) > 500 {
			t.Fatalf("page %d: status %d, hasMoreData %v, %d records", pages, st, more, len(evs))
		}
		for _, e := range evs {
			k := jsonString(e)
			if seen[k] > 0 {
				repeats++
			}
			seen[k]++
		}
		if !more {
			break
		}
		earliest = evs[len(evs)-1].(map[string]any)["occurredAt"].(string)
	}
	if len(seen) != len(want) || repeats != pages-1 || pages < 3 {
		t.Errorf("distinct %d (want %d), repeats %d over %d pages (want one per page boundary)", len(seen), len(want), repeats, pages)
	}
}

func TestRetentionAndRevisions(t *testing.T) {
	clock := NewManualClock(t0)
	a := newAPI(t, Options{Seed: 5, Devices: 5, Clock: clock})
	a.login()
	id := a.sim.Devices()[0].Identity
	fetch := func(from, to string) []any {
		_, m := a.post("/devices/usage/actions/list", map[string]any{"deviceId": map[string]string{"kind": id.Kind, "id": id.ID},
			"earliest": from, "latest": to})
		return m["usageHistory"].([]any)
	}
	if n := len(fetch("2025-01-01T00:00:00Z", "2025-11-21T00:00:00Z")); n != 0 {
		t.Errorf("served %d records older than 12 months", n)
	}
	old := fetch("2025-11-22T00:00:00Z", "2025-11-22T00:00:00Z")
	if len(old) != 1 {
		t.Fatalf("oldest retained day: %d records", len(old))
	}
	before := jsonString(fetch("2026-11-21T00:00:00Z", "2026-11-21T00:00:00Z"))
	settled := jsonString(fetch("2026-11-10T00:00:00Z", "2026-11-10T00:00:00Z"))
	clock.Advance(72 * time.Hour)
	a.login()
	if jsonString(fetch("2026-11-10T00:00:00Z", "2026-11-10T00:00:00Z")) != settled {
		t.Error("a settled day changed")
	}
	after := jsonString(fetch("2026-11-21T00:00:00Z", "2026-11-21T00:00:00Z"))
	truth := a.sim.TruthUsage(clock.Now(), time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), id)
	if before == after {
		t.Error("yesterday's values did not change as the clock moved on")
	}
	if len(truth) != 1 || !strings.Contains(after, `"smsUsed":`+itoa(truth[0].SMSUsed)) {
		t.Errorf("truth %+v does not match served %s", truth, after)
	}
}

func TestAuth(t *testing.T) {
	clock := NewManualClock(t0)
	a := newAPI(t, Options{Seed: 1, Devices: 3, Clock: clock})
	list := func() (int, map[string]any) {
		return a.post("/devices/actions/list", map[string]string{"accountName": a.sim.AccountName()})
	}
	if st, m := list(); st != 401 || errorCode(m) != "fault 900902" {
		t.Errorf("no bearer: %d %v", st, m)
	}
	a.login()
	_, tok2 := a.token()
	if tok2["access_token"] != a.bearer {
		t.Error("a second token request inside the hour returned a new token")
	}
	if st, _ := list(); st != 200 {
		t.Errorf("list after login: %d", st)
	}
	clock.Advance(21 * time.Minute)
	if st, m := list(); st != 400 || errorCode(m) != "REQUEST_FAILED.SessionToken.Expired" {
		t.Errorf("idle session: %d %v", st, m)
	}
	a.login()
	clock.Advance(61 * time.Minute)
	if st, m := list(); st != 401 || errorCode(m) != "fault 900901" {
		t.Errorf("expired bearer: %d %v", st, m)
	}
	_, tok3 := a.token()
	if tok3["access_token"] == a.bearer {
		t.Error("an expired token was handed out again")
	}
}

func TestLoginLockout(t *testing.T) {
	a := newAPI(t, Options{Seed: 1, Devices: 1})
	_, tok := a.token()
	a.bearer = tok["access_token"].(string)
	for i := 0; i < 5; i++ {
		if st, m := a.post("/session/login", map[string]string{"username": "sim-user", "password": "wrong"}); st != 400 || errorCode(m) != "INPUT_INVALID.UserCredentials.Invalid" {
			t.Fatalf("bad login %d: %d %v", i, st, m)
		}
	}
	if st, m := a.post("/session/login", map[string]string{"username": "sim-user", "password": "sim-password"}); st != 400 || errorCode(m) != "REQUEST_FAILED.UserLocked" {
		t.Errorf("after five failures: %d %v", st, m)
	}
	if s := a.sim.Stats(); s.Logins != 6 || s.FailedLogins != 6 {
		t.Errorf("stats %+v", s)
	}
}

func TestDevicePaging(t *testing.T) {
	a := newAPI(t, Options{Seed: 2, Devices: 25, DevicePageSize: 10})
	a.login()
	var cursor *int64
	var got int
	for pages := 1; ; pages++ {
		body := map[string]any{"accountName": a.sim.AccountName()}
		if cursor != nil {
			body["largestDeviceIdSeen"] = *cursor
		}
		st, m := a.post("/devices/actions/list", body)
		devs := m["devices"].([]any)
		got += len(devs)
		last := devs[len(devs)-1].(map[string]any)["extendedAttributes"].([]any)[0].(map[string]any)
		v := int64(0)
		_ = json.Unmarshal([]byte(last["value"].(string)), &v)
		cursor = &v
		if !m["hasMoreData"].(bool) {
			if st != 200 || pages != 3 {
				t.Errorf("last page: status %d after %d pages", st, pages)
			}
			break
		}
		if st != 202 {
			t.Errorf("page %d: status %d with more data", pages, st)
		}
	}
	if got != 25 {
		t.Errorf("listed %d devices, want 25", got)
	}
}

func TestFaults(t *testing.T) {
	a := newAPI(t, Options{Seed: 1, Devices: 3})
	a.login()
	id := a.sim.Devices()[0].Identity
	usage := func(from, to string) (int, map[string]any) {
		return a.post("/devices/usage/actions/list", map[string]any{"deviceId": map[string]string{"kind": strings.ToUpper(id.Kind), "id": id.ID},
			"earliest": from, "latest": to})
	}
	tests := []struct {
		name   string
		faults Faults
		status int
		code   string
	}{
		{"429", Faults{Rate429: 1, RetryAfter: 2 * time.Second}, 429, "REQUEST_FAILED.TooManyRequests"},
		{"5xx", Faults{Rate5xx: 1}, 0, "REQUEST_FAILED.UnexpectedError"},
		{"failing device", Faults{FailDevices: []string{id.ID}}, 500, "REQUEST_FAILED.InternalError"},
		{"range too long", Faults{MaxRange: 48 * time.Hour}, 400, "REQUEST_FAILED.UnexpectedError"},
		{"session expiry", Faults{SessionExpiryEvery: 1}, 400, "REQUEST_FAILED.SessionToken.Expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.login()
			a.sim.SetFaults(tt.faults)
			defer a.sim.SetFaults(Faults{})
			st, m := usage("2026-11-01T00:00:00Z", "2026-11-10T00:00:00Z")
			if (tt.status != 0 && st != tt.status) || (tt.status == 0 && st < 500) || errorCode(m) != tt.code {
				t.Errorf("status %d %v, want %d %s", st, m, tt.status, tt.code)
			}
		})
	}
	t.Run("cache repeats", func(t *testing.T) {
		a.login()
		a.sim.SetFaults(Faults{MaxRange: 48 * time.Hour, CacheRepeats: true})
		defer a.sim.SetFaults(Faults{})
		if st, _ := usage("2026-10-01T00:00:00Z", "2026-10-10T00:00:00Z"); st != 400 {
			t.Errorf("first: %d", st)
		}
		if st, _ := usage("2026-10-01T00:00:00Z", "2026-10-10T00:00:00Z"); st != 200 {
			t.Errorf("identical repeat: %d", st)
		}
	})
	t.Run("rate ceiling", func(t *testing.T) {
		a.login()
		a.sim.ResetStats()
		a.sim.SetFaults(Faults{RateCeiling: 5})
		defer a.sim.SetFaults(Faults{})
		var n429 int
		for i := 0; i < 12; i++ {
			if st, _ := usage("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"); st == 429 {
				n429++
			}
		}
		if s := a.sim.Stats(); n429 < 5 || s.Throttled != n429 || s.PeakRPS < 12 {
			t.Errorf("%d 429s, stats %+v", n429, s)
		}
	})
	t.Run("unknown device and bad kind", func(t *testing.T) {
		a.login()
		st, m := a.post("/devices/usage/actions/list", map[string]any{"deviceId": map[string]string{"kind": "iccid", "id": "0"}, "earliest": "2026-11-01T00:00:00Z", "latest": "2026-11-02T00:00:00Z"})
		if st != 400 || errorCode(m) != "REQUEST_FAILED.DeviceNotFound" {
			t.Errorf("unknown device: %d %v", st, m)
		}
		st, m = a.post("/devices/usage/actions/list", map[string]any{"deviceId": map[string]string{"kind": "vin", "id": id.ID}, "earliest": "2026-11-01T00:00:00Z", "latest": "2026-11-02T00:00:00Z"})
		if st != 400 || errorCode(m) != "INPUT_INVALID.Device.Kind.Invalid" {
			t.Errorf("bad kind: %d %v", st, m)
		}
	})
}

func TestCallbackDelivery(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	fails := 2
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got = append(got, m)
	}))
	defer listener.Close()
	a := newAPI(t, Options{Seed: 1, Devices: 10, CallbackRetryInterval: 10 * time.Millisecond})
	a.login()
	if st, m := a.post("/callbacks/"+a.sim.AccountName(), map[string]string{"name": "DeviceUsage", "url": listener.URL, "username": "cbu", "password": "cbp"}); st != 200 {
		t.Fatalf("register: %d %v", st, m)
	}
	iccid := a.sim.Devices()[0].Identity.ID
	st, m := a.post("/devices/usage/actions/promoaggregateusage", map[string]any{"accountName": a.sim.AccountName(),
		"deviceIds": []map[string]string{{"kind": "iccid", "id": iccid}}, "startTime": "2026-10-01T00:00:00Z", "endTime": "2026-10-31T00:00:00Z"})
	if st != 200 || m["requestId"] == "" {
		t.Fatalf("request: %d %v", st, m)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("listener accepted %d callbacks, want 2", len(got))
	}
	if got[0]["comment"] != "Request Completed Processing" || got[0]["callbackCount"].(float64) != 3 || got[0]["password"] != "cbp" {
		t.Errorf("completion callback %v (want the third delivery)", got[0])
	}
	usage := got[1]["deviceResponse"].(map[string]any)["devicePromoUsageResponse"].([]any)[0].(map[string]any)
	truth, _ := a.sim.TruthAggregate(iccid, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC), t0)
	if usage["dataUsage"] != itoa(truth.Data) || usage["startDate"] != "2026-10-01T00:00:00.0000000" {
		t.Errorf("data callback %v, truth %+v", usage, truth)
	}
}

func TestBearerTTL(t *testing.T) {
	clock := NewManualClock(t0)
	a := newAPI(t, Options{Seed: 1, Devices: 2, Clock: clock, Faults: Faults{BearerTTL: time.Minute}})
	a.login()
	_, tok := a.token()
	if tok["expires_in"].(float64) != 60 {
		t.Errorf("expires_in = %v, want 60", tok["expires_in"])
	}
	clock.Advance(61 * time.Second)
	if st, m := a.post("/devices/actions/list", map[string]string{"accountName": a.sim.AccountName()}); st != 401 || errorCode(m) != "fault 900901" {
		t.Errorf("after the shortened life: %d %v", st, m)
	}
}
