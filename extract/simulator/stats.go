package simulator

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Stats counts what the simulator saw since New or the last ResetStats.
type Stats struct {
	TokenRequests int
	Logins        int // attempts, rejected ones included
	FailedLogins  int
	Logouts       int
	// Requests counts requests by endpoint: "token", "login", "logout",
	// "devices", "usage", "connections", "rated", "aggregate", "callbacks"
	// ("other" for paths the API does not have).
	Requests map[string]int
	// DeviceRequests counts the device requests that named a known device,
	// by endpoint + " " + the device's warehouse identity, e.g.
	// "usage iccid:89148000000000000001" — whichever identifier the request
	// used.
	DeviceRequests map[string]int
	// Status counts responses by HTTP status; 499 counts requests whose
	// client went away during the Latency fault (nothing was sent).
	Status    map[int]int
	Throttled int // 429s answered for exceeding RateCeiling
	// RangesRefused counts the usage and connection requests refused for
	// spanning more than Faults.MaxRange.
	RangesRefused int
	// PeakRPS is the most requests that arrived within any sliding
	// 1-second window (wall-clock time: rates are about the wire).
	PeakRPS float64
	// Busy is the wall time from the first request to the last: requests
	// over Busy is the rate a client achieved while it was sending.
	Busy               time.Duration
	CallbacksDelivered int // deliveries the listener answered 2xx
	CallbackAttempts   int // deliveries tried, re-sends included
	// CallbacksAbandoned counts callbacks given up after every delivery
	// was refused: the last thing their delivery does.
	CallbacksAbandoned int
}

// Endpoint names, in the order of the counters.
var endpoints = [...]string{"token", "login", "logout", "devices", "usage", "connections", "rated", "aggregate", "callbacks", "other"}

const (
	epToken = iota
	epLogin
	epLogout
	epDevices
	epUsage
	epConnections
	epRated
	epAggregate
	epCallbacks
	epOther
)

// deviceEndpoints are the endpoints counted per device.
var deviceEndpoints = [...]int{epUsage, epConnections, epRated, epAggregate}

func deviceSlot(ep int) int {
	for i, e := range deviceEndpoints {
		if e == ep {
			return i
		}
	}
	return -1
}

// counters are lock-free: every request bumps several, and the benchmarks
// push tens of thousands of requests a second through the handler.
type counters struct {
	tokenRequests, logins, failedLogins, logouts atomic.Int64
	throttled, delivered, attempts, abandoned    atomic.Int64
	refused                                      atomic.Int64
	requests                                     [len(endpoints)]atomic.Int64
	status                                       [600]atomic.Int64
	devices                                      deviceCounters
}

// deviceCounters count requests per device and endpoint (device index ×
// len(deviceEndpoints) + slot) in blocks allocated when a device of the
// block is first asked about: a million-device fleet whose nightly run
// asks about a few devices holds only their blocks.
type deviceCounters struct {
	blocks []atomic.Pointer[[counterBlock]atomic.Int64]
}

const counterBlock = 1 << 14

func (c *deviceCounters) init(n int) {
	c.blocks = make([]atomic.Pointer[[counterBlock]atomic.Int64], (n+counterBlock-1)/counterBlock)
}

func (c *deviceCounters) add(i int) {
	p := &c.blocks[i/counterBlock]
	b := p.Load()
	if b == nil {
		p.CompareAndSwap(nil, new([counterBlock]atomic.Int64))
		b = p.Load()
	}
	b[i%counterBlock].Add(1)
}

// each calls fn with every counter that is not zero.
func (c *deviceCounters) each(fn func(i int, n int64)) {
	for k := range c.blocks {
		if b := c.blocks[k].Load(); b != nil {
			for j := range b {
				if n := b[j].Load(); n > 0 {
					fn(k*counterBlock+j, n)
				}
			}
		}
	}
}

func (c *deviceCounters) reset() {
	for k := range c.blocks {
		c.blocks[k].Store(nil)
	}
}

func (c *counters) countStatus(code int) {
	if code < 0 || code >= len(c.status) {
		code = 0
	}
	c.status[code].Add(1)
}

func (c *counters) reset() {
	for _, a := range []*atomic.Int64{&c.tokenRequests, &c.logins, &c.failedLogins, &c.logouts, &c.throttled, &c.delivered, &c.attempts, &c.abandoned, &c.refused} {
		a.Store(0)
	}
	for i := range c.requests {
		c.requests[i].Store(0)
	}
	for i := range c.status {
		c.status[i].Store(0)
	}
	c.devices.reset()
}

