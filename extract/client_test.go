package extract_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/schema"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	sim    *simulator.Simulator
	srv    *httptest.Server
	client *extract.Client
	clock  *simulator.ManualClock
	logs   *syncBuffer
}

func setup(t *testing.T, opts simulator.Options, tweak func(*extract.ClientConfig)) *env {
	t.Helper()
	clock := simulator.NewManualClock(t0)
	if opts.Clock == nil {
		opts.Clock = clock
	}
	if opts.Devices == 0 {
		opts.Devices = 20
	}
	sim := simulator.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	id, secret, user, pass := sim.Credentials()
	cfg := extract.ClientConfig{
		BaseURL: srv.URL, ClientID: id, ClientSecret: secret, Username: user, Password: pass,
		AccountName: sim.AccountName(), RateLimit: 1000, Concurrency: 8,
		BackoffBase: 5 * time.Millisecond, UnexpectedErrorPause: 10 * time.Millisecond,
		RequestTimeout: 5 * time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	logs := &syncBuffer{}
	allLogs.add(logs)
	c, err := extract.NewClient(cfg, zerolog.New(logs).Level(zerolog.DebugLevel))
	if err != nil {
		t.Fatal(err)
	}
	return &env{sim: sim, srv: srv, client: c, clock: clock, logs: logs}
}

// allLogs keeps every test's log output so one test can check that no
// secret ever reached a line.
var allLogs = &logSet{}

type logSet struct {
	mu   sync.Mutex
	bufs []*syncBuffer
}

func (l *logSet) add(b *syncBuffer) { l.mu.Lock(); l.bufs = append(l.bufs, b); l.mu.Unlock() }

// wallClock is the simulator's clock when a test is about real time.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func firstActive(t *testing.T, sim *simulator.Simulator) extract.DeviceID {
	for _, d := range sim.Devices() {
		if !d.Silent && d.Identity.Kind == "iccid" {
			return extract.DeviceID{Kind: d.Identity.Kind, ID: d.Identity.ID}
		}
	}
	t.Fatal("no active device")
	return extract.DeviceID{}
}

