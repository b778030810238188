package simulator

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// api is a bare HTTP client of the simulator for these tests (the real
// client is tested against the simulator in package extract).
type api struct {
	t       *testing.T
	srv     *httptest.Server
	sim     *Simulator
	clock   *ManualClock
	bearer  string
	session string
}

func newAPI(t *testing.T, opts Options) *api {
	t.Helper()
	clock, _ := opts.Clock.(*ManualClock)
	if opts.Clock == nil {
		clock = NewManualClock(t0)
		opts.Clock = clock
	}
	sim := New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	return &api{t: t, srv: srv, sim: sim, clock: clock}
}

// reply is a decoded answer: status, headers, raw body and its JSON.
type reply struct {
	status int
	header http.Header
	raw    string
	m      map[string]any
}

// code is the error code of an error answer: the vendor's errorCode without
// its service prefix, or "fault N" for the gateway's shape.
func (r reply) code() string {
	if f, ok := r.m["fault"].(map[string]any); ok {
		return fmt.Sprintf("fault %v", f["code"])
	}
	s, _ := r.m["errorCode"].(string)
	return strings.TrimPrefix(s, "UnifiedWebService.")
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, r.raw) }

func (a *api) do(req *http.Request) reply {
	a.t.Helper()
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	_ = dec.Decode(&r.m)
	return r
}

func (a *api) token() reply {
	id, secret, _, _ := a.sim.Credentials()
	return a.tokenWith(id, secret)
}

func (a *api) tokenWith(id, secret string) reply {
	req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/api/ts/v1/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	return a.do(req)
}

func (a *api) call(method, path string, body any) reply {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, a.srv.URL+m2m+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if a.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+a.bearer)
	}
	if a.session != "" {
		req.Header.Set("VZ-M2M-Token", a.session)
	}
	return a.do(req)
}

func (a *api) post(path string, body any) reply { return a.call(http.MethodPost, path, body) }

func (a *api) login() {
	a.t.Helper()
	tok := a.token()
	if tok.status != 200 {
		a.t.Fatalf("token: %v", tok)
	}
	a.bearer = tok.m["access_token"].(string)
	_, _, user, pass := a.sim.Credentials()
	r := a.post("/session/login", map[string]string{"username": user, "password": pass})
	if r.status != 200 {
		a.t.Fatalf("login: %v", r)
	}
	a.session = r.m["sessionToken"].(string)
}

func dev(id ID) map[string]string { return map[string]string{"kind": id.Kind, "id": id.ID} }

func rfc(t time.Time) string { return t.Format(time.RFC3339) }

func (a *api) usage(id ID, from, to time.Time) reply {
	return a.post("/devices/usage/actions/list", map[string]any{"deviceId": dev(id), "earliest": rfc(from), "latest": rfc(to)})
}

func (a *api) connections(id ID, from, to time.Time) reply {
	return a.post("/devices/connections/actions/listHistory", map[string]any{"deviceId": dev(id), "earliest": rfc(from), "latest": rfc(to)})
}

func list(m map[string]any, key string) []map[string]any {
	raw, _ := m[key].([]any)
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i], _ = x.(map[string]any)
	}
	return out
}

func attrs(rec map[string]any, key string) map[string]string {
	out := map[string]string{}
	for _, kv := range list(rec, key) {
		out[kv["key"].(string)] = fmt.Sprint(kv["value"])
	}
	return out
}

// firstDevice returns the first device (list order) that is talkative and
// has the wanted identity kind ("" any).
func firstDevice(t *testing.T, sim *Simulator, kind string) TruthDevice {
	t.Helper()
	for _, d := range sim.Devices() {
		if !d.Silent && !d.Deactivated && (kind == "" || d.Identity.Kind == kind) {
			return d
		}
	}
	t.Fatalf("no active %q device", kind)
	return TruthDevice{}
}

func TestDeterministic(t *testing.T) {
	bodies := func(seed int64) []string {
		a := newAPI(t, Options{Seed: seed, Devices: 10})
		a.login()
		id := firstDevice(t, a.sim, "iccid").Identity
		mdn := ID{"mdn", a.sim.Devices()[0].IDs[2].ID}
		return []string{
			a.post("/devices/actions/list", map[string]string{"accountName": a.sim.AccountName()}).raw,
			a.usage(id, t0.AddDate(0, -2, 0), t0).raw,
			a.connections(id, t0.AddDate(0, 0, -20), t0).raw,
			a.post("/devices/usage/actions/ratedusage", map[string]any{"deviceId": dev(mdn)}).raw,
		}
	}
	one, two, other := bodies(7), bodies(7), bodies(8)
	for i := range one {
		if one[i] != two[i] {
			t.Errorf("body %d differs between two simulators of the same seed", i)
		}
		if one[i] == other[i] {
			t.Errorf("body %d is the same for another seed", i)
		}
		if len(one[i]) < 100 {
			t.Errorf("body %d is nearly empty: %s", i, one[i])
		}
	}
}

