package extract_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/internal/testseed"
)

// fakeClock is a simulated clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: t0} }
func within(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }
func sendFor(a *extract.AdaptiveRate, c *fakeClock, d time.Duration) time.Time {
	// Sends at the controller's rate for d, every answer clean; returns
	// the last send time.
	var last time.Time
	for end := c.t.Add(d); c.t.Before(end); {
		last = a.Sent()
		a.Answered(last, http.StatusOK, 0)
		c.add(time.Duration(float64(time.Second) / a.Rate()))
	}
	return last
}

func TestAdaptiveRate(t *testing.T) {
	t.Run("starts at 10 and rises while clean and in use", func(t *testing.T) {
		c := newFakeClock()
		var heard []float64
		a := extract.NewAdaptiveRate(0, 1000, 0.5, c.now, func(r float64) { heard = append(heard, r) })
		if a.Rate() != extract.RateStart || len(heard) != 1 || heard[0] != extract.RateStart {
			t.Fatalf("rate %v, heard %v; want %v first", a.Rate(), heard, extract.RateStart)
		}
		sendFor(a, c, 10*time.Second)
		if a.Rate() < 50 {
			t.Errorf("after 10 s clean at the rate: %.1f/s, want it above 50", a.Rate())
		}
		for i := 1; i < len(heard); i++ {
			if heard[i] <= heard[i-1] {
				t.Fatalf("rate fell without a throttle: %v", heard)
			}
		}
		if heard[len(heard)-1] != a.Rate() {
			t.Errorf("last rate heard %v, rate %v", heard[len(heard)-1], a.Rate())
		}
		if l, ok := a.Learned(); ok {
			t.Errorf("learned %v without meeting a ceiling from a cold start", l)
		}
	})

	t.Run("does not rise while the client sends below it", func(t *testing.T) {
		c := newFakeClock()
		a := extract.NewAdaptiveRate(0, 1000, 0.5, c.now, nil)
		for i := 0; i < 100; i++ { // 2/s for 50 s
			a.Answered(a.Sent(), http.StatusOK, 0)
			c.add(500 * time.Millisecond)
		}
		if a.Rate() != extract.RateStart {
			t.Errorf("rate %.1f after sending at 2/s, want %v", a.Rate(), extract.RateStart)
		}
	})

	t.Run("never above Max", func(t *testing.T) {
		c := newFakeClock()
		a := extract.NewAdaptiveRate(500, 40, 0.5, c.now, nil)
		if a.Rate() != 40 {
			t.Fatalf("learned 500 under max 40: starts at %v", a.Rate())
		}
		sendFor(a, c, 2*time.Minute)
		if a.Rate() != 40 {
			t.Errorf("rate %v after two clean minutes, max 40", a.Rate())
		}
	})

	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprintf("cut on %d and Retry-After honoured", status), func(t *testing.T) {
			c := newFakeClock()
			a := extract.NewAdaptiveRate(0, 1000, 0.5, c.now, nil)
			sendFor(a, c, 8*time.Second)
			before := a.Rate()
			sent := a.Sent()
			inFlight := a.Sent() // sent before the cut, answered after it
			c.add(30 * time.Millisecond)
			a.Answered(sent, status, time.Second)
			after := a.Rate()
			// The cut keeps 0.9 of what was sent over the last second:
			// at most the rate, at least what the rate was a second ago.
			if after >= 0.9*before+1e-9 || after < 0.9*before/1.25-1e-9 {
				t.Errorf("rate %.2f -> %.2f on %d, want 0.9 of the rate sent over the last second", before, after, status)
			}
			if a.Cuts() != 1 {
				t.Errorf("%d cuts", a.Cuts())
			}
			if until := a.PausedUntil(); !until.Equal(c.t.Add(time.Second)) {
				t.Errorf("paused until %v, want the answer's Retry-After (1 s after %v)", until, c.t)
			}
			c.add(5 * time.Millisecond)
			a.Answered(inFlight, status, time.Second)
			if a.Rate() != after || a.Cuts() != 1 {
				t.Errorf("a throttled request sent before the cut cut again: %.2f -> %.2f, %d cuts", after, a.Rate(), a.Cuts())
			}
			if until := a.PausedUntil(); !until.Equal(c.t.Add(time.Second)) {
				t.Errorf("its Retry-After was not honoured: paused until %v", until)
			}
			if l, ok := a.Learned(); !ok || l != after {
				t.Errorf("learned %.2f %v, want the rate after the cut %.2f", l, ok, after)
			}
		})
	}

	t.Run("other failures do not cut", func(t *testing.T) {
		c := newFakeClock()
		a := extract.NewAdaptiveRate(20, 1000, 0.5, c.now, nil)
		for i := 0; i < 200; i++ {
			a.Answered(a.Sent(), []int{http.StatusInternalServerError, http.StatusGatewayTimeout, 0}[i%3], time.Second)
			c.add(50 * time.Millisecond)
		}
		if a.Rate() < 20 || a.Cuts() != 0 || !a.PausedUntil().IsZero() {
			t.Errorf("rate %v, %d cuts, paused until %v; want at least 20, none, never", a.Rate(), a.Cuts(), a.PausedUntil())
		}
	})

	t.Run("a learned rate is resumed and approached slowly", func(t *testing.T) {
		c := newFakeClock()
		a := extract.NewAdaptiveRate(45, 1000, 0.5, c.now, nil)
		if a.Rate() != 45 {
			t.Fatalf("starts at %v, want the learned 45", a.Rate())
		}
		if l, ok := a.Learned(); !ok || l != 45 {
			t.Errorf("learned %v %v before anything happened, want 45", l, ok)
		}
		// It climbs back towards the rate the learned one was cut from
		// (50) and holds just below it: the next run does not start by
		// hammering.
		sendFor(a, c, 20*time.Second)
		if r := a.Rate(); r < 47.5 || r >= 50 {
			t.Errorf("after 20 s: %.2f/s, want just below 50", r)
		}
	})
}