func TestClient(t *testing.T) {
	ctx := context.Background()

	t.Run("token reused across many calls", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 1}, nil)
		id := firstActive(t, e.sim)
		for i := 0; i < 20; i++ {
			if _, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0); err != nil {
				t.Fatal(err)
			}
		}
		if s := e.sim.Stats(); s.TokenRequests != 1 || s.Logins != 1 {
			t.Errorf("token requests %d, logins %d; want 1 and 1", s.TokenRequests, s.Logins)
		}
	})

	t.Run("short-lived token reused until it expires", func(t *testing.T) {
		// 30 s of life by the simulator's clock, which stands still: the
		// token outlives the test, so one token request serves every call.
		e := setup(t, simulator.Options{Seed: 1, Faults: simulator.Faults{BearerTTL: 30 * time.Second}}, nil)
		id := firstActive(t, e.sim)
		for i := 0; i < 20; i++ {
			if _, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0); err != nil {
				t.Fatal(err)
			}
		}
		if s := e.sim.Stats(); s.TokenRequests != 1 {
			t.Errorf("token requests %d for 20 calls with a 30 s token, want 1", s.TokenRequests)
		}
	})

	t.Run("one token request per token life, by the wall clock", func(t *testing.T) {
		// Tokens live 2 s on the wall clock; the client calls for 4 s. It
		// asks for a token when its token expires or is refused, about
		// once every 2 s, not before every call.
		const ttl = 2 * time.Second
		e := setup(t, simulator.Options{Seed: 1, Clock: wallClock{}, Faults: simulator.Faults{BearerTTL: ttl, Latency: 5 * time.Millisecond}}, nil)
		id := firstActive(t, e.sim)
		start, calls := time.Now(), 0
		for time.Since(start) < 2*ttl {
			if _, err := e.client.UsagePage(ctx, id, time.Now().AddDate(0, 0, -2), time.Now()); err != nil {
				t.Fatal(err)
			}
			calls++
		}
		elapsed := time.Since(start)
		tokens := e.sim.Stats().TokenRequests
		t.Logf("%d calls, %d token requests in %v", calls, tokens, elapsed.Round(time.Millisecond))
		if limit := int(elapsed/ttl) + 2; tokens > limit {
			t.Errorf("%d token requests for %d calls in %v with a %v token, want at most %d", tokens, calls, elapsed, ttl, limit)
		}
	})

	t.Run("a rejected login is sticky; a locked user says so", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 1}, func(c *extract.ClientConfig) { c.Password = "wrong" })
		for i := 0; i < 2; i++ {
			if err := e.client.Login(ctx); !errors.Is(err, extract.ErrLoginRejected) || !strings.Contains(err.Error(), "THINGSPACE_PASSWORD") {
				t.Fatalf("login %d: %v, want a rejected login naming THINGSPACE_PASSWORD", i, err)
			}
		}
		if n := e.sim.Stats().Logins; n != 1 {
			t.Errorf("%d login attempts, want 1: a rejected login is never repeated", n)
		}
		// Four more clients, four more failures: the user is locked.
		id, secret, user, _ := e.sim.Credentials()
		for i := 0; i < 5; i++ {
			c, err := extract.NewClient(extract.ClientConfig{BaseURL: e.srv.URL, ClientID: id, ClientSecret: secret,
				Username: user, Password: "wrong", RateLimit: 1000}, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			err = c.Login(ctx)
			if i == 4 && (!errors.Is(err, extract.ErrLoginRejected) || !strings.Contains(err.Error(), "locked")) {
				t.Errorf("sixth login: %v, want a rejected login that says the user is locked", err)
			}
		}
	})

	t.Run("expired bearer renewed once, call not lost", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 1}, nil)
		id := firstActive(t, e.sim)
		if _, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0); err != nil {
			t.Fatal(err)
		}
		e.sim.ExpireBearerTokens()
		if _, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0); err != nil {
			t.Fatalf("after bearer expiry: %v", err)
		}
		if s := e.sim.Stats(); s.TokenRequests != 2 || s.Status[401] != 1 {
			t.Errorf("token requests %d, 401s %d; want 2 and 1", s.TokenRequests, s.Status[401])
		}
	})

	t.Run("session expiry under concurrency: one re-login, no lost call", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 1}, nil)
		id := firstActive(t, e.sim)
		if err := e.client.Login(ctx); err != nil {
			t.Fatal(err)
		}
		e.sim.ExpireSessions()
		var g errgroup.Group
		for i := 0; i < 16; i++ {
			g.Go(func() error {
				_, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatalf("a call was lost: %v", err)
		}
		if s := e.sim.Stats(); s.Logins != 2 {
			t.Errorf("logins %d, want 2 (first and one re-login)", s.Logins)
		}
		if c := e.client.Counters(); c.Relogins != 1 {
			t.Errorf("relogins %d, want 1", c.Relogins)
		}
	})

	t.Run("idle session expiry on the clock", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 1}, nil)
		id := firstActive(t, e.sim)
		if _, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(25 * time.Minute)
		if _, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0); err != nil {
			t.Fatalf("after idle expiry: %v", err)
		}
		if s := e.sim.Stats(); s.Logins != 2 {
			t.Errorf("logins %d, want 2", s.Logins)
		}
	})

	t.Run("rejected login: one attempt, a clear typed error, never again", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 1}, func(c *extract.ClientConfig) { c.Password = "wrong-password-xyz" })
		id := firstActive(t, e.sim)
		_, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0)
		if !errors.Is(err, extract.ErrLoginRejected) {
			t.Fatalf("err = %v, want ErrLoginRejected", err)
		}
		if !strings.Contains(err.Error(), "THINGSPACE_PASSWORD") {
			t.Errorf("error does not tell what to check: %v", err)
		}
		for i := 0; i < 3; i++ {
			if _, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0); !errors.Is(err, extract.ErrLoginRejected) {
				t.Fatalf("later call: %v", err)
			}
		}
		if s := e.sim.Stats(); s.Logins != 1 {
			t.Errorf("login attempts %d, want exactly 1", s.Logins)
		}
	})

	t.Run("429 with Retry-After honoured", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 1}, nil)
		id := firstActive(t, e.sim)
		if err := e.client.Login(ctx); err != nil {
			t.Fatal(err)
		}
		e.sim.SetFaults(simulator.Faults{Rate429: 1, RetryAfter: time.Second})
		// The fault is cleared once the simulator has answered the 429,
		// well inside the second the client must wait before its retry.
		cleared := make(chan error, 1)
		go func() {
			deadline := time.Now().Add(10 * time.Second)
			for e.sim.Stats().Status[429] == 0 {
				if time.Now().After(deadline) {
					cleared <- errors.New("no 429 answered within 10 s")
					return
				}
				time.Sleep(time.Millisecond)
			}
			e.sim.SetFaults(simulator.Faults{})
			cleared <- nil
		}()
		start := time.Now()
		if _, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0); err != nil {
			t.Fatal(err)
		}
		if err := <-cleared; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("retried after %v, before the 1 s Retry-After", d)
		}
		if c := e.client.Counters(); c.Status["usage"][429] != 1 || c.Retries["usage"] != 1 {
			t.Errorf("counters %+v", c)
		}
	})

	t.Run("5xx retried then given up with a typed error", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 1}, func(c *extract.ClientConfig) { c.MaxRetries = 3 })
		id := firstActive(t, e.sim)
		if err := e.client.Login(ctx); err != nil {
			t.Fatal(err)
		}
		e.sim.SetFaults(simulator.Faults{Rate5xx: 1})
		_, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0)
		var apiErr *extract.APIError
		if !errors.As(err, &apiErr) || apiErr.Status < 500 {
			t.Fatalf("err = %v, want an *APIError with a 5xx status", err)
		}
		if n := e.sim.Stats().Requests["usage"]; n != 4 {
			t.Errorf("usage requests %d, want 4 (one and three retries)", n)
		}
	})

	t.Run("observer hears every attempt as it ends", func(t *testing.T) {
		obs := &tally{}
		e := setup(t, simulator.Options{Seed: 1}, func(c *extract.ClientConfig) {
			c.Observer = obs
			c.MaxRetries = 2
		})
		if got := obs.limits; len(got) != 1 || got[0] != 1000 {
			t.Errorf("rate limits heard %v, want [1000] from NewClient", got)
		}
		id := firstActive(t, e.sim)
		// Seeded 5xx: some calls retried, some given up.
		e.sim.SetFaults(simulator.Faults{Rate5xx: 0.4})
		for i := 0; i < 12; i++ {
			_, _ = e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0)
		}
		// Answers too slow for the attempt's timeout: attempts without a
		// status.
		e.sim.SetFaults(simulator.Faults{Latency: time.Second})
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, _ = e.client.UsagePage(short, id, t0.AddDate(0, 0, -5), t0)
		cancel()

		c := e.client.Counters()
		obs.mu.Lock()
		defer obs.mu.Unlock()
		if c.Retries["usage"] == 0 || c.Status["usage"][200] == 0 || obs.status["usage"][0] == 0 {
			t.Fatalf("the faults made no retry, success or unanswered attempt: counters %+v, heard %+v", c, obs.status)
		}
		for ep, n := range c.Requests {
			heard := 0
			for status, k := range obs.status[ep] {
				heard += k
				if status != 0 && c.Status[ep][status] != k {
					t.Errorf("%s %d: heard %d, counted %d", ep, status, k, c.Status[ep][status])
				}
			}
			if heard != n || obs.retries[ep] != c.Retries[ep] {
				t.Errorf("%s: heard %d attempts and %d retries, counted %d and %d", ep, heard, obs.retries[ep], n, c.Retries[ep])
			}
		}
		if c.Requests["token"] != 1 || obs.status["token"][200] != 1 {
			t.Errorf("token: counted %d, heard %v; want the one token request", c.Requests["token"], obs.status["token"])
		}
	})

	t.Run("rate ceiling held under concurrency", func(t *testing.T) {
		// The ceiling is measured where the client sends, not where the
		// simulator receives: arrivals jitter on a loaded machine (one
		// late request lets the next ones bunch up in the server's
		// window) while the client's own sending holds its pace.
		sent := &sendTimes{base: http.DefaultTransport}
		e := setup(t, simulator.Options{Seed: 1}, func(c *extract.ClientConfig) {
			c.RateLimit = 20
			c.HTTPClient = &http.Client{Transport: sent}
		})
		id := firstActive(t, e.sim)
		if err := e.client.Login(ctx); err != nil {
			t.Fatal(err)
		}
		e.sim.ResetStats()
		sent.reset()
		var g errgroup.Group
		for i := 0; i < 8; i++ {
			g.Go(func() error {
				for j := 0; j < 8; j++ {
					if _, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -2), t0); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		times := sent.all()
		if len(times) != 64 {
			t.Fatalf("%d requests sent, want 64", len(times))
		}
		// Burst 1 at 20/s: 64 requests span at least 63/20 = 3.15 s from
		// the first send to the last, however late goroutines wake on a
		// loaded machine (lateness only stretches the span); a second's
		// window can hold a few more than 21 when late sends bunch up
		// behind on-time ones, but not a burst of the eight senders.
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		if span := times[len(times)-1].Sub(times[0]); span < 3*time.Second {
			t.Errorf("64 requests sent within %v; at 20/s they take at least 3.15 s", span)
		}
		if peak := peakPerSecond(times); peak > 28 {
			t.Errorf("peak %d requests sent within one second, ceiling 20", peak)
		}
		t.Logf("peak at the simulator (arrivals): %v requests/s", e.sim.Stats().PeakRPS)
	})

	t.Run("paging with the boundary record repeated: every record once", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 3}, nil)
		id := firstActive(t, e.sim)
		from := t0.AddDate(0, -6, 0)
		evs, err := e.client.ConnectionHistory(ctx, id, from, t0)
		if err != nil {
			t.Fatal(err)
		}
		want := e.sim.TruthEvents(t0, from, t0.Add(time.Second), simulator.ID{Kind: id.Kind, ID: id.ID})
		if len(evs) != len(want) || len(want) <= 500 {
			t.Fatalf("got %d events, truth %d (want > 500 to page)", len(evs), len(want))
		}
		for i := range want {
			if !evs[i].OccurredAt.Equal(want[i].OccurredAt) {
				t.Fatalf("event %d at %v, want %v", i, evs[i].OccurredAt, want[i].OccurredAt)
			}
		}
		if n := e.sim.Stats().Requests["connections"]; n < 2 {
			t.Errorf("%d requests: the history did not page", n)
		}
		usage, err := e.client.UsageHistory(ctx, id, schema.RetentionFloor(t0), t0)
		if err != nil {
			t.Fatal(err)
		}
		if wantU := e.sim.TruthUsage(t0, time.Time{}, time.Time{}, simulator.ID{Kind: id.Kind, ID: id.ID}); len(usage) != len(wantU) {
			t.Errorf("usage: %d records, truth %d", len(usage), len(wantU))
		}
	})

	t.Run("device paging over several pages", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 1, Devices: 45, DevicePageSize: 10}, nil)
		var n, pages int
		seen := map[string]bool{}
		err := e.client.Devices(ctx, func(ds []extract.Device, _ bool) error {
			pages++
			for _, d := range ds {
				id, _ := extract.Identity(d.DeviceIDs)
				if seen[id.String()] {
					t.Errorf("device %s listed twice", id)
				}
				seen[id.String()] = true
				n++
			}
			return nil
		})
		if err != nil || n != 45 || pages != 5 {
			t.Errorf("listed %d devices in %d pages, err %v; want 45 in 5", n, pages, err)
		}
	})

	t.Run("UnexpectedError: one retry, then a range timeout", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 1, Faults: simulator.Faults{SlowRange: 48 * time.Hour}}, nil)
		id := firstActive(t, e.sim)
		_, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -5), t0)
		if !errors.Is(err, extract.ErrRangeTimeout) {
			t.Fatalf("err = %v, want ErrRangeTimeout", err)
		}
		if n := e.sim.Stats().Requests["usage"]; n != 2 {
			t.Errorf("%d usage requests, want 2 (one repeat)", n)
		}
		e.sim.SetFaults(simulator.Faults{SlowRange: 48 * time.Hour, CacheRepeats: true})
		if _, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -9), t0); err != nil {
			t.Errorf("with the API's cache the repeat should succeed: %v", err)
		}
	})

	t.Run("cancellation stops promptly", func(t *testing.T) {
		block := make(chan struct{})
		e := setup(t, simulator.Options{Seed: 1}, nil)
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/devices/usage") {
				select {
				case <-block:
				case <-r.Context().Done():
				}
				return
			}
			e.sim.ServeHTTP(w, r)
		}))
		defer slow.Close()
		defer close(block)
		id0, secret, user, pass := e.sim.Credentials()
		c, _ := extract.NewClient(extract.ClientConfig{BaseURL: slow.URL, ClientID: id0, ClientSecret: secret, Username: user,
			Password: pass, AccountName: e.sim.AccountName(), RateLimit: 100}, zerolog.Nop())
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.UsagePage(cctx, firstActive(t, e.sim), t0.AddDate(0, 0, -5), t0)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v to stop", d)
		}
	})

	t.Run("a failing device gives up with a typed error", func(t *testing.T) {
		e := setup(t, simulator.Options{Seed: 1}, func(c *extract.ClientConfig) { c.MaxRetries = 2 })
		id := firstActive(t, e.sim)
		e.sim.SetFaults(simulator.Faults{FailDevices: []string{id.ID}})
		_, err := e.client.UsageHistory(ctx, id, t0.AddDate(0, 0, -5), t0)
		var apiErr *extract.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != "REQUEST_FAILED.InternalError" {
			t.Errorf("err = %v", err)
		}
	})

	// Last: every log line every subtest wrote, at debug level.
	t.Run("secrets absent from every log line", func(t *testing.T) {
		allLogs.mu.Lock()
		defer allLogs.mu.Unlock()
		var all strings.Builder
		for _, b := range allLogs.bufs {
			all.WriteString(b.String())
		}
		if all.Len() == 0 {
			t.Fatal("no logs captured")
		}
		for _, secret := range []string{"sim-secret", "sim-password", "wrong-password-xyz", "Bearer "} {
			if strings.Contains(all.String(), secret) {
				t.Errorf("a log line contains %q", secret)
			}
		}
	})
}

