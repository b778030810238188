package extract

import (
	"math"
	"net/http"
	"sort"
	"sync"
	"time"
)

// The adaptive rate's constants (docs/design.md, "Adaptive request rate",
// has the figures they were chosen by).
const (
	// RateStart is the first rate of a client with nothing learned.
	RateStart = 10.0
	// rateStep is how often the rate is reconsidered: a rise is a step of
	// this much clean time under load.
	rateStep = 100 * time.Millisecond
	// rateSlowStart is the growth per second before the first throttle:
	// from 10/s it reaches 200/s in about 13 s.
	rateSlowStart = 1.25
	// rateBeta is what a cut keeps of the rate that was throttled.
	rateBeta = 0.9
	// rateRecover is how long the rate takes, under load and unthrottled,
	// to climb back from a cut to rateHold of the rate that was throttled;
	// it rises quickly at first, flattens out there and then probes above
	// it ever faster (a cubic, as TCP CUBIC and the AWS SDKs' adaptive
	// retry mode do). Holding a little below the throttled rate makes the
	// throttles, and the pauses they cost, rare: the API counts every
	// request over a sliding second, so arrivals that bunch meet it before
	// evenly spaced ones would.
	rateRecover = 20 * time.Second
	rateHold    = 0.97
	// rateBusy is the share of the rate the client must be sending for
	// the rate to rise: a rate nobody uses proves nothing.
	rateBusy = 0.7
)

// AdaptiveRate decides the request rate of a client that must find the
// account's ceiling itself (THINGSYNC_RATE_LIMIT=auto): it rises while
// answers are clean and the client uses the rate, and is cut when the API
// throttles (429, 503), never above Max. All senders wait out a throttled
// answer's Retry-After. It decides only; the Client applies its rate to its
// limiter. Safe for concurrent use.
type AdaptiveRate struct {
	// Max is the ceiling it never exceeds; Min the floor no cut goes below.
	Max, Min float64
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// OnChange, if set, hears every new rate, in order: it is called with
	// the rate's lock held and must not block.
	OnChange func(perSecond float64)

	mu   sync.Mutex
	rate float64
	// peak is the send rate when the API last throttled (0: not yet, the
	// rate grows by slow start).
	peak float64
	// grown is the clean time under load since the last cut (or the start).
	grown   time.Duration
	stepped time.Time // when the rate was last reconsidered
	cut     time.Time // the last cut: answers to earlier requests are old news
	paused  time.Time // no request leaves before this (Retry-After)
	resumed time.Time // when sending last started or resumed after a pause
	cuts    int
	// sends[head:] are the send times within the last second, oldest
	// first.
	sends []time.Time
	head  int
}

// NewAdaptiveRate returns a controller starting at start (the rate an
// earlier run learned, or RateStart when 0), never above max.
func NewAdaptiveRate(start, max, min float64, now func() time.Time, onChange func(float64)) *AdaptiveRate {
	a := &AdaptiveRate{Max: max, Min: min, Now: now, OnChange: onChange}
	a.start(start)
	return a
}

func (a *AdaptiveRate) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// start sets the first rate. A learned rate is one just below a cut (or
// one the API never throttled): the rate resumes from it as from a cut of
// a peak just above it, so the run neither starts by hammering nor stays
// below a ceiling that has risen.
func (a *AdaptiveRate) start(learned float64) {
	a.rate = RateStart
	if learned > 0 {
		a.rate = learned
	}
	a.rate = math.Min(math.Max(a.rate, a.Min), a.Max)
	if learned > 0 {
		a.peak = a.rate / rateBeta
	}
	t := a.now()
	a.stepped, a.resumed = t, t
	if a.OnChange != nil {
		a.OnChange(a.rate)
	}
}

// Rate is the current rate, in requests per second.
func (a *AdaptiveRate) Rate() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rate
}

// Cuts counts the cuts so far.
func (a *AdaptiveRate) Cuts() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cuts
}

