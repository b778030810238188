package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// listener is a callback listener that refuses the first refuse deliveries
// (503) and records the bodies of all of them.
type listener struct {
	mu       sync.Mutex
	refuse   int
	accepted []string
	all      int
	srv      *httptest.Server
}

func newListener(t *testing.T, refuse int) *listener {
	l := &listener{refuse: refuse}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.all++
		if l.refuse > 0 {
			l.refuse--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		l.accepted = append(l.accepted, string(b))
	}))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *listener) wait(n int, within time.Duration) []string {
	deadline := time.Now().Add(within)
	for {
		l.mu.Lock()
		got := append([]string(nil), l.accepted...)
		l.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// count is the number of deliveries the listener has answered.
func (l *listener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all
}

// waitFor polls cond until it holds; past limit the test fails.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (a *api) register(url string) {
	a.t.Helper()
	r := a.post("/callbacks/"+a.sim.AccountName(), map[string]string{"name": "DeviceUsage", "url": url, "username": "cb-user", "password": "cb-pass"})
	if r.status != 200 || r.m["serviceName"] != "DeviceUsage" || r.m["accountName"] != a.sim.AccountName() {
		a.t.Fatalf("register: %v", r)
	}
}

func (a *api) aggregate(iccids []string, start, end string) reply {
	ids := make([]map[string]string, len(iccids))
	for i, id := range iccids {
		ids[i] = map[string]string{"kind": "iccid", "id": id}
	}
	return a.post("/devices/usage/actions/promoaggregateusage", map[string]any{"accountName": a.sim.AccountName(), "deviceIds": ids, "startTime": start, "endTime": end})
}

func TestCallbackRegistration(t *testing.T) {
	a := newAPI(t, Options{Seed: 1, Devices: 1})
	a.login()
	acct := "/callbacks/" + a.sim.AccountName()
	for _, name := range []string{"DeviceUsage", "CarrierService"} {
		if r := a.post(acct, map[string]string{"name": name, "url": "http://127.0.0.1:9001/" + name}); r.status != 200 {
			t.Fatalf("register %s: %v", name, r)
		}
	}
	if r := a.call(http.MethodGet, acct, nil); r.raw != `[{"accountName":"0000123456-00001","name":"CarrierService","url":"http://127.0.0.1:9001/CarrierService"},{"accountName":"0000123456-00001","name":"DeviceUsage","url":"http://127.0.0.1:9001/DeviceUsage"}]` {
		t.Errorf("list: %v", r)
	}
	if r := a.call(http.MethodDelete, acct+"/name/CarrierService", nil); r.status != 200 || r.m["serviceName"] != "CarrierService" {
		t.Errorf("delete: %v", r)
	}
	if got := a.sim.Callbacks(); len(got) != 1 || got["DeviceUsage"] == "" {
		t.Errorf("registered after delete: %v", got)
	}
	tests := []struct {
		name, method, path string
		body               any
		code               string
	}{
		{"delete an unknown service", http.MethodDelete, acct + "/name/CarrierService", nil, "REQUEST_FAILED.CallbackNotFound"},
		{"wrong account", http.MethodGet, "/callbacks/0000999999-00001", nil, "REQUEST_FAILED.AccountNotFound"},
		{"no url", http.MethodPost, acct, map[string]string{"name": "DeviceUsage"}, "INPUT_INVALID.RequestUndefined"},
		{"malformed", http.MethodPost, acct, `{"name":`, "INPUT_INVALID.RequestUndefined"},
	}
	for _, tt := range tests {
		if r := a.call(tt.method, tt.path, tt.body); r.status != 400 || r.code() != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, r, tt.code)
		}
	}
	if s := a.sim.Stats(); s.Requests["callbacks"] != 8 {
		t.Errorf("callbacks requests %d, want 8", s.Requests["callbacks"])
	}
}