// sendTimes is a transport that notes when the client hands it each
// request: the moment the client decided to send.
type sendTimes struct {
	base  http.RoundTripper
	mu    sync.Mutex
	times []time.Time
}

func (s *sendTimes) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.times = append(s.times, time.Now())
	s.mu.Unlock()
	return s.base.RoundTrip(r)
}

func (s *sendTimes) reset() { s.mu.Lock(); s.times = nil; s.mu.Unlock() }

func (s *sendTimes) all() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.times...)
}

// peakPerSecond is the most of times (in order) within any one second,
// both ends included.
func peakPerSecond(times []time.Time) int {
	peak, from := 0, 0
	for i, at := range times {
		for at.Sub(times[from]) > time.Second {
			from++
		}
		peak = max(peak, i-from+1)
	}
	return peak
}

// tally is an extract.Observer that counts what it hears.
type tally struct {
	mu      sync.Mutex
	status  map[string]map[int]int
	retries map[string]int
	limits  []float64
}

func (o *tally) Attempt(endpoint string, status int, retry bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.status == nil {
		o.status, o.retries = map[string]map[int]int{}, map[string]int{}
	}
	if o.status[endpoint] == nil {
		o.status[endpoint] = map[int]int{}
	}
	o.status[endpoint][status]++
	if retry {
		o.retries[endpoint]++
	}
}

func (o *tally) RateLimit(perSecond float64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.limits = append(o.limits, perSecond)
}
