package daemon

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/load"
)

// metrics are the daemon's Prometheus metrics. They live in the daemon's
// own registry, not the client library's global one, so that two daemons in
// one test process do not share counters. What a run does (requests, rows,
// devices) is counted as it happens, through the hooks the run is given
// (Attempt, RateLimit, Committed, Progress); a run's end adds only its
// outcome.
type metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.CounterVec
	retries       *prometheus.CounterVec
	rate          *rateWindow
	rateLimit     prometheus.Gauge
	rows          *prometheus.CounterVec
	rejected      prometheus.Counter
	devicesDone   prometheus.Gauge
	devicesLeft   prometheus.Gauge
	runs          *prometheus.CounterVec
	skipped       prometheus.Counter
	running       prometheus.Gauge
	lastDuration  prometheus.Gauge
	lastStatus    *prometheus.GaugeVec
	loginRejected prometheus.Gauge
	lastSuccess   *prometheus.GaugeVec
	lastSnapshot  prometheus.Gauge
	pending       prometheus.Gauge
	staleness     *staleness

	// progress is the running run's, kept as the highest seen: devices
	// finish on several goroutines, whose reports may arrive out of order.
	mu                 sync.Mutex
	listed, done, left int
}

// requestRateWindow is the span over which the current request rate is
// averaged: long enough to smooth the pauses of backoffs and page
// boundaries, short enough to show a change of pace within a minute.
const requestRateWindow = 30 * time.Second

func newMetrics(now func() time.Time) *metrics {
	m := &metrics{
		reg:       prometheus.NewRegistry(),
		staleness: newStaleness(now),
		rate:      newRateWindow(requestRateWindow, now),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingsync_api_requests_total",
			Help: "ThingSpace API requests by endpoint and HTTP status of the answer (status \"error\": no answer, e.g. a timeout); retries included.",
		}, []string{"endpoint", "status"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingsync_api_retries_total",
			Help: "ThingSpace API requests that repeated an earlier attempt (429, 5xx, timeouts), by endpoint.",
		}, []string{"endpoint"}),
		rateLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thingsync_api_rate_limit_requests_per_second",
			Help: "The ceiling on ThingSpace API requests per second that the running (or last) run's client keeps (THINGSYNC_RATE_LIMIT), every endpoint, retries and logins included.",
		}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingsync_rows_total",
			Help: "Warehouse rows written by runs, by table and op (inserted: new keys; updated: revised values), counted as each transaction commits.",
		}, []string{"table", "op"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "thingsync_rejected_records_total",
			Help: "API records refused by the transform (malformed, odd times) and kept in rejected_records, counted as each transaction commits.",
		}),
		devicesDone: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thingsync_run_devices_done",
			Help: "Devices the running run has finished (fetched, or failed); the last run's once it has ended.",
		}),
		devicesLeft: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thingsync_run_devices_left",
			Help: "Devices the running run has listed and not finished yet; the device list is read as the run goes, so this grows until it is complete.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingsync_runs_total",
			Help: "Finished scheduled runs by outcome: ok, partial (some devices failed), budget (stopped at THINGSYNC_RUN_BUDGET; the next run carries on), failed (a panic included), interrupted (by a signal).",
		}, []string{"status"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "thingsync_runs_skipped_total",
			Help: "Scheduled runs not started because the previous one was still going (or the login was rejected).",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thingsync_run_in_progress",
			Help: "1 while a run is going, else 0.",
		}),
		lastDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thingsync_last_run_duration_seconds",
			Help: "How long the last finished run took, waiting for the warehouse file and publishing the snapshot included.",
		}),
		lastStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "thingsync_last_run_status",
			Help: "1 for the outcome of the last finished run (status, as in thingsync_runs_total), 0 for the others.",
		}, []string{"status"}),
		loginRejected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thingsync_login_rejected",
			Help: "1 once ThingSpace rejected the login: the daemon starts no run until it is restarted with THINGSPACE_USERNAME/THINGSPACE_PASSWORD fixed.",
		}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "thingsync_last_success_timestamp_seconds",
			Help: "Unix time at which the last ok, partial or budget run of each stream finished.",
		}, []string{"stream"}),
		lastSnapshot: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thingsync_last_snapshot_timestamp_seconds",
			Help: "Unix time at which THINGSYNC_SNAPSHOT was last published (at start, the file's modification time; 0: none yet).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thingsync_pending_callbacks",
			Help: "Aggregate usage requests still waiting for their callbacks (aggregate_requests pending or completed), read after each run.",
		}),
	}
	rate := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "thingsync_api_requests_per_second",
		Help: "ThingSpace API requests per second over the last 30 s, every endpoint, retries and logins included.",
	}, m.rate.perSecond)
	m.reg.MustRegister(m.requests, m.retries, rate, m.rateLimit, m.rows, m.rejected, m.devicesDone, m.devicesLeft,
		m.runs, m.skipped, m.running, m.lastDuration, m.lastStatus, m.loginRejected, m.lastSuccess, m.lastSnapshot, m.pending, m.staleness,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Outcomes are known in advance: a rate() over a series that appears
	// only at its first increment misses that increment.
	for _, s := range runOutcomes() {
		m.runs.WithLabelValues(s)
		m.lastStatus.WithLabelValues(s)
	}
	return m
}

// runOutcomes are the statuses a finished run may have.
func runOutcomes() []string {
	return []string{ingest.StatusOK, ingest.StatusPartial, ingest.StatusBudget, ingest.StatusFailed, ingest.StatusInterrupted}
}

