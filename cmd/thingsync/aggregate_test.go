package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/aggregate"
	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/load"
)

// freeAddr is a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// aggregateWorld is a world whose sync runs the aggregate stream with a
// listener on loopback.
func aggregateWorld(t *testing.T, opts simulator.Options) (*world, string) {
	t.Helper()
	if opts.CallbackDelay == 0 {
		opts.CallbackDelay = 5 * time.Millisecond
	}
	if opts.CallbackRetryInterval == 0 {
		opts.CallbackRetryInterval = 100 * time.Millisecond
	}
	w := newWorld(t, opts)
	addr := freeAddr(t)
	url := "http://" + addr + "/thingspace/callback"
	w.env["THINGSYNC_STREAMS"] = "aggregate"
	w.env["THINGSYNC_HTTP_ADDR"] = addr
	w.env["THINGSYNC_CALLBACK_URL"] = url
	w.env["THINGSYNC_CALLBACK_USERNAME"] = "cb-user"
	w.env["THINGSYNC_CALLBACK_PASSWORD"] = "cb-secret"
	return w, url
}

// wantAggregates renders the simulator's truth for every active device with
// an ICCID and every period a first sync asks for.
func (w *world) wantAggregates(at time.Time) []string {
	active := map[string]bool{}
	for _, d := range w.sim.Devices() {
		if !d.Deactivated {
			for _, id := range d.IDs {
				if id.Kind == "iccid" {
					active[id.ID] = true
				}
			}
		}
	}
	var out []string
	for _, p := range aggregate.Periods(at, time.Time{}) {
		for _, a := range w.sim.TruthAggregates(p.From, p.To, at) {
			if active[a.ICCID] {
				out = append(out, fmt.Sprintf("%s|%s|%s|%s|%d|%d|%d|%d", a.Device.Kind, a.Device.ID, a.Start.Format(time.RFC3339),
					a.End.Format(time.RFC3339), a.Data, a.SMS, a.MoSMS, a.MtSMS))
			}
		}
	}
	sort.Strings(out)
	return out
}

func (w *world) gotAggregates() []string {
	got := w.query(`SELECT device_kind, device_id, start_time, end_time, data_usage, sms_usage, mo_sms, mt_sms FROM aggregate_usage`)
	sort.Strings(got)
	return got
}

// A sync with the aggregate stream registers its listener, asks in batches
// of at most 200 ICCIDs and periods of at most a month, stores what the
// simulator delivers, and a rerun of the same deliveries changes nothing.
func TestAggregateEndToEnd(t *testing.T) {
	w, url := aggregateWorld(t, simulator.Options{Devices: 230})
	code, out := w.run("sync")
	if code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, out)
	}
	if got := w.sim.Callbacks()["DeviceUsage"]; got != url {
		t.Errorf("registered listener %q, want %q", got, url)
	}
	want := w.wantAggregates(t0)
	if len(want) == 0 {
		t.Fatal("no truth to compare with")
	}
	diffLines(t, "aggregate_usage", w.gotAggregates(), want)
	reqs := w.query(`SELECT status, device_count, start_time, end_time FROM aggregate_requests ORDER BY ALL`)
	for _, r := range reqs {
		f := strings.Split(r, "|")
		start, _ := time.Parse(time.RFC3339, f[2])
		end, _ := time.Parse(time.RFC3339, f[3])
		if f[0] != "received" || f[1] > "200" && len(f[1]) >= 3 || end.After(start.AddDate(0, 1, 0)) || start.Before(t0.AddDate(0, -6, -1)) {
			t.Errorf("request %s: want received, ≤ 200 devices, at most a month, at most six months back", r)
		}
	}
	if !strings.Contains(out, "aggregate requests") || !strings.Contains(out, "0 pending") {
		t.Errorf("summary does not report the aggregate step: %s", out)
	}

	// Periods ended more than the lookback ago are settled: the next run
	// asks only for the current month, whose rows it overwrites.
	w.clock.Advance(time.Hour)
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("second sync: exit %d\n%s", code, out)
	}
	months := w.query(`SELECT DISTINCT start_time FROM aggregate_requests WHERE requested_at > ?::TIMESTAMPTZ`, t0.Add(30*time.Minute))
	if len(months) != 1 || months[0] != "2026-11-01T00:00:00Z" {
		t.Errorf("second run asked for periods %v, want only the current month", months)
	}
	diffLines(t, "aggregate_usage after a second run", w.gotAggregates(), w.wantAggregates(t0))
}