// Learned is the rate the next run may start at: after a cut, the rate
// just below the last one (rateBeta of the send rate the API last
// throttled); without one, when the rate started from a learned one, the
// rate held now (it has been probing the API's ceiling from there). A run
// that never met the ceiling from a cold start learned nothing about it
// (ok false): the ceiling is above what it sent, and the next run's slow
// start finds it faster than a probe from that rate would.
func (a *AdaptiveRate) Learned() (perSecond float64, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.cuts > 0:
		return math.Min(math.Max(rateBeta*a.peak, a.Min), a.Max), true
	case a.peak > 0:
		return a.rate, true
	}
	return 0, false
}

// PausedUntil is when requests may leave again after a Retry-After (the
// zero time or a past one: now).
func (a *AdaptiveRate) PausedUntil() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.paused
}

// Sent records a request leaving now and returns its send time, to be
// handed back with its answer.
func (a *AdaptiveRate) Sent() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.now()
	a.prune(t)
	a.sends = append(a.sends, t)
	a.step(t)
	return t
}

// Answered records the answer to a request sent at sent: status is its
// HTTP status (0: none came), retryAfter what it asked (0: nothing). A 429
// or 503 cuts the rate, unless the request left before the last cut (the
// cut already answered it); every throttle's Retry-After pauses all
// senders.
func (a *AdaptiveRate) Answered(sent time.Time, status int, retryAfter time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.now()
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		if status != 0 {
			a.step(t)
		}
		return
	}
	if until := t.Add(retryAfter); retryAfter > 0 && until.After(a.paused) {
		a.paused = until
		a.resumed = until
	}
	if !a.cut.IsZero() && sent.Before(a.cut) {
		return
	}
	// The rate that was throttled is the one the API saw: what was sent
	// since sending last resumed, at most the last second, or the rate
	// itself when that is too short to measure or the client sent faster
	// than its rate.
	a.prune(t)
	throttled := a.rate
	if m, ok := a.measured(t); ok && m < throttled {
		throttled = m
	}
	a.peak = throttled
	a.cut, a.grown, a.stepped = t, 0, t
	a.cuts++
	a.set(math.Max(rateBeta*throttled, a.Min))
}

// step raises the rate by the clean time under load since the last step.
func (a *AdaptiveRate) step(t time.Time) {
	dt := t.Sub(a.stepped)
	if dt < rateStep {
		return
	}
	a.stepped = t
	if t.Before(a.paused) {
		return
	}
	if m, ok := a.measured(t); !ok || m < rateBusy*a.rate {
		return
	}
	a.grown += dt
	var r float64
	if a.peak == 0 {
		r = a.rate * math.Pow(rateSlowStart, dt.Seconds())
	} else {
		// P·(1 + σ(g−K)³), P = rateHold·peak, with σ such that it
		// starts at rateBeta·peak.
		k := rateRecover.Seconds()
		g := a.grown.Seconds() - k
		r = rateHold * a.peak * (1 + (1-rateBeta/rateHold)*g*g*g/(k*k*k))
	}
	a.set(math.Min(r, a.Max))
}

func (a *AdaptiveRate) set(r float64) {
	if r == a.rate {
		return
	}
	a.rate = r
	if a.OnChange != nil {
		a.OnChange(r)
	}
}

// prune drops the sends older than a second.
func (a *AdaptiveRate) prune(t time.Time) {
	for a.head < len(a.sends) && t.Sub(a.sends[a.head]) >= time.Second {
		a.head++
	}
	if a.head > 0 && a.head >= len(a.sends)/2 {
		a.sends = append(a.sends[:0], a.sends[a.head:]...)
		a.head = 0
	}
}

// measured is the send rate over the last second, counting from when
// sending last resumed; ok is false when that is too short to tell.
func (a *AdaptiveRate) measured(t time.Time) (float64, bool) {
	from := t.Add(-time.Second)
	if a.resumed.After(from) {
		from = a.resumed
	}
	span := t.Sub(from)
	if span < rateStep {
		return 0, false
	}
	live := a.sends[a.head:]
	n := len(live) - sort.Search(len(live), func(i int) bool { return live[i].After(from) })
	return float64(n) / span.Seconds(), true
}