// Attempt counts one API request as it ends (status 0: no answer).
func (m *metrics) Attempt(endpoint string, status int, retry bool) {
	label := "error"
	if status != 0 {
		label = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(endpoint, label).Inc()
	if retry {
		m.retries.WithLabelValues(endpoint).Inc()
	}
	m.rate.add()
}

// RateLimit records the ceiling the run's client keeps.
func (m *metrics) RateLimit(perSecond float64) { m.rateLimit.Set(perSecond) }

// Committed counts what one of the run's transactions wrote.
func (m *metrics) Committed(t load.Totals) {
	for table, tt := range t.Tables {
		m.rows.WithLabelValues(table, "inserted").Add(float64(tt.Inserted))
		m.rows.WithLabelValues(table, "updated").Add(float64(tt.Updated))
	}
	m.rejected.Add(float64(t.Rejected))
}

// Progress records the running run's devices done and left.
func (m *metrics) Progress(p extract.Progress) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listed, m.done = max(m.listed, p.DevicesTotal), max(m.done, p.DevicesDone)
	m.devicesDone.Set(float64(m.done))
	m.devicesLeft.Set(float64(m.listed - m.done))
}

// started resets the progress of the run that starts.
func (m *metrics) started() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listed, m.done = 0, 0
	m.devicesDone.Set(0)
	m.devicesLeft.Set(0)
	m.running.Set(1)
}

// observe records one finished run's outcome; what it did was counted as
// it happened.
func (m *metrics) observe(rep ingest.Report, streams []string, took time.Duration) {
	m.runs.WithLabelValues(rep.Status).Inc()
	for _, s := range runOutcomes() {
		v := 0.0
		if s == rep.Status {
			v = 1
		}
		m.lastStatus.WithLabelValues(s).Set(v)
	}
	m.lastDuration.Set(took.Seconds())
	if succeeded(rep.Status) {
		for _, s := range streams {
			m.lastSuccess.WithLabelValues(s).Set(float64(rep.Finished.UnixNano()) / 1e9)
		}
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// rateWindow counts events in one-second buckets and tells their mean rate
// over the last whole seconds of its span (the current second, not over
// yet, is left out).
type rateWindow struct {
	now func() time.Time

	mu     sync.Mutex
	second []int64 // the Unix second each bucket counts
	count  []int
}

func newRateWindow(span time.Duration, now func() time.Time) *rateWindow {
	n := max(1, int(span/time.Second))
	return &rateWindow{now: now, second: make([]int64, n+1), count: make([]int, n+1)}
}

func (r *rateWindow) add() {
	s := r.now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	i := int(s % int64(len(r.second)))
	if r.second[i] != s {
		r.second[i], r.count[i] = s, 0
	}
	r.count[i]++
}

func (r *rateWindow) perSecond() float64 {
	s := r.now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	span := int64(len(r.second) - 1)
	n := 0
	for i, sec := range r.second {
		if sec < s && sec >= s-span {
			n += r.count[i]
		}
	}
	return float64(n) / float64(span)
}

// staleness exports how current the warehouse is across the fleet, as read
// after each run: ages are computed when scraped, so they grow between
// runs as the data does.
type staleness struct {
	now                        func() time.Time
	oldest, median, notVisited *prometheus.Desc
	failing                    *prometheus.Desc
	mu                         sync.Mutex
	read                       load.Staleness
	have                       bool
}

func newStaleness(now func() time.Time) *staleness {
	return &staleness{now: now,
		oldest: prometheus.NewDesc("thingsync_settled_oldest_age_seconds",
			"Age of the oldest settled_until of each stream across the devices still asked (read after each run): the least current device.", []string{"stream"}, nil),
		median: prometheus.NewDesc("thingsync_settled_median_age_seconds",
			"Age of the median settled_until of each stream across the devices still asked (read after each run).", []string{"stream"}, nil),
		notVisited: prometheus.NewDesc("thingsync_devices_not_visited",
			"Devices of the account that none of the last runs (label runs) reached: waiting for their turn under THINGSYNC_RUN_BUDGET.", []string{"runs"}, nil),
		failing: prometheus.NewDesc("thingsync_devices_failing",
			"Devices whose fetches of some stream failed in each of the last runs (label runs) that asked for it (sync_checkpoints.failures), read after each run.", []string{"runs"}, nil),
	}
}

func (s *staleness) set(st load.Staleness) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.read, s.have = st, true
}

func (s *staleness) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.oldest
	ch <- s.median
	ch <- s.notVisited
	ch <- s.failing
}

func (s *staleness) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.have {
		return
	}
	now := s.now()
	for _, st := range s.read.Streams {
		if st.Oldest != nil {
			ch <- prometheus.MustNewConstMetric(s.oldest, prometheus.GaugeValue, now.Sub(*st.Oldest).Seconds(), st.Name)
		}
		if st.Median != nil {
			ch <- prometheus.MustNewConstMetric(s.median, prometheus.GaugeValue, now.Sub(*st.Median).Seconds(), st.Name)
		}
	}
	if nv := s.read.NotVisited; nv != nil {
		ch <- prometheus.MustNewConstMetric(s.notVisited, prometheus.GaugeValue, float64(nv.Devices), strconv.Itoa(nv.Runs))
	}
	ch <- prometheus.MustNewConstMetric(s.failing, prometheus.GaugeValue, float64(s.read.Failing), strconv.Itoa(load.FailingRuns))
}