func TestDeviceList(t *testing.T) {
	a := newAPI(t, Options{Seed: 2, Devices: 100, DevicePageSize: 30})
	a.login()
	var cursor any
	var devices []map[string]any
	var last int64 = -1
	for page := 1; ; page++ {
		body := map[string]any{"accountName": a.sim.AccountName()}
		if cursor != nil {
			body["largestDeviceIdSeen"] = cursor
		}
		r := a.post("/devices/actions/list", body)
		ds := list(r.m, "devices")
		more := r.m["hasMoreData"].(bool)
		if want := map[bool]int{true: 202, false: 200}[more]; r.status != want || len(ds) > 30 || len(ds) == 0 {
			t.Fatalf("page %d: status %d, hasMoreData %v, %d devices", page, r.status, more, len(ds))
		}
		for _, d := range ds {
			var id json.Number
			for _, kv := range list(d, "extendedAttributes") {
				if kv["key"] == "DeviceId" {
					id = json.Number(kv["value"].(string))
				}
			}
			n, err := id.Int64()
			if err != nil || n <= last {
				t.Fatalf("DeviceId %q after %d: not ascending", id, last)
			}
			last = n
		}
		devices = append(devices, ds...)
		cursor = last
		if !more {
			if page != 4 {
				t.Errorf("%d pages, want 4", page)
			}
			break
		}
	}
	if len(devices) != 100 {
		t.Fatalf("%d devices listed, want 100", len(devices))
	}

	formats := map[string]*regexp.Regexp{
		"iccid": regexp.MustCompile(`^\d{20}$`), "imei": regexp.MustCompile(`^\d{15}$`), "mdn": regexp.MustCompile(`^\d{10}$`),
		"msisdn": regexp.MustCompile(`^\d{11}$`), "eid": regexp.MustCompile(`^\d{32}$`), "meid": regexp.MustCompile(`^[0-9A-F]{14}$`),
		"esn": regexp.MustCompile(`^\d{11}$`),
	}
	spellings, states, shapes := map[string]bool{}, map[string]int{}, map[string]int{}
	for _, d := range devices {
		var kinds []string
		for _, id := range list(d, "deviceIds") {
			spelled := id["kind"].(string)
			kind := strings.ToLower(spelled)
			spellings[spelled] = true
			if re := formats[kind]; re == nil || !re.MatchString(id["id"].(string)) {
				t.Errorf("identifier %s %q is not the documented format", spelled, id["id"])
			}
			kinds = append(kinds, kind)
		}
		shapes[strings.Join(kinds, ",")]++
		states[list(d, "carrierInformations")[0]["state"].(string)]++
	}
	for _, sp := range []string{"iccid", "ICCID", "iccId", "Imei"} {
		if !spellings[sp] {
			t.Errorf("kind spelling %q never sent (sent %v)", sp, spellings)
		}
	}
	if states["deactive"] != 5 || states["suspend"] == 0 || states["active"] < 85 {
		t.Errorf("states %v: want ~5%% deactive, a few suspend", states)
	}
	if shapes["imei"] == 0 || shapes["eid"] == 0 || shapes["meid,esn,mdn"] == 0 || shapes["iccid,imei"] == 0 || shapes["imei,iccid,mdn,msisdn"] < 50 {
		t.Errorf("identifier sets %v: want most with mdn, some imei-only, eid-only, CDMA and data-only", shapes)
	}

	t.Run("maxNumberOfDevices", func(t *testing.T) {
		r := a.post("/devices/actions/list", map[string]any{"accountName": a.sim.AccountName(), "maxNumberOfDevices": 7})
		if r.status != 202 || len(list(r.m, "devices")) != 7 {
			t.Errorf("%d, %d devices", r.status, len(list(r.m, "devices")))
		}
	})
	t.Run("wrong account", func(t *testing.T) {
		if r := a.post("/devices/actions/list", map[string]any{"accountName": "0000999999-00001"}); r.status != 400 || r.code() != "REQUEST_FAILED.AccountNotFound" {
			t.Errorf("%v", r)
		}
	})
}

// Following the documented procedure (earliest moves to the last record's
// timestamp or occurredAt, as sent) yields every record of the truth, the
// boundary one twice.
func TestHistoryPaging(t *testing.T) {
	tests := []struct {
		name     string
		pageSize int
		conn     bool
		offset   string // the device's event offset
		from     time.Time
	}{
		{"connections, a year, -05:00", 0, true, "-05:00", retentionFloor(t0)},
		{"connections, a year, Z", 0, true, "Z", retentionFloor(t0)},
		{"connections, small pages", 7, true, "+02:00", t0.AddDate(0, 0, -20)},
		{"usage, pages of 100", 100, false, "Z", retentionFloor(t0)},
		{"usage, pages of 2", 2, false, "Z", t0.AddDate(0, 0, -5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAPI(t, Options{Seed: 3, Devices: 12, HistoryPageSize: tt.pageSize})
			a.login()
			var d TruthDevice
			for _, x := range a.sim.Devices() {
				if !x.Silent && !x.Deactivated && x.Offset == tt.offset {
					d = x
					break
				}
			}
			path, key, stamp, want := "/devices/usage/actions/list", "usageHistory", "timestamp", len(a.sim.TruthUsage(t0, tt.from, time.Time{}, d.Identity))
			if tt.conn {
				path, key, stamp, want = "/devices/connections/actions/listHistory", "connectionHistory", "occurredAt", len(a.sim.TruthEvents(t0, tt.from, time.Time{}, d.Identity))
			}
			size := cmp.Or(tt.pageSize, 500)
			if want <= 2*size {
				t.Fatalf("only %d records: too few to page by %d", want, size)
			}
			earliest := rfc(tt.from)
			seen := map[string]int{}
			pages, repeats := 0, 0
			for {
				r := a.post(path, map[string]any{"deviceId": dev(d.Identity), "earliest": earliest, "latest": rfc(t0)})
				pages++
				recs := list(r.m, key)
				more := r.m["hasMoreData"].(bool)
				if more != (r.status == 202) || len(recs) > size || (more && len(recs) != size) {
					t.Fatalf("page %d: status %d, hasMoreData %v, %d records", pages, r.status, more, len(recs))
				}
				for _, e := range recs {
					k := fmt.Sprint(e)
					if seen[k] > 0 {
						repeats++
					}
					seen[k]++
				}
				if !more {
					break
				}
				earliest = recs[len(recs)-1][stamp].(string)
				if !strings.HasSuffix(earliest, tt.offset) {
					t.Fatalf("%s %s not sent with the device's offset %s", stamp, earliest, tt.offset)
				}
				if pages > 1000 {
					t.Fatal("paging does not end")
				}
			}
			if len(seen) != want || repeats != pages-1 {
				t.Errorf("distinct %d (want %d), repeats %d over %d pages (want one per page boundary)", len(seen), want, repeats, pages)
			}
		})
	}
}