// rateWindow measures arrivals over a sliding second, for PeakRPS and the
// RateCeiling fault. It has its own small lock: exactness needs the
// arrivals in order, and the critical section is a few instructions.
type rateWindow struct {
	mu    sync.Mutex
	base  time.Time
	ring  []int64 // arrival times, ns since base; head..head+n live
	head  int
	n     int
	peak  int
	clock func() time.Time
	// first and last arrival (ns since base, -1: none yet), for the
	// achieved rate between them.
	first, last int64
}

func newRateWindow() *rateWindow {
	return &rateWindow{base: time.Now(), ring: make([]int64, 1024), clock: time.Now, first: -1}
}

// arrive records one arrival and returns how many arrived in the last
// second, this one included.
func (w *rateWindow) arrive() int {
	now := int64(w.clock().Sub(w.base))
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.n > 0 && now-w.ring[w.head] >= int64(time.Second) {
		w.head = (w.head + 1) % len(w.ring)
		w.n--
	}
	if w.n == len(w.ring) {
		grown := make([]int64, 2*len(w.ring))
		for i := 0; i < w.n; i++ {
			grown[i] = w.ring[(w.head+i)%len(w.ring)]
		}
		w.ring, w.head = grown, 0
	}
	w.ring[(w.head+w.n)%len(w.ring)] = now
	w.n++
	if w.first < 0 {
		w.first = now
	}
	w.last = now
	if w.n > w.peak {
		w.peak = w.n
	}
	return w.n
}

func (w *rateWindow) reset() {
	w.mu.Lock()
	w.head, w.n, w.peak, w.first, w.last = 0, 0, 0, -1, 0
	w.mu.Unlock()
}

func (w *rateWindow) peakRPS() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}

// Stats returns a copy of the counters.
func (s *Simulator) Stats() Stats {
	c := &s.ctr
	st := Stats{
		TokenRequests:      int(c.tokenRequests.Load()),
		Logins:             int(c.logins.Load()),
		FailedLogins:       int(c.failedLogins.Load()),
		Logouts:            int(c.logouts.Load()),
		Throttled:          int(c.throttled.Load()),
		RangesRefused:      int(c.refused.Load()),
		CallbacksDelivered: int(c.delivered.Load()),
		CallbackAttempts:   int(c.attempts.Load()),
		CallbacksAbandoned: int(c.abandoned.Load()),
		PeakRPS:            float64(s.rate.peakRPS()),
		Busy:               s.rate.busy(),
		Requests:           map[string]int{},
		DeviceRequests:     map[string]int{},
		Status:             map[int]int{},
	}
	for i := range c.requests {
		if n := c.requests[i].Load(); n > 0 {
			st.Requests[endpoints[i]] = int(n)
		}
	}
	for code := range c.status {
		if n := c.status[code].Load(); n > 0 {
			st.Status[code] = int(n)
		}
	}
	c.devices.each(func(i int, n int64) {
		d := s.device(i / len(deviceEndpoints))
		ep := endpoints[deviceEndpoints[i%len(deviceEndpoints)]]
		st.DeviceRequests[ep+" "+d.identity().String()] = int(n)
	})
	return st
}

// ResetStats zeroes the counters and the rate window.
func (s *Simulator) ResetStats() {
	s.ctr.reset()
	s.rate.reset()
}

// countDevice counts a request that named device d.
func (s *Simulator) countDevice(ep int, d *device) {
	if slot := deviceSlot(ep); slot >= 0 {
		s.ctr.devices.add(d.index*len(deviceEndpoints) + slot)
	}
	if s.opts.RequestLog > 0 {
		s.logMu.Lock()
		if len(s.log) < s.opts.RequestLog {
			s.log = append(s.log, endpoints[ep]+" "+d.identity().String())
		}
		s.logMu.Unlock()
	}
}

// RequestLog is the device requests kept under Options.RequestLog, in the
// order they arrived, as endpoint + " " + the device's warehouse identity.
func (s *Simulator) RequestLog() []string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return slices.Clone(s.log)
}

func (w *rateWindow) busy() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.first < 0 {
		return 0
	}
	return time.Duration(w.last - w.first)
}