func TestAggregateValidation(t *testing.T) {
	a := newAPI(t, Options{Seed: 1, Devices: 260})
	a.login()
	var iccids []string
	for _, d := range a.sim.Devices() {
		for _, id := range d.IDs {
			if id.Kind == "iccid" {
				iccids = append(iccids, id.ID)
			}
		}
	}
	if r := a.aggregate(iccids[:1], "2026-10-01T00:00:00Z", "2026-10-31T00:00:00Z"); r.code() != "REQUEST_FAILED.CallbackNotRegistered" {
		t.Errorf("without a listener: %v", r)
	}
	if len(iccids) < 201 {
		t.Fatalf("%d ICCIDs", len(iccids))
	}
	a.register(newListener(t, 0).srv.URL)
	imei := a.sim.Devices()[0].IDs[0]
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"200 devices", map[string]any{"accountName": a.sim.AccountName(), "deviceIds": ids(iccids[:200]), "startTime": "2026-10-01T00:00:00Z", "endTime": "2026-11-01T00:00:00Z"}, 200, ""},
		{"the table's deviceId", map[string]any{"accountName": a.sim.AccountName(), "deviceId": ids(iccids[:2]), "startTime": "2026-10-01T00:00:00Z", "endTime": "2026-10-02T00:00:00Z"}, 200, ""},
		{"201 devices", map[string]any{"accountName": a.sim.AccountName(), "deviceIds": ids(iccids[:201]), "startTime": "2026-10-01T00:00:00Z", "endTime": "2026-10-31T00:00:00Z"}, 400, "INPUT_INVALID.NumberofDevices"},
		{"no devices", map[string]any{"accountName": a.sim.AccountName(), "deviceIds": ids(nil), "startTime": "2026-10-01T00:00:00Z", "endTime": "2026-10-31T00:00:00Z"}, 400, "INPUT_INVALID.NumberofDevices"},
		{"more than a month", map[string]any{"accountName": a.sim.AccountName(), "deviceIds": ids(iccids[:1]), "startTime": "2026-10-01T00:00:00Z", "endTime": "2026-11-01T00:00:01Z"}, 400, "INPUT_INVALID.DateRange"},
		{"more than six months back", map[string]any{"accountName": a.sim.AccountName(), "deviceIds": ids(iccids[:1]), "startTime": "2026-05-21T00:00:00Z", "endTime": "2026-05-28T00:00:00Z"}, 400, "INPUT_INVALID.StartTime"},
		{"six months back", map[string]any{"accountName": a.sim.AccountName(), "deviceIds": ids(iccids[:1]), "startTime": "2026-05-22T00:00:00Z", "endTime": "2026-05-28T00:00:00Z"}, 200, ""},
		{"end before start", map[string]any{"accountName": a.sim.AccountName(), "deviceIds": ids(iccids[:1]), "startTime": "2026-10-02T00:00:00Z", "endTime": "2026-10-01T00:00:00Z"}, 400, "INPUT_INVALID.EndTime"},
		{"not a date", map[string]any{"accountName": a.sim.AccountName(), "deviceIds": ids(iccids[:1]), "startTime": "October", "endTime": "2026-10-01T00:00:00Z"}, 400, "INPUT_INVALID.Request.InvalidCharacter"},
		{"not an ICCID", map[string]any{"accountName": a.sim.AccountName(), "deviceIds": []map[string]string{{"kind": "imei", "id": imei.ID}}, "startTime": "2026-10-01T00:00:00Z", "endTime": "2026-10-31T00:00:00Z"}, 400, "INPUT_INVALID.Device.Kind.Invalid"},
		{"unknown ICCID", map[string]any{"accountName": a.sim.AccountName(), "deviceIds": ids([]string{"89148000000000077777"}), "startTime": "2026-10-01T00:00:00Z", "endTime": "2026-10-31T00:00:00Z"}, 400, "REQUEST_FAILED.DeviceNotFound"},
		{"wrong account", map[string]any{"accountName": "1", "deviceIds": ids(iccids[:1]), "startTime": "2026-10-01T00:00:00Z", "endTime": "2026-10-31T00:00:00Z"}, 400, "REQUEST_FAILED.AccountNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.post("/devices/usage/actions/promoaggregateusage", tt.body)
			if r.status != tt.status || r.code() != tt.code {
				t.Errorf("%v, want %d %q", r, tt.status, tt.code)
			}
			if tt.status == 200 && len(fmt.Sprint(r.m["requestId"])) != 36 {
				t.Errorf("requestId %v", r.m["requestId"])
			}
		})
	}
}

func ids(iccids []string) []map[string]string {
	out := make([]map[string]string, len(iccids))
	for i, id := range iccids {
		out[i] = map[string]string{"kind": "ICCID", "id": id}
	}
	return out
}