// With pages of one record the boundary record fills every page: the
// cursor never moves, as a client's guard must notice.
func TestPagingWithoutProgress(t *testing.T) {
	a := newAPI(t, Options{Seed: 3, Devices: 1, HistoryPageSize: 1})
	a.login()
	id := a.sim.Devices()[0].Identity
	first := a.usage(id, t0.AddDate(0, 0, -5), t0)
	ts := list(first.m, "usageHistory")[0]["timestamp"].(string)
	when, _ := time.Parse(time.RFC3339, ts)
	second := a.usage(id, when, t0)
	if first.status != 202 || second.status != 202 || list(second.m, "usageHistory")[0]["timestamp"] != ts {
		t.Errorf("first %v\nsecond %v", first, second)
	}
}

// The served pages and the ground truth agree, record by record, for
// every device of an account with every quirk on, and of a fleet.
func TestTruthMatchesServed(t *testing.T) {
	quirks := Quirks{OccuredAt: true, NumbersAsNumbers: true, NumbersAsStrings: true, UnknownKeys: true}
	t.Run("fixed account", func(t *testing.T) { truthMatchesServed(t, Options{Seed: 11, Devices: 40, Quirks: quirks}, 30*300) })
	t.Run("fleet", func(t *testing.T) {
		truthMatchesServed(t, Options{Seed: 11, Devices: 40, Quirks: quirks, Fleet: DefaultFleetMix()}, 3000)
	})
}

func truthMatchesServed(t *testing.T, opts Options, minUsage int) {
	a := newAPI(t, opts)
	a.login()
	from := t0.AddDate(0, 0, -6)
	usage := a.sim.TruthUsage(t0, time.Time{}, time.Time{})
	events := a.sim.TruthEvents(t0, from, time.Time{})
	rated := a.sim.TruthRated(t0)
	var gotUsage, gotEvents, gotRated int
	devices := a.sim.Devices()
	slices.SortFunc(devices, func(x, y TruthDevice) int { return strings.Compare(x.Identity.String(), y.Identity.String()) })
	for _, d := range devices {
		r := a.usage(d.Identity, retentionFloor(t0), t0)
		for _, rec := range list(r.m, "usageHistory") {
			u := usage[gotUsage]
			gotUsage++
			at := attrs(rec, "extendedAttributes")
			got := fmt.Sprintf("%s %v %v %v %s %s %s %s %v", d.Identity, rec["timestamp"], rec["bytesUsed"], rec["smsUsed"],
				at["MoSms"], at["MtSms"], at["domesticUsage"], at["internationalUsage"], rec["source"])
			want := fmt.Sprintf("%s %s %d %d %d %d %d %d %s", u.Device, rfc(u.Date), u.BytesUsed, u.SMSUsed, u.MoSMS, u.MtSMS, u.Domestic, u.International, u.Source)
			if got != want {
				t.Fatalf("usage record\n got %s\nwant %s", got, want)
			}
			for k, v := range u.Extra {
				if at[k] != v {
					t.Errorf("%s: extra attribute %q = %q, truth %q", d.Identity, k, at[k], v)
				}
			}
		}
		r = a.connections(d.Identity, from, t0)
		for _, rec := range list(r.m, "connectionHistory") {
			e := events[gotEvents]
			gotEvents++
			when, _ := rec["occurredAt"].(string)
			if when == "" {
				when, _ = rec["occuredAt"].(string)
			}
			at, err := time.Parse(time.RFC3339, when)
			if e.Device != d.Identity || err != nil || !at.Equal(e.OccurredAt) || !strings.HasSuffix(when, e.Offset) {
				t.Fatalf("event of %s at %s, truth %s at %s%s", d.Identity, when, e.Device, e.OccurredAt, e.Offset)
			}
			if got := attrs(rec, "connectionEventAttributes"); fmt.Sprint(got) != fmt.Sprint(e.Attrs) {
				t.Fatalf("event attributes\n got %v\nwant %v", got, e.Attrs)
			}
		}
		if i := slices.IndexFunc(d.IDs, func(id ID) bool { return id.Kind == "mdn" }); i >= 0 {
			mdn := ID{d.Kinds[i], d.IDs[i].ID} // as the device list spells it
			r := a.post("/devices/usage/actions/ratedusage", map[string]any{"deviceId": dev(mdn)})
			di := r.m["deviceInformation"].(map[string]any)
			want := rated[gotRated]
			gotRated++
			got := fmt.Sprintf("%s %v %v %v %v %v %v", d.Identity, di["billingStartDate"], di["billingEndDate"], di["billingResetDate"], di["dataUsage"], di["unit"], di["mdn"])
			wantS := fmt.Sprintf("%s %s %s %s %v %s %s", want.Device, want.Start.Format(ratedLayout), want.End.Format(ratedLayout), want.Reset.Format(ratedLayout),
				json.Number(fmt.Sprint(want.DataUsage)), want.Unit, want.MDN)
			if got != wantS {
				t.Errorf("rated\n got %s\nwant %s", got, wantS)
			}
		}
	}
	if gotUsage != len(usage) || gotEvents != len(events) || gotRated != len(rated) {
		t.Errorf("served %d usage records, %d events, %d rated; truth %d, %d, %d", gotUsage, gotEvents, gotRated, len(usage), len(events), len(rated))
	}
	if len(usage) < minUsage || len(events) < 100 || len(rated) < 20 {
		t.Errorf("suspiciously small account: %d usage records, %d events, %d rated", len(usage), len(events), len(rated))
	}
}