// The listener trusts nothing it has not checked: wrong credentials, an
// unknown requestId, an oversized or malformed body, a GET → 4xx and
// nothing stored; a repeated delivery changes nothing.
func TestCallbackListener(t *testing.T) {
	w, url := aggregateWorld(t, simulator.Options{Devices: 6})
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, out)
	}
	before := w.gotAggregates()
	reqs := w.query(`SELECT request_id FROM aggregate_requests ORDER BY requested_at LIMIT 1`)

	// The listener of a one-shot sync is gone; serve the daemon's handler.
	env, err := loadTestEnv(w)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	env.Log = zerolog.New(&logs)
	srv := &http.Server{Addr: w.env["THINGSYNC_HTTP_ADDR"], Handler: aggregate.Handler(callbacks(env), load.NewGate(w.db, env.Log), env.Log, (&App{Now: w.clock.Now}).now)}
	ln, err := net.Listen("tcp", w.env["THINGSYNC_HTTP_ADDR"])
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	body := func(user, pass, id string, iccid string) []byte {
		b, _ := json.Marshal(map[string]any{"username": user, "password": pass, "requestId": id, "callbackCount": 1,
			"deviceResponse": map[string]any{"devicePromoUsageResponse": []any{map[string]any{
				"deviceIdentifierCollection": []any{map[string]string{"kind": "ICCID", "id": iccid}},
				"dataUsage":                  "999999999", "smsUsage": "1", "moSms": "1", "mtSms": "0",
				"startDate": "2026-11-01T00:00:00.0000000", "endDate": "2026-11-22T00:00:00.0000000"}}}})
		return b
	}
	iccid := strings.Split(w.query(`SELECT iccid FROM devices WHERE iccid IS NOT NULL LIMIT 1`)[0], "|")[0]
	cases := []struct {
		name   string
		method string
		body   []byte
		want   int
	}{
		{"wrong password", http.MethodPost, body("cb-user", "guess", reqs[0], iccid), http.StatusUnauthorized},
		{"wrong username", http.MethodPost, body("admin", "cb-secret", reqs[0], iccid), http.StatusUnauthorized},
		{"unknown requestId", http.MethodPost, body("cb-user", "cb-secret", "not-a-request", iccid), http.StatusNotFound},
		{"oversized body", http.MethodPost, bytes.Repeat([]byte("x"), 5<<20), http.StatusRequestEntityTooLarge},
		{"not JSON", http.MethodPost, []byte("{"), http.StatusBadRequest},
		{"GET", http.MethodGet, nil, http.StatusMethodNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, url, bytes.NewReader(c.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("status %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
	if strings.Contains(logs.String(), "guess") || strings.Contains(logs.String(), "cb-secret") {
		t.Errorf("a refused callback's credentials reached the log:\n%s", logs.String())
	}
	// A repeat of a stored delivery (even with other values) changes nothing.
	resp, err := http.Post(url, "application/json", bytes.NewReader(body("cb-user", "cb-secret", reqs[0], iccid)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("repeated delivery: status %d, want 200", resp.StatusCode)
	}
	diffLines(t, "aggregate_usage after refused and repeated deliveries", w.gotAggregates(), before)
	if got := w.query(`SELECT count(*) FROM rejected_records`); got[0] != "0" {
		t.Errorf("rejected_records = %v after refused deliveries, want none", got)
	}
}

// The listener down for the first deliveries: the vendor's re-send lands
// the data. A request whose callback never comes is asked again after the
// deadline, and the old one closed.
func TestCallbacksResentAndReasked(t *testing.T) {
	t.Run("resent", func(t *testing.T) {
		// The first delivery of every callback finds nobody; the re-sends
		// wait until the daemon-style listener is up (the one-shot sync
		// gives up waiting at once), so every record lands by a re-send.
		held := heldDeliveries{refuseFirst: true, open: make(chan struct{})}
		w, _ := aggregateWorld(t, simulator.Options{Devices: 6, CallbackRetryInterval: 20 * time.Millisecond,
			CallbackClient: &http.Client{Transport: held}})
		code, out := w.runApp(&App{AggregateWait: time.Nanosecond}, "sync")
		if code != 0 {
			t.Fatalf("sync: exit %d\n%s", code, out)
		}
		requests, _ := strconv.Atoi(w.query(`SELECT count(*) FROM aggregate_requests`)[0])
		// Each request's first delivery refused, its re-send waiting.
		waitFor(t, 20*time.Second, "the first deliveries", func() bool { return w.sim.Stats().CallbackAttempts >= 2*requests })
		if st := w.sim.Stats(); st.CallbacksDelivered != 0 {
			t.Fatalf("callbacks: %d delivered with no listener up", st.CallbacksDelivered)
		}
		// Then the daemon-style listener comes up, and the re-sends land.
		env, err := loadTestEnv(w)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: aggregate.Handler(callbacks(env), load.NewGate(w.db, env.Log), env.Log, (&App{Now: w.clock.Now}).now)}
		ln, err := net.Listen("tcp", w.env["THINGSYNC_HTTP_ADDR"])
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		defer srv.Close()
		close(held.open)
		// Wait on the simulator, not the warehouse: in this one process a
		// read-only open would collide with the listener's commits.
		waitFor(t, 20*time.Second, "both callbacks of every request", func() bool { return w.sim.Stats().CallbacksDelivered >= 2*requests })
		srv.Close()
		if st := w.sim.Stats(); st.CallbacksAbandoned != 0 {
			t.Errorf("%d callbacks given up", st.CallbacksAbandoned)
		}
		diffLines(t, "aggregate_usage after re-sent callbacks", w.gotAggregates(), w.wantAggregates(t0))
	})
	t.Run("reasked", func(t *testing.T) {
		w, _ := aggregateWorld(t, simulator.Options{Devices: 6, Faults: simulator.Faults{LoseCallbacks: 1}})
		code, out := w.runApp(&App{AggregateWait: 2 * time.Second}, "sync")
		if code != 0 {
			t.Fatalf("sync: exit %d\n%s", code, out)
		}
		lost := w.query(`SELECT request_id FROM aggregate_requests WHERE status = 'pending'`)
		if len(lost) != 1 {
			t.Fatalf("pending after the first run: %v, want the one lost request", lost)
		}
		// status shows it with its age.
		w.clock.Advance(time.Minute)
		if code, out := w.run("status"); code != 0 || !strings.Contains(out, "Pending aggregate requests (1)") || !strings.Contains(out, lost[0]) {
			t.Errorf("status: exit %d, want the pending request listed:\n%s", code, out)
		}
		// Before the deadline the lost request is left alone.
		if code, out := w.runApp(&App{AggregateDeadline: time.Hour}, "sync"); code != 0 {
			t.Fatalf("second sync: exit %d\n%s", code, out)
		}
		if got := w.query(`SELECT status FROM aggregate_requests WHERE request_id = ?`, lost[0]); got[0] != "pending" {
			t.Errorf("before its deadline the lost request is %v, want still pending", got)
		}
		w.clock.Advance(2 * time.Hour)
		if code, out := w.runApp(&App{AggregateDeadline: time.Hour}, "sync"); code != 0 {
			t.Fatalf("third sync: exit %d\n%s", code, out)
		}
		got := w.query(`SELECT o.status, n.status, n.start_time = o.start_time AND n.devices = o.devices
			FROM aggregate_requests o JOIN aggregate_requests n ON n.request_id = o.superseded_by WHERE o.request_id = ?`, lost[0])
		if len(got) != 1 || got[0] != "superseded|received|true" {
			t.Errorf("lost request after its deadline: %v, want superseded by a received request for the same devices and period", got)
		}
		diffLines(t, "aggregate_usage after asking again", w.gotAggregates(), w.wantAggregates(t0))
	})
}

// runApp runs a command line with app's tuning (deadlines, waits) at the
// simulator's clock.
func (w *world) runApp(app *App, args ...string) (int, string) {
	w.t.Helper()
	var out, errb bytes.Buffer
	app.Stdout, app.Stderr, app.Now, app.TuneClient = &out, &errb, w.clock.Now, fastClient
	app.LookupEnv = func(k string) (string, bool) { v, ok := w.env[k]; return v, ok }
	code := ExitCode(app.Run(context.Background(), args), &errb)
	return code, out.String() + errb.String()
}

// loadTestEnv is the world's configuration as a command sees it.
func loadTestEnv(w *world) (*Env, error) {
	cfg, err := config.Load(context.Background(), envconfig.LookuperFunc(func(k string) (string, bool) { v, ok := w.env[k]; return v, ok }),
		w.clock.Now(), config.Needs{API: true})
	if err != nil {
		return nil, err
	}
	return &Env{Config: cfg, Log: zerolog.Nop()}, nil
}

// heldDeliveries is a callback transport for the simulator: deliveries
// wait until open is closed, and with refuseFirst the first delivery of
// each callback fails at once, as with nobody listening.
type heldDeliveries struct {
	refuseFirst bool
	open        chan struct{}
}

func (h heldDeliveries) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := r.GetBody()
	if err != nil {
		return nil, err
	}
	var cb struct{ CallbackCount int }
	if err := json.NewDecoder(body).Decode(&cb); err != nil {
		return nil, err
	}
	if h.refuseFirst && cb.CallbackCount <= 1 {
		return nil, fmt.Errorf("dial %s: %w", r.URL.Host, syscall.ECONNREFUSED)
	}
	select {
	case <-h.open:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	return http.DefaultTransport.RoundTrip(r)
}