// The two callbacks arrive in the page's format, re-sent until the
// listener answers 2xx, with the truth's numbers.
func TestCallbackDelivery(t *testing.T) {
	l := newListener(t, 2)
	a := newAPI(t, Options{Seed: 1, Devices: 10, CallbackRetryInterval: 5 * time.Millisecond})
	a.login()
	a.register(l.srv.URL)
	d := firstDevice(t, a.sim, "iccid")
	r := a.aggregate([]string{d.Identity.ID}, "2026-10-01T00:00:00Z", "2026-10-31T00:00:00Z")
	if r.status != 200 {
		t.Fatalf("request: %v", r)
	}
	reqID := r.m["requestId"].(string)
	got := l.wait(2, 5*time.Second)
	if len(got) != 2 {
		t.Fatalf("listener accepted %d callbacks, want 2", len(got))
	}
	wantDone := `{"username":"cb-user","password":"cb-pass","requestId":"` + reqID + `","deviceResponse":{},"comment":"Request Completed Processing","callbackCount":3,"maxCallbackThreshold":4}`
	if got[0] != wantDone {
		t.Errorf("completion callback (the third delivery)\n got %s\nwant %s", got[0], wantDone)
	}
	truth, _ := a.sim.TruthAggregate(d.Identity.ID, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC), t0)
	wantData := fmt.Sprintf(`{"username":"cb-user","password":"cb-pass","requestId":"%s","deviceResponse":{"devicePromoUsageResponse":[{"deviceIdentifierCollection":[{"id":"%s","kind":"ICCID"}],"dataUsage":"%d","smsUsage":"%d","moSms":"%d","mtSms":"%d","startDate":"2026-10-01T00:00:00.0000000","endDate":"2026-10-31T00:00:00.0000000"}]},"callbackCount":1,"maxCallbackThreshold":4}`,
		reqID, d.Identity.ID, truth.Data, truth.SMS, truth.MoSMS, truth.MtSMS)
	if got[1] != wantData {
		t.Errorf("data callback\n got %s\nwant %s", got[1], wantData)
	}
	if truth.Data == 0 || truth.SMS != truth.MoSMS+truth.MtSMS {
		t.Errorf("truth %+v", truth)
	}
	if s := a.sim.Stats(); s.CallbackAttempts != 4 || s.CallbacksDelivered != 2 {
		t.Errorf("stats: %d attempts, %d delivered; want 4, 2", s.CallbackAttempts, s.CallbacksDelivered)
	}
}

func TestCallbackGivesUp(t *testing.T) {
	l := newListener(t, 1000)
	a := newAPI(t, Options{Seed: 1, Devices: 3, CallbackRetryInterval: time.Millisecond})
	a.login()
	a.register(l.srv.URL)
	a.aggregate([]string{a.sim.Devices()[0].IDs[1].ID}, "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z")
	// Both callbacks (completion, then data) given up: nothing more is
	// sent for the request.
	waitFor(t, 5*time.Second, "both callbacks given up", func() bool { return a.sim.Stats().CallbacksAbandoned == 2 })
	if s := a.sim.Stats(); s.CallbackAttempts != 8 || s.CallbacksDelivered != 0 || s.CallbacksAbandoned != 2 {
		t.Errorf("%d attempts, %d delivered, %d given up; want 4 per callback, none delivered, both given up",
			s.CallbackAttempts, s.CallbacksDelivered, s.CallbacksAbandoned)
	}
	if got := l.count(); got != 8 {
		t.Errorf("the listener saw %d deliveries, want 8", got)
	}
}

// Close stops deliveries waiting to re-send and refuses new requests.
func TestCloseStopsDeliveries(t *testing.T) {
	l := newListener(t, 1000)
	a := newAPI(t, Options{Seed: 1, Devices: 3, CallbackRetryInterval: time.Hour})
	a.login()
	a.register(l.srv.URL)
	a.aggregate([]string{a.sim.Devices()[0].IDs[1].ID}, "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z")
	// The first delivery has been refused: the next waits an hour.
	waitFor(t, 5*time.Second, "the first delivery", func() bool { return l.count() >= 1 })
	done := make(chan struct{})
	go func() { a.sim.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not stop a delivery waiting to re-send")
	}
	if r := a.aggregate([]string{a.sim.Devices()[0].IDs[1].ID}, "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z"); r.status != 503 {
		t.Errorf("after Close: %v", r)
	}
	if s := a.sim.Stats(); s.CallbackAttempts != 1 {
		t.Errorf("%d attempts", s.CallbackAttempts)
	}
}

func TestTruthAggregates(t *testing.T) {
	sim := New(Options{Seed: 2, Devices: 20, Clock: NewManualClock(t0)})
	start, end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	all := sim.TruthAggregates(start, end, t0)
	for i, a := range all {
		var want int64
		for _, u := range sim.TruthUsage(t0, start, end, a.Device) {
			want += u.BytesUsed
		}
		if a.Data != want {
			t.Errorf("%s: aggregate %d bytes, daily usage sums to %d", a.Device, a.Data, want)
		}
		if i > 0 && all[i-1].Device.String() >= a.Device.String() {
			t.Errorf("not sorted: %s before %s", all[i-1].Device, a.Device)
		}
	}
	if len(all) < 10 {
		t.Errorf("%d aggregates", len(all))
	}
	b, _ := json.Marshal(all[0])
	if one := sim.TruthAggregates(start, end, t0, all[0].ICCID); len(one) != 1 || fmt.Sprint(one[0]) != fmt.Sprint(all[0]) {
		t.Errorf("one ICCID: %v, want %s", one, b)
	}
}