func TestRetention(t *testing.T) {
	a := newAPI(t, Options{Seed: 5, Devices: 5})
	a.login()
	id := firstDevice(t, a.sim, "").Identity
	floor := time.Date(2025, 11, 22, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		from, to time.Time
		usage    int
	}{
		{"older than 12 months", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), floor.Add(-time.Second), 0},
		{"the oldest retained day", floor, floor, 1},
		{"a range reaching into the past is cut", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), t0, 366},
		{"the future is empty", t0.Add(time.Hour), t0.AddDate(0, 1, 0), 0},
		{"earliest inside a day skips it", floor.Add(time.Second), floor.Add(24 * time.Hour), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := len(list(a.usage(id, tt.from, tt.to).m, "usageHistory")); n != tt.usage {
				t.Errorf("%d usage records, want %d", n, tt.usage)
			}
		})
	}
	t.Run("connections", func(t *testing.T) {
		r := a.connections(id, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), floor.AddDate(0, 0, 2))
		for _, e := range list(r.m, "connectionHistory") {
			if at, _ := time.Parse(time.RFC3339, e["occurredAt"].(string)); at.Before(floor) {
				t.Errorf("event at %s is older than 12 months", at)
			}
		}
		if len(list(r.m, "connectionHistory")) == 0 {
			t.Error("no events in the first retained days")
		}
	})
}

// Values of the three most recent days grow as the clock moves on, then
// stay; the truth follows.
func TestRevisions(t *testing.T) {
	a := newAPI(t, Options{Seed: 5, Devices: 20})
	a.login()
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	settledDay := day.AddDate(0, 0, -10)
	// Sum over devices so that an idle day of one device cannot hide a
	// revision.
	served := func(d time.Time) (bytes, sms int64, body string) {
		for _, dv := range a.sim.Devices() {
			r := a.usage(dv.Identity, d, d)
			body += r.raw
			for _, rec := range list(r.m, "usageHistory") {
				b, _ := rec["bytesUsed"].(json.Number).Int64()
				s, _ := rec["smsUsed"].(json.Number).Int64()
				bytes, sms = bytes+b, sms+s
			}
		}
		return bytes, sms, body
	}
	_, _, settled := served(settledDay)
	var lastBytes, lastSMS int64 = -1, -1
	for age := 1; age <= 5; age++ {
		b, s, _ := served(day)
		truth := a.sim.TruthUsage(a.clock.Now(), day, day.Add(24*time.Hour))
		var tb, ts int64
		for _, u := range truth {
			tb, ts = tb+u.BytesUsed, ts+u.SMSUsed
		}
		if b != tb || s != ts {
			t.Errorf("age %d: served %d bytes %d SMS, truth %d, %d", age, b, s, tb, ts)
		}
		switch {
		case age <= 3 && (b <= lastBytes || s <= lastSMS):
			t.Errorf("age %d: bytes %d SMS %d did not grow from %d, %d", age, b, s, lastBytes, lastSMS)
		case age > 3 && (b != lastBytes || s != lastSMS):
			t.Errorf("age %d: bytes %d SMS %d changed after the day settled (%d, %d)", age, b, s, lastBytes, lastSMS)
		}
		lastBytes, lastSMS = b, s
		a.clock.Advance(24 * time.Hour)
		a.login()
	}
	if _, _, now := served(settledDay); now != settled {
		t.Error("a settled day changed")
	}
}

func TestAuth(t *testing.T) {
	a := newAPI(t, Options{Seed: 1, Devices: 3})
	devices := func() reply {
		return a.post("/devices/actions/list", map[string]string{"accountName": a.sim.AccountName()})
	}
	steps := []struct {
		name string
		do   func()
		want string // "" for 200, else the error code
	}{
		{"no bearer", func() {}, "fault 900902"},
		{"an unknown bearer", func() { a.bearer = "nope" }, "fault 900901"},
		{"a bearer, no session", func() { a.bearer = a.token().m["access_token"].(string) }, "INPUT_INVALID.SessionToken.Invalid"},
		{"an unknown session", func() { a.session = "nope" }, "INPUT_INVALID.SessionToken.Invalid"},
		{"logged in", func() { a.login() }, ""},
		{"the same token within the hour", func() {
			if tok := a.token(); tok.m["access_token"] != a.bearer || tok.m["token_type"] != "Bearer" {
				t.Errorf("second token request: %v, first token %s", tok, a.bearer)
			}
		}, ""},
		{"19 idle minutes", func() { a.clock.Advance(19 * time.Minute) }, ""},
		{"19 more: use restarted the idle time", func() { a.clock.Advance(19 * time.Minute) }, ""},
		{"20 idle minutes", func() { a.clock.Advance(20 * time.Minute) }, "REQUEST_FAILED.SessionToken.Expired"},
		{"an expired session is gone", func() {}, "INPUT_INVALID.SessionToken.Invalid"},
		{"past the bearer's hour", func() { a.login(); a.clock.Advance(time.Hour - 38*time.Minute) }, "fault 900901"},
		{"a new token after the hour", func() {
			old := a.bearer
			a.login()
			if a.bearer == old {
				t.Error("the expired token was handed out again")
			}
		}, ""},
		{"ExpireSessions", func() { a.sim.ExpireSessions() }, "REQUEST_FAILED.SessionToken.Expired"},
		{"ExpireBearerTokens", func() { a.login(); a.sim.ExpireBearerTokens() }, "fault 900901"},
		{"logout ends the session", func() {
			a.login()
			if r := a.post("/session/logout", nil); r.status != 200 {
				t.Errorf("logout: %v", r)
			}
		}, "INPUT_INVALID.SessionToken.Invalid"},
	}
	for _, st := range steps {
		st.do()
		r := devices()
		if st.want == "" && r.status != 200 || st.want != "" && r.code() != st.want {
			t.Errorf("%s: %v, want %q", st.name, r, st.want)
		}
		if strings.HasPrefix(st.want, "fault") && r.status != 401 || strings.Contains(st.want, "Session") && r.status != 400 {
			t.Errorf("%s: status %d", st.name, r.status)
		}
	}
	t.Run("token endpoint", func(t *testing.T) {
		for _, tt := range []struct{ id, secret, want string }{{"", "", "fault 900902"}, {"sim-client", "wrong", "fault 900901"}, {"other", "sim-secret", "fault 900901"}} {
			if r := a.tokenWith(tt.id, tt.secret); r.status != 401 || r.code() != tt.want {
				t.Errorf("%s/%s: %v, want %s", tt.id, tt.secret, r, tt.want)
			}
		}
		r := a.token()
		if exp, _ := r.m["expires_in"].(json.Number).Int64(); r.status != 200 || exp <= 0 || exp > 3600 || r.m["scope"] == nil {
			t.Errorf("token: %v", r)
		}
	})
	if s := a.sim.Stats(); s.Logouts != 1 || s.TokenRequests < 8 || s.Status[401] < 4 {
		t.Errorf("stats %+v", s)
	}
}

