package extract

import "sync"

// Counters is a snapshot of what a Client did, for summaries and metrics.
type Counters struct {
	Requests       map[string]int         // attempts by endpoint, retries included
	Retries        map[string]int         // attempts that repeated an earlier one, by endpoint
	Status         map[string]map[int]int // answers by endpoint and HTTP status
	Relogins       int
	TokenRefreshes int
}

// TotalRequests sums Requests.
func (c Counters) TotalRequests() int { return sum(c.Requests) }

// TotalRetries sums Retries.
func (c Counters) TotalRetries() int { return sum(c.Retries) }

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

type counters struct {
	mu sync.Mutex
	c  Counters
}

func (c *counters) init() {
	c.c = Counters{Requests: map[string]int{}, Retries: map[string]int{}, Status: map[string]map[int]int{}}
}

// attempted counts one attempt as it ends (status 0: no answer) and tells
// the observer.
func (cl *Client) attempted(endpoint string, status int, retry bool) {
	c := &cl.counters
	c.mu.Lock()
	c.c.Requests[endpoint]++
	if retry {
		c.c.Retries[endpoint]++
	}
	if status != 0 {
		m := c.c.Status[endpoint]
		if m == nil {
			m = map[int]int{}
			c.c.Status[endpoint] = m
		}
		m[status]++
	}
	c.mu.Unlock()
	if cl.cfg.Observer != nil {
		cl.cfg.Observer.Attempt(endpoint, status, retry)
	}
}

func (c *counters) relogin() {
	c.mu.Lock()
	c.c.Relogins++
	c.mu.Unlock()
}

func (c *counters) tokenRefresh() {
	c.mu.Lock()
	c.c.TokenRefreshes++
	c.mu.Unlock()
}

// Counters returns a snapshot of the client's counters.
func (cl *Client) Counters() Counters {
	c := &cl.counters
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Counters{Requests: map[string]int{}, Retries: map[string]int{}, Status: map[string]map[int]int{},
		Relogins: c.c.Relogins, TokenRefreshes: c.c.TokenRefreshes}
	for k, v := range c.c.Requests {
		out.Requests[k] = v
	}
	for k, v := range c.c.Retries {
		out.Retries[k] = v
	}
	for k, m := range c.c.Status {
		out.Status[k] = map[int]int{}
		for s, n := range m {
			out.Status[k][s] = n
		}
	}
	return out
}