// TestAdaptiveRateAgainstCeiling runs the controller against a model of
// the simulator's --rate-ceiling on a simulated clock: a request arriving
// when more than the ceiling arrived in the last second is answered 429
// with Retry-After: 1, and retried after it. The client sends from as many
// workers as needed for the ceiling, not latency × workers, to bind.
func TestAdaptiveRateAgainstCeiling(t *testing.T) {
	seed := testseed.Seed(t, "./extract")
	for _, tc := range []struct {
		ceiling, learned float64
	}{{20, 0}, {50, 0}, {200, 0}, {50, 42}, {200, 0.9 * 190}} {
		t.Run(fmt.Sprintf("ceiling %g learned %g", tc.ceiling, tc.learned), func(t *testing.T) {
			r := runCeilingModel(tc.ceiling, tc.learned, 3*time.Minute, rand.New(rand.NewPCG(uint64(seed), 0)))
			t.Logf("reached 85%% after %v; steady %.1f%% of the ceiling; %d of %d requests throttled (%.2f%%), %d cuts",
				r.reach85, 100*r.steady, r.throttled, r.requests, 100*r.share(), r.cuts)
			if r.reach85 > 60*time.Second {
				t.Errorf("85%% of the ceiling reached after %v, want within 60 s", r.reach85)
			}
			if r.steady < 0.85 {
				t.Errorf("steady state %.1f%% of the ceiling, want at least 85%%", 100*r.steady)
			}
			if r.share() > 0.02 {
				t.Errorf("%.2f%% of requests throttled, want at most 2%%", 100*r.share())
			}
			if r.cuts == 0 {
				t.Errorf("never cut: the ceiling was not found")
			}
			if r.lost != 0 {
				t.Errorf("%d requests given up", r.lost)
			}
		})
	}
}

type modelResult struct {
	reach85             time.Duration
	steady              float64 // successes per second from 60 s on, over the ceiling
	requests, throttled int
	cuts, lost          int
}

func (r modelResult) share() float64 { return float64(r.throttled) / float64(r.requests) }