func TestLoginLockout(t *testing.T) {
	a := newAPI(t, Options{Seed: 1, Devices: 1})
	a.bearer = a.token().m["access_token"].(string)
	try := func(pass string) reply {
		return a.post("/session/login", map[string]string{"username": "sim-user", "password": pass})
	}
	// Failures must be consecutive: a success starts the count again.
	for _, pass := range []string{"wrong", "wrong", "wrong", "wrong", "sim-password", "wrong", "wrong", "wrong", "wrong"} {
		r := try(pass)
		if pass == "sim-password" && r.status != 200 || pass != "sim-password" && (r.status != 400 || r.code() != "INPUT_INVALID.UserCredentials.Invalid") {
			t.Fatalf("login with %q: %v", pass, r)
		}
	}
	if r := try("wrong"); r.code() != "INPUT_INVALID.UserCredentials.Invalid" {
		t.Fatalf("fifth consecutive failure: %v", r)
	}
	if r := try("sim-password"); r.status != 400 || r.code() != "REQUEST_FAILED.UserLocked" {
		t.Errorf("after five failures: %v", r)
	}
	if r := a.post("/session/login", "{not json"); r.code() != "INPUT_INVALID.RequestUndefined" {
		t.Errorf("malformed login body: %v", r)
	}
	if s := a.sim.Stats(); s.Logins != 12 || s.FailedLogins != 11 || s.Requests["login"] != 12 {
		t.Errorf("stats %+v", s)
	}
}

