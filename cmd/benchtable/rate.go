package main

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	gosync "sync"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
)

// adaptiveRate syncs with THINGSYNC_RATE_LIMIT=auto:1000 against simulators
// whose rate ceilings (20, 50 and 200 requests/s, 429 with Retry-After: 1
// past them) the client does not know, with 30 ms latency and 32 devices
// in flight, so that the ceiling, not latency × concurrency (about
// 1,000/s), binds. Each sync has about two minutes of requests at its
// ceiling. Per ceiling: the successful answers per second as a share of the
// ceiling from 30 s after the first request until 90% of the answers are in
// (the steady state, without the run's tail of last devices), the share of
// requests answered 429 over the whole run, and when the mean of the last
// 5 s first reached 85% of the ceiling.
func adaptiveRate(bin, dir string, now time.Time) []result {
	var out []result
	for i, ceiling := range []float64{20, 50, 200} {
		// A first sync of 30 days in windows of at most 3 days of
		// connections asks about 13 requests a device.
		devices := int(ceiling * 120 / 13)
		s, rec := serveRecorded(simulator.Options{Seed: 4, Devices: devices, Clock: simulator.NewManualClock(now),
			Faults: simulator.Faults{Latency: 30 * time.Millisecond, RateCeiling: ceiling}})
		_, _ = sync(bin, s, filepath.Join(dir, fmt.Sprintf("auto%g.duckdb", ceiling)), map[string]string{
			"THINGSYNC_RATE_LIMIT": "auto:1000", "THINGSYNC_CONCURRENCY": "32", "THINGSYNC_WINDOW_CONNECTIONS": "3d",
			"THINGSYNC_START": now.AddDate(0, 0, -30).Format("2006-01-02")})
		s.close()
		r := rec.measure(ceiling)
		name := ""
		if i == 0 {
			name = "adaptive rate (auto, 30 ms latency)"
		}
		out = append(out, result{name, fmt.Sprintf("ceiling %g/s: steady, 429s", ceiling),
			fmt.Sprintf("%.1f%%, %.2f%%", 100*r.steady, 100*r.throttled),
			fmt.Sprintf("85%% after %s (≥ 85%%, ≤ 2%%, ≤ 60 s); %d requests in %.0fs", r.reach85Text(), r.requests, r.span.Seconds())})
	}
	return out
}

// answers records when each answer left the simulator and its status.
type answers struct {
	mu    gosync.Mutex
	at    []time.Duration // since the first answer
	ok    []bool          // not a 429
	first time.Time
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// serveRecorded is serve with every answer's time and status recorded.
func serveRecorded(o simulator.Options) (*server, *answers) {
	sim := simulator.New(o)
	rec := &answers{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusRecorder{ResponseWriter: w}
		sim.ServeHTTP(sw, r)
		t := time.Now()
		rec.mu.Lock()
		if rec.first.IsZero() {
			rec.first = t
		}
		rec.at = append(rec.at, t.Sub(rec.first))
		rec.ok = append(rec.ok, sw.status != http.StatusTooManyRequests)
		rec.mu.Unlock()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	return &server{sim: sim, url: "http://" + ln.Addr().String(), srv: srv}, rec
}

type rateFigures struct {
	steady, throttled float64
	reach85           time.Duration // -1: never
	requests          int
	span              time.Duration
}

func (r rateFigures) reach85Text() string {
	if r.reach85 < 0 {
		return "never"
	}
	return fmt.Sprintf("%.0fs", r.reach85.Seconds())
}

func (a *answers) measure(ceiling float64) rateFigures {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := rateFigures{requests: len(a.at), reach85: -1}
	if len(a.at) == 0 {
		return f
	}
	f.span = a.at[len(a.at)-1]
	perSec := make([]int, int(f.span/time.Second)+1)
	throttled := 0
	for i, t := range a.at {
		if a.ok[i] {
			perSec[int(t/time.Second)]++
		} else {
			throttled++
		}
	}
	f.throttled = float64(throttled) / float64(len(a.at))
	for s := 5; s <= len(perSec); s++ {
		sum := 0
		for _, n := range perSec[s-5 : s] {
			sum += n
		}
		if float64(sum)/5 >= 0.85*ceiling {
			f.reach85 = time.Duration(s) * time.Second
			break
		}
	}
	const from = 30 * time.Second
	to := a.at[len(a.at)*9/10]
	n := 0
	for i, t := range a.at {
		if a.ok[i] && t >= from && t < to {
			n++
		}
	}
	if to > from {
		f.steady = float64(n) / (to - from).Seconds() / ceiling
	}
	return f
}