// runCeilingModel plays a client against a rate ceiling in 1 ms steps:
// 30 ms latency plus up to 10 ms of jitter, a token bucket of burst 1 at
// the controller's rate, a throttled request retried after its
// Retry-After, five retries at most (as the client does).
func runCeilingModel(ceiling, learned float64, d time.Duration, rng *rand.Rand) modelResult {
	clock := newFakeClock()
	a := extract.NewAdaptiveRate(learned, 1000, 0.5, clock.now, nil)
	const latency, jitter, retryAfter = 30 * time.Millisecond, 10 * time.Millisecond, time.Second
	workers := int(ceiling*1.5*(latency+jitter).Seconds()) + 4
	type worker struct {
		ready   time.Time
		busy    bool
		retries int
	}
	type flight struct {
		w           int
		sent, lands time.Time
	}
	ws := make([]worker, workers)
	for i := range ws {
		ws[i].ready = clock.t
	}
	var (
		inflight []flight
		arrivals []time.Time // at the server, within the last second
		tat      = clock.t   // the bucket's next slot
		perSec   = make([]int, int(d/time.Second)+1)
		res      modelResult
	)
	start := clock.t
	for clock.t.Sub(start) < d {
		now := clock.t
		sort.Slice(inflight, func(i, j int) bool { return inflight[i].lands.Before(inflight[j].lands) })
		for len(inflight) > 0 && !inflight[0].lands.After(now) {
			f := inflight[0]
			inflight = inflight[1:]
			for len(arrivals) > 0 && now.Sub(arrivals[0]) >= time.Second {
				arrivals = arrivals[1:]
			}
			arrivals = append(arrivals, now)
			w := &ws[f.w]
			w.busy = false
			res.requests++
			if float64(len(arrivals)) > ceiling {
				res.throttled++
				a.Answered(f.sent, http.StatusTooManyRequests, retryAfter)
				if w.retries++; w.retries > 5 {
					res.lost++
					w.retries = 0
				}
				w.ready = now.Add(retryAfter)
				continue
			}
			a.Answered(f.sent, http.StatusOK, 0)
			perSec[int(now.Sub(start)/time.Second)]++
			w.retries, w.ready = 0, now
		}
		if !now.Before(a.PausedUntil()) {
			for i := range ws {
				w := &ws[i]
				if w.busy || w.ready.After(now) || now.Before(tat) {
					continue
				}
				// A waiter queued for the slot leaves at it (the model's
				// step only rounds the instant); an idle bucket's next
				// slot is an interval from now.
				if now.Sub(tat) >= time.Millisecond {
					tat = now
				}
				tat = tat.Add(time.Duration(float64(time.Second) / a.Rate()))
				w.busy = true
				sent := a.Sent()
				inflight = append(inflight, flight{w: i, sent: sent, lands: now.Add(latency + time.Duration(rng.Int64N(int64(jitter))))})
			}
		}
		clock.add(time.Millisecond)
	}
	res.cuts = a.Cuts()
	res.reach85 = d
	for s := 5; s < len(perSec)-1; s++ {
		sum := 0
		for _, n := range perSec[s-5 : s] {
			sum += n
		}
		if float64(sum)/5 >= 0.85*ceiling {
			res.reach85 = time.Duration(s) * time.Second
			break
		}
	}
	sum, n := 0, 0
	for _, k := range perSec[60 : len(perSec)-1] {
		sum += k
		n++
	}
	res.steady = float64(sum) / float64(n) / ceiling
	return res
}

// Against the simulator's ceiling, which the client does not know, the
// adaptive rate climbs until the API throttles, backs off below the
// ceiling, and loses no request: every throttled one is retried.
func TestAdaptiveRateFindsTheSimulatorsCeiling(t *testing.T) {
	const ceiling = 15
	obs := &tally{}
	e := setup(t, simulator.Options{Seed: 1, Faults: simulator.Faults{RateCeiling: ceiling}}, func(c *extract.ClientConfig) {
		c.RateLimit, c.RateAuto, c.Observer = 1000, true, obs
		c.BackoffBase = 100 * time.Millisecond
	})
	id := firstActive(t, e.sim)
	ctx := context.Background()
	// Eight senders, 80 calls: past the ceiling after about 30.
	var g errgroup.Group
	for i := 0; i < 8; i++ {
		g.Go(func() error {
			for j := 0; j < 10; j++ {
				if _, err := e.client.UsagePage(ctx, id, t0.AddDate(0, 0, -2), t0); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("a call was lost: %v", err)
	}
	st := e.sim.Stats()
	total := 0
	for _, n := range st.Requests {
		total += n
	}
	learned, ok := e.client.LearnedRate()
	t.Logf("%d requests, %d throttled; rates heard %d times, last %.1f; learned %.1f", total, st.Throttled, len(obs.limits), e.client.RateLimit(), learned)
	if st.Throttled == 0 || !ok {
		t.Fatalf("never throttled (learned %v): the rate did not climb to the ceiling of %d", ok, ceiling)
	}
	if share := float64(st.Throttled) / float64(total); share > 0.05 {
		t.Errorf("%d of %d requests throttled (%.1f%%): the rate did not back off", st.Throttled, total, 100*share)
	}
	if learned >= ceiling || learned < 0.6*ceiling {
		t.Errorf("learned %.1f/s, want just below the ceiling of %d", learned, ceiling)
	}
	if r := e.client.RateLimit(); r > 1.1*ceiling {
		t.Errorf("rate %.1f/s at the end, ceiling %d", r, ceiling)
	}
	if len(obs.limits) < 3 || obs.limits[0] != extract.RateStart || obs.limits[len(obs.limits)-1] != e.client.RateLimit() {
		t.Errorf("the observer heard the rates %v; want every change, from %v to the last", obs.limits, extract.RateStart)
	}
}
