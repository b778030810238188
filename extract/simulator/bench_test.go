package simulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// login obtains a bearer and a session by calling the handler in-process.
func login(tb testing.TB, sim *Simulator) (bearer, session string) {
	tb.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/api/ts/v1/oauth2/token", bytes.NewReader([]byte("grant_type=client_credentials")))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(sim.opts.ClientID, sim.opts.ClientSecret)
	sim.ServeHTTP(w, r)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || tok.AccessToken == "" {
		tb.Fatalf("token: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	r = httptest.NewRequest(http.MethodPost, m2m+"/session/login", bytes.NewReader([]byte(`{"username":"`+sim.opts.Username+`","password":"`+sim.opts.Password+`"}`)))
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	sim.ServeHTTP(w, r)
	var sess struct{ SessionToken string }
	if err := json.Unmarshal(w.Body.Bytes(), &sess); err != nil || sess.SessionToken == "" {
		tb.Fatalf("login: %d %s", w.Code, w.Body)
	}
	return tok.AccessToken, sess.SessionToken
}

// discard is a ResponseWriter that keeps only the status and size.
type discard struct {
	h    http.Header
	code int
	n    int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(c int)           { d.code = c }
func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }

// benchHandler measures the handler alone (no network) answering history
// requests over days days for 1,000 devices in turn, from parallel
// goroutines.
func benchHandler(b *testing.B, path string, days int) {
	sim := New(Options{Seed: 1, Devices: 1000, Clock: NewManualClock(t0)})
	b.Cleanup(sim.Close)
	bearer, session := login(b, sim)
	devs := sim.Devices()
	bodies := make([][]byte, len(devs))
	from := t0.AddDate(0, 0, -days).Format(time.RFC3339)
	for i, d := range devs {
		bodies[i] = []byte(`{"deviceId":{"kind":"` + d.Kinds[0] + `","id":"` + d.IDs[0].ID + `"},"earliest":"` + from + `","latest":"` + t0.Format(time.RFC3339) + `"}`)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discard{h: http.Header{}}
		body := bytes.NewReader(nil)
		r := httptest.NewRequest(http.MethodPost, m2m+path, body)
		r.Header.Set("Authorization", "Bearer "+bearer)
		r.Header.Set("VZ-M2M-Token", session)
		for i := 0; pb.Next(); i++ {
			body.Reset(bodies[i%len(bodies)])
			w.code, w.n = 0, 0
			clear(w.h)
			sim.ServeHTTP(w, r)
			if w.code != http.StatusOK && w.code != http.StatusAccepted {
				b.Errorf("status %d", w.code)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func BenchmarkUsageYear(b *testing.B) { benchHandler(b, "/devices/usage/actions/list", 365) }
func BenchmarkUsageDay(b *testing.B)  { benchHandler(b, "/devices/usage/actions/list", 1) }
func BenchmarkConnections3Days(b *testing.B) {
	benchHandler(b, "/devices/connections/actions/listHistory", 3)
}
func BenchmarkConnectionsYear(b *testing.B) {
	benchHandler(b, "/devices/connections/actions/listHistory", 365)
}

// BenchmarkLoopback measures requests through a real loopback HTTP server
// (client and server share the machine): a month of usage per request.
func BenchmarkLoopback(b *testing.B) {
	sim := New(Options{Seed: 1, Devices: 1000, Clock: NewManualClock(t0)})
	srv := httptest.NewServer(sim)
	b.Cleanup(func() { srv.Close(); sim.Close() })
	bearer, session := login(b, sim)
	devs := sim.Devices()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	from := t0.AddDate(0, -1, 0).Format(time.RFC3339)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			d := devs[i%len(devs)]
			body := `{"deviceId":{"kind":"` + d.Kinds[0] + `","id":"` + d.IDs[0].ID + `"},"earliest":"` + from + `","latest":"` + t0.Format(time.RFC3339) + `"}`
			req, _ := http.NewRequest(http.MethodPost, srv.URL+m2m+"/devices/usage/actions/list", bytes.NewReader([]byte(body)))
			req.Header.Set("Authorization", "Bearer "+bearer)
			req.Header.Set("VZ-M2M-Token", session)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// benchDeviceList builds an account of n devices and lists every device,
// pages of 2,000 as the API's, through the handler (no network): the cost
// of New plus serving the whole list, with the client's part reduced to
// reading each page's last DeviceId.
func benchDeviceList(b *testing.B, opts Options) {
	opts.Clock = NewManualClock(t0)
	for range b.N {
		sim := New(opts)
		bearer, session := login(b, sim)
		listed, pages := 0, 0
		var cursor *int64
		for {
			body, _ := json.Marshal(map[string]any{"accountName": sim.AccountName(), "largestDeviceIdSeen": cursor})
			r := httptest.NewRequest(http.MethodPost, m2m+"/devices/actions/list", bytes.NewReader(body))
			r.Header.Set("Authorization", "Bearer "+bearer)
			r.Header.Set("VZ-M2M-Token", session)
			w := httptest.NewRecorder()
			sim.ServeHTTP(w, r)
			var page struct {
				HasMoreData bool
				Devices     []struct{ ExtendedAttributes []kvJSON }
			}
			if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || len(page.Devices) == 0 {
				b.Fatalf("page %d: %d %v", pages, w.Code, err)
			}
			pages++
			listed += len(page.Devices)
			last := page.Devices[len(page.Devices)-1].ExtendedAttributes[0].Value
			n, _ := strconv.ParseInt(last, 10, 64)
			cursor = &n
			if !page.HasMoreData {
				break
			}
		}
		if listed != opts.Devices {
			b.Fatalf("listed %d devices, want %d", listed, opts.Devices)
		}
		sim.Close()
	}
}

// The device list of fleets with the default mix: peak RSS is the
// process's (go test -c, then /usr/bin/time -v ./simulator.test
// -test.run '^$' -test.bench DeviceList1M -test.benchtime 1x).
func BenchmarkDeviceList10k(b *testing.B) {
	benchDeviceList(b, Options{Seed: 1, Devices: 10_000, Fleet: DefaultFleetMix()})
}

func BenchmarkDeviceList1M(b *testing.B) {
	benchDeviceList(b, Options{Seed: 1, Devices: 1_000_000, Fleet: DefaultFleetMix()})
}