func TestRejectLogin(t *testing.T) {
	a := newAPI(t, Options{Seed: 1, Devices: 1, Faults: Faults{RejectLogin: true}})
	a.bearer = a.token().m["access_token"].(string)
	r := a.post("/session/login", map[string]string{"username": "sim-user", "password": "sim-password"})
	if r.status != 400 || r.code() != "INPUT_INVALID.UserCredentials.Invalid" {
		t.Errorf("%v", r)
	}
	a.sim.SetFaults(Faults{})
	a.login()
	if s := a.sim.Stats(); s.Logins != 2 || s.FailedLogins != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestRequestErrors(t *testing.T) {
	a := newAPI(t, Options{Seed: 1, Devices: 30})
	a.login()
	d := a.sim.Devices()[0] // imei, iccid, mdn, msisdn
	span := map[string]any{"earliest": rfc(t0.AddDate(0, 0, -3)), "latest": rfc(t0)}
	with := func(id map[string]string) map[string]any {
		m := map[string]any{"deviceId": id}
		for k, v := range span {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"every identifier, kind in any case", "/devices/usage/actions/list", with(map[string]string{"kind": "MsIsDn", "id": d.IDs[3].ID}), 200, ""},
		{"imei", "/devices/connections/actions/listHistory", with(map[string]string{"kind": "IMEI", "id": d.IDs[0].ID}), 200, ""},
		{"unknown device", "/devices/usage/actions/list", with(map[string]string{"kind": "iccid", "id": "89148000000000099999"}), 400, "REQUEST_FAILED.DeviceNotFound"},
		{"identifier under another kind", "/devices/usage/actions/list", with(map[string]string{"kind": "imei", "id": d.IDs[1].ID}), 400, "REQUEST_FAILED.DeviceNotFound"},
		{"bad kind", "/devices/connections/actions/listHistory", with(map[string]string{"kind": "vin", "id": d.IDs[1].ID}), 400, "INPUT_INVALID.Device.Kind.Invalid"},
		{"malformed body", "/devices/usage/actions/list", `{"deviceId":`, 400, "INPUT_INVALID.RequestUndefined"},
		{"body of the wrong shape", "/devices/usage/actions/list", `{"deviceId":"x"}`, 400, "INPUT_INVALID.RequestUndefined"},
		{"bad date", "/devices/usage/actions/list", map[string]any{"deviceId": dev(d.Identity), "earliest": "yesterday", "latest": rfc(t0)}, 400, "INPUT_INVALID.Request.InvalidCharacter"},
		{"rated without an MDN", "/devices/usage/actions/ratedusage", map[string]any{"deviceId": dev(a.sim.Devices()[1].Identity)}, 400, "REQUEST_FAILED.DeviceNotFound"},
		{"no such path", "/devices/nothing", map[string]any{}, 404, "INPUT_INVALID.RequestUndefined"},
		{"GET on a POST endpoint", "", nil, 405, "INPUT_INVALID.RequestUndefined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r reply
			if tt.path == "" {
				r = a.call(http.MethodGet, "/devices/usage/actions/list", nil)
			} else {
				r = a.post(tt.path, tt.body)
			}
			if r.status != tt.status || r.code() != tt.code {
				t.Errorf("%v, want %d %q", r, tt.status, tt.code)
			}
			if tt.code != "" && r.m["errorMessage"] == "" {
				t.Errorf("no errorMessage: %v", r)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	a := newAPI(t, Options{Seed: 1, Devices: 3})
	d := a.sim.Devices()[0]
	usage := func() reply { return a.usage(d.Identity, t0.AddDate(0, 0, -9), t0) }
	tests := []struct {
		name   string
		faults Faults
		status []int // any of
		code   string
		check  func(t *testing.T, r reply)
	}{
		{"429 with Retry-After", Faults{Rate429: 1, RetryAfter: 1500 * time.Millisecond}, []int{429}, "REQUEST_FAILED.TooManyRequests",
			func(t *testing.T, r reply) {
				if r.header.Get("Retry-After") != "2" {
					t.Errorf("Retry-After %q, want 2 (seconds, rounded up)", r.header.Get("Retry-After"))
				}
			}},
		{"429 without Retry-After", Faults{Rate429: 1}, []int{429}, "REQUEST_FAILED.TooManyRequests",
			func(t *testing.T, r reply) {
				if h := r.header.Get("Retry-After"); h != "" {
					t.Errorf("Retry-After %q", h)
				}
			}},
		{"5xx", Faults{Rate5xx: 1}, []int{500, 502, 503}, "*", nil},
		{"failing device, by another of its identifiers", Faults{FailDevices: []string{d.IDs[2].ID}}, []int{500}, "REQUEST_FAILED.InternalError", nil},
		{"failing devices leave the others alone", Faults{FailDevices: []string{a.sim.Devices()[1].IDs[0].ID}}, []int{200}, "", nil},
		{"range too slow", Faults{SlowRange: 8 * 24 * time.Hour}, []int{400}, "REQUEST_FAILED.UnexpectedError", nil},
		{"range within the slow limit", Faults{SlowRange: 9 * 24 * time.Hour}, []int{200}, "", nil},
		{"range longer than the maximum", Faults{MaxRange: 8 * 24 * time.Hour}, []int{400}, "INPUT_INVALID.DateRange",
			func(t *testing.T, r reply) {
				if msg, _ := r.m["errorMessage"].(string); !strings.Contains(msg, "8 days") {
					t.Errorf("errorMessage %q does not name the limit", msg)
				}
			}},
		{"range at the maximum", Faults{MaxRange: 9 * 24 * time.Hour}, []int{200}, "", nil},
		{"refused before it could time out", Faults{MaxRange: 8 * 24 * time.Hour, SlowRange: 8 * 24 * time.Hour}, []int{400}, "INPUT_INVALID.DateRange", nil},
		{"session expiry", Faults{SessionExpiryEvery: 1}, []int{400}, "REQUEST_FAILED.SessionToken.Expired", nil},
		{"latency", Faults{Latency: 150 * time.Millisecond}, []int{200}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.login()
			a.sim.SetFaults(tt.faults)
			defer a.sim.SetFaults(Faults{})
			start := time.Now()
			r := usage()
			if took := time.Since(start); took < tt.faults.Latency {
				t.Errorf("answered in %v, latency %v", took, tt.faults.Latency)
			}
			ok := false
			for _, s := range tt.status {
				ok = ok || r.status == s
			}
			if !ok || (tt.code != "*" && r.code() != tt.code) {
				t.Errorf("%v, want %v %q", r, tt.status, tt.code)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
	t.Run("5xx ratio", func(t *testing.T) {
		a.login()
		a.sim.SetFaults(Faults{Rate5xx: 0.3})
		defer a.sim.SetFaults(Faults{})
		statuses := map[int]int{}
		for i := 0; i < 200; i++ {
			statuses[usage().status]++
		}
		if n := statuses[500] + statuses[502] + statuses[503]; n < 35 || n > 85 || statuses[500] == 0 || statuses[502] == 0 || statuses[503] == 0 || statuses[200]+n != 200 {
			t.Errorf("statuses %v for a 30%% 5xx ratio", statuses)
		}
	})
	t.Run("failing device: rated too, other endpoints not", func(t *testing.T) {
		a.login()
		a.sim.SetFaults(Faults{FailDevices: []string{d.Identity.ID}})
		defer a.sim.SetFaults(Faults{})
		if r := a.post("/devices/usage/actions/ratedusage", map[string]any{"deviceId": dev(d.IDs[2])}); r.status != 500 {
			t.Errorf("rated: %v", r)
		}
		if r := a.post("/devices/actions/list", map[string]string{"accountName": a.sim.AccountName()}); r.status != 200 {
			t.Errorf("device list: %v", r)
		}
	})
	t.Run("session expiry every 3rd request", func(t *testing.T) {
		a.login()
		a.sim.SetFaults(Faults{SessionExpiryEvery: 3})
		defer a.sim.SetFaults(Faults{})
		var got []int
		for i := 0; i < 7; i++ {
			r := usage()
			got = append(got, r.status)
			if r.status != 200 {
				a.login()
			}
		}
		if fmt.Sprint(got) != "[200 200 400 200 200 400 200]" {
			t.Errorf("statuses %v", got)
		}
	})
	t.Run("refusals counted", func(t *testing.T) {
		a.login()
		a.sim.SetFaults(Faults{MaxRange: 8 * 24 * time.Hour})
		defer a.sim.SetFaults(Faults{})
		a.sim.ResetStats()
		usage()
		usage()
		if r := a.usage(d.Identity, t0.AddDate(0, 0, -8), t0); r.status != 200 {
			t.Errorf("8 days: %v", r)
		}
		if s := a.sim.Stats(); s.RangesRefused != 2 || s.Requests["usage"] != 3 {
			t.Errorf("%d refusals of %d usage requests, want 2 of 3", s.RangesRefused, s.Requests["usage"])
		}
	})
	t.Run("cache repeats", func(t *testing.T) {
		a.login()
		a.sim.SetFaults(Faults{SlowRange: 48 * time.Hour, CacheRepeats: true})
		defer a.sim.SetFaults(Faults{})
		if r := usage(); r.status != 400 {
			t.Errorf("first: %v", r)
		}
		if r := usage(); r.status != 200 {
			t.Errorf("identical repeat: %v", r)
		}
		if r := a.usage(d.Identity, t0.AddDate(0, 0, -8), t0); r.status != 400 {
			t.Errorf("a different request: %v", r)
		}
	})
}

func TestRateCeiling(t *testing.T) {
	a := newAPI(t, Options{Seed: 1, Devices: 3})
	a.login()
	a.sim.ResetStats()
	a.sim.SetFaults(Faults{RateCeiling: 5})
	var n429 int
	start := time.Now()
	for i := 0; i < 12; i++ {
		if r := a.post("/devices/actions/list", map[string]string{"accountName": a.sim.AccountName()}); r.status == 429 {
			n429++
			if r.header.Get("Retry-After") == "" {
				t.Error("a throttled answer without Retry-After")
			}
		}
	}
	s := a.sim.Stats()
	if time.Since(start) < time.Second && (n429 != 7 || s.PeakRPS != 12) {
		t.Errorf("12 requests within a second: %d 429s (want 7), peak %v", n429, s.PeakRPS)
	}
	if n429 == 0 || s.Throttled != n429 || s.Status[429] != n429 {
		t.Errorf("%d 429s, stats %+v", n429, s)
	}
}

// The sliding window counts exactly, on a controlled clock.
func TestRateWindow(t *testing.T) {
	now := time.Unix(1000, 0)
	w := newRateWindow()
	w.base, w.clock = now, func() time.Time { return now }
	var got []int
	for _, step := range []time.Duration{0, 100, 100, 100, 700, 1, 999, 1000, 0} { // milliseconds apart
		now = now.Add(step * time.Millisecond)
		got = append(got, w.arrive())
	}
	// At 1000 ms the arrival of 0 ms has left the window (a window is
	// [t−1 s, t]), at 1001 ms the one of 100 ms has not.
	if want := "[1 2 3 4 4 5 2 1 2]"; fmt.Sprint(got) != want || w.peakRPS() != 5 {
		t.Errorf("window counts %v, peak %d; want %s, peak 5", got, w.peakRPS(), want)
	}
	for i := 0; i < 3000; i++ { // past the ring's first size
		w.arrive()
	}
	if w.peakRPS() != 3002 {
		t.Errorf("peak %d after 3000 simultaneous arrivals, want 3002", w.peakRPS())
	}
}

func TestQuirks(t *testing.T) {
	tests := []struct {
		name   string
		quirks Quirks
		device int
		conn   bool // look at connection events, not usage
		want   *regexp.Regexp
	}{
		{"occuredAt", Quirks{OccuredAt: true}, quirkDevOccuredAt, true, regexp.MustCompile(`"extendedAttributes":null,"occuredAt":"`)},
		{"numbers as numbers: usage", Quirks{NumbersAsNumbers: true}, quirkDevNumbers, false, regexp.MustCompile(`\{"key":"MoSms","value":\d+\}`)},
		{"numbers as numbers: events", Quirks{NumbersAsNumbers: true}, quirkDevNumbers, true, regexp.MustCompile(`\{"key":"BytesUsed","value":\d+\}.*\{"key":"AccountSessionId","value":"[0-9A-F]{8}"\}`)},
		{"numbers as strings", Quirks{NumbersAsStrings: true}, quirkDevStrings, false, regexp.MustCompile(`"bytesUsed":"\d+".*"smsUsed":"\d+"`)},
		{"unknown and hostile keys", Quirks{UnknownKeys: true}, quirkDevUnknown, false, regexp.MustCompile(`\{"key":"RoamingSms","value":"\d"\},\{"key":"x\\"; DROP TABLE usage_daily; --","value":"1"\}`)},
		{"unknown event key", Quirks{UnknownKeys: true}, quirkDevUnknown, true, regexp.MustCompile(`\{"key":"NasPortType","value":"Wireless-Other"\}\]`)},
		{"malformed timestamp", Quirks{BadTimestamp: true}, quirkDevUnknown, false, regexp.MustCompile(`"timestamp":"2026-13-45T99:00:00Z"`)},
		{"non-numeric value", Quirks{BadValue: true}, quirkDevUnknown, false, regexp.MustCompile(`\{"key":"MoSms","value":"lots"\}`)},
		{"hostile keys, raw bytes", Quirks{HostileKeys: true}, quirkDevUnknown, false, regexp.MustCompile(`\{"key":"x\\u0000","value":"v0"\}.*\{"key":"bad[^a-z"]{2}utf8","value":"v5"\}.*\{"key":"(?:Long){1000}(?:Long)+","value":"v16"\}`)},
		{"implausible records", Quirks{Implausible: true}, quirkDevUnknown, false, regexp.MustCompile(`"timestamp":"0001-01-01T00:00:00Z"\}.*"timestamp":"9999-12-31T00:00:00Z"\},\{"bytesUsed":-\d+,`)},
		{"random keys", Quirks{KeySeed: 7}, quirkDevUnknown, false, regexp.MustCompile(`\{"key":"[^}]*","value":"v11"\}\]`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, on := range []bool{true, false} {
				opts := Options{Seed: 1, Devices: 8}
				if on {
					opts.Quirks = tt.quirks
				}
				a := newAPI(t, opts)
				a.login()
				d := a.sim.Devices()
				var raw string
				if tt.conn {
					raw = a.connections(d[tt.device].Identity, t0.AddDate(0, 0, -5), t0).raw
				} else {
					raw = a.usage(d[tt.device].Identity, t0.AddDate(0, 0, -30), t0).raw
				}
				if got := tt.want.MatchString(raw); got != on {
					t.Errorf("quirk on: %v, found: %v in %.300s…", on, got, raw)
				}
				// The other devices never show it.
				for i := range d {
					if i == tt.device || d[i].Silent {
						continue
					}
					if tt.want.MatchString(a.usage(d[i].Identity, t0.AddDate(0, 0, -30), t0).raw + a.connections(d[i].Identity, t0.AddDate(0, 0, -5), t0).raw) {
						t.Errorf("device %d shows the quirk too", i)
					}
				}
			}
		})
	}
	t.Run("truth marks the malformed records", func(t *testing.T) {
		a := newAPI(t, Options{Seed: 1, Devices: 2, Quirks: Quirks{BadTimestamp: true, BadValue: true}})
		var bad []string
		for _, u := range a.sim.TruthUsage(t0, time.Time{}, time.Time{}) {
			if u.Malformed {
				bad = append(bad, u.Date.Format(time.DateOnly))
			}
		}
		if fmt.Sprint(bad) != "[2026-11-11 2026-11-12]" {
			t.Errorf("malformed records %v", bad)
		}
	})
}

func TestFlags(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	o.RegisterFlags(fs)
	err := fs.Parse([]string{"--devices", "7", "--seed", "9", "--latency", "5ms", "--rate-429", "0.1", "--retry-after", "2s", "--rate-5xx", "0.2",
		"--fail-device", "a,b", "--fail-device", "c", "--session-expiry-every", "4", "--max-range", "90d", "--slow-range", "1d12h", "--cache-repeats",
		"--rate-ceiling", "50", "--device-page-size", "100", "--history-page-size", "50", "--reject-login", "--bearer-ttl", "1m", "--quirk-occuredat", "--quirk-numbers",
		"--quirk-number-strings", "--quirk-unknown-keys", "--quirk-bad-timestamp", "--quirk-bad-value",
		"--hostile-devices", "3", "--endless-history", "1s", "--oversized-pages", "60MB", "--giant-answer", "1.5GiB", "--huge-values", "2KiB", "--repeat-device-list"})
	want := Options{Seed: 9, Devices: 7, AccountName: "0000123456-00001", ClientID: "sim-client", ClientSecret: "sim-secret", Username: "sim-user",
		Password: "sim-password", DevicePageSize: 100, HistoryPageSize: 50, Faults: Faults{Latency: 5 * time.Millisecond, Rate429: 0.1, RetryAfter: 2 * time.Second,
			Rate5xx: 0.2, FailDevices: []string{"a", "b", "c"}, SessionExpiryEvery: 4, MaxRange: 90 * 24 * time.Hour, SlowRange: 36 * time.Hour, CacheRepeats: true,
			RateCeiling: 50, RejectLogin: true, BearerTTL: time.Minute,
			HostileDevices: 3, EndlessHistory: time.Second, OversizedPages: 60_000_000, GiantAnswer: 3 << 29, HugeValues: 2048, RepeatDeviceList: true},
		Quirks: Quirks{OccuredAt: true, NumbersAsNumbers: true, NumbersAsStrings: true, UnknownKeys: true, BadTimestamp: true, BadValue: true}}
	if err != nil || fmt.Sprintf("%+v", o) != fmt.Sprintf("%+v", want) {
		t.Errorf("err %v\n got %+v\nwant %+v", err, o, want)
	}
}

func TestBearerTTL(t *testing.T) {
	a := newAPI(t, Options{Seed: 1, Devices: 2, Faults: Faults{BearerTTL: time.Minute}})
	a.login()
	if exp, _ := a.token().m["expires_in"].(json.Number).Int64(); exp != 60 {
		t.Errorf("expires_in = %v, want 60", exp)
	}
	a.clock.Advance(61 * time.Second)
	if r := a.post("/devices/actions/list", map[string]string{"accountName": a.sim.AccountName()}); r.status != 401 || r.code() != "fault 900901" {
		t.Errorf("after the shortened life: %v", r)
	}
}

// Concurrent requests of every kind while stats are read and faults
// change: run with -race.
func TestConcurrentUse(t *testing.T) {
	a := newAPI(t, Options{Seed: 4, Devices: 50})
	a.login()
	devs := a.sim.Devices()
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				d := devs[(g*25+i)%len(devs)]
				var r reply
				switch i % 4 {
				case 0:
					r = a.usage(d.Identity, t0.AddDate(0, -1, 0), t0)
				case 1:
					r = a.connections(d.Identity, t0.AddDate(0, 0, -3), t0)
				case 2:
					r = a.post("/devices/actions/list", map[string]string{"accountName": a.sim.AccountName()})
				case 3:
					r = a.token()
					_ = a.sim.Stats()
					a.sim.SetFaults(Faults{})
				}
				if r.status != 200 {
					errs <- r.String()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	s := a.sim.Stats()
	if n := s.Requests["usage"] + s.Requests["connections"] + s.Requests["devices"] + s.Requests["token"]; n != 201 || s.Status[200] != 202 {
		t.Errorf("stats %+v", s)
	}
	var perDevice int
	for k, n := range s.DeviceRequests {
		if !strings.HasPrefix(k, "usage ") && !strings.HasPrefix(k, "connections ") {
			t.Errorf("device request key %q", k)
		}
		perDevice += n
	}
	if perDevice != s.Requests["usage"]+s.Requests["connections"] {
		t.Errorf("%d device requests counted, %d made", perDevice, s.Requests["usage"]+s.Requests["connections"])
	}
}

// Stats.Busy is the wall time from the first request to the last.
func TestStatsBusy(t *testing.T) {
	s := New(Options{Devices: 1})
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()
	if b := s.Stats().Busy; b != 0 {
		t.Errorf("Busy before any request = %v", b)
	}
	for i := 0; i < 3; i++ {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		resp, err := http.Get(srv.URL + "/nowhere")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if b := s.Stats().Busy; b < 200*time.Millisecond || b > 2*time.Second {
		t.Errorf("Busy after three requests 100 ms apart = %v", b)
	}
	s.ResetStats()
	if b := s.Stats().Busy; b != 0 {
		t.Errorf("Busy after ResetStats = %v", b)
	}
}
