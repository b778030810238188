package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the daemon's Prometheus metrics. They live in the daemon's
// own registry, not the client library's global one, so that two daemons in
// one test process do not share counters.
type metrics struct {
	reg *prometheus.Registry

	requests     *prometheus.CounterVec
	retries      *prometheus.CounterVec
	rows         *prometheus.CounterVec
	rejected     prometheus.Counter
	runs         *prometheus.CounterVec
	skipped      prometheus.Counter
	running      prometheus.Gauge
	lastDuration prometheus.Gauge
	lastSuccess  *prometheus.GaugeVec
	lastSnapshot prometheus.Gauge
	pending      prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingsync_api_requests_total",
			Help: "ThingSpace API requests by endpoint and HTTP status of the answer (status \"error\": no answer, e.g. a timeout); retries included.",
		}, []string{"endpoint", "status"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingsync_api_retries_total",
			Help: "ThingSpace API requests that repeated an earlier attempt (429, 5xx, timeouts), by endpoint.",
		}, []string{"endpoint"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingsync_rows_total",
			Help: "Warehouse rows written by runs, by table and op (inserted: new keys; updated: revised values).",
		}, []string{"table", "op"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "thingsync_rejected_records_total",
			Help: "API records refused by the transform (malformed, odd times) and kept in rejected_records.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thingsync_runs_total",
			Help: "Finished scheduled runs by outcome: ok, partial (some devices failed), failed (a panic included), interrupted (by a signal).",
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
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "thingsync_last_success_timestamp_seconds",
			Help: "Unix time at which the last ok or partial run of each stream finished.",
		}, []string{"stream"}),
		lastSnapshot: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thingsync_last_snapshot_timestamp_seconds",
			Help: "Unix time at which THINGSYNC_SNAPSHOT was last published.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thingsync_pending_callbacks",
			Help: "Aggregate usage requests still waiting for their callbacks (aggregate_requests pending or completed), read after each run.",
		}),
	}
	m.reg.MustRegister(m.requests, m.retries, m.rows, m.rejected, m.runs, m.skipped, m.running,
		m.lastDuration, m.lastSuccess, m.lastSnapshot, m.pending,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Outcomes are known in advance: a rate() over a series that appears
	// only at its first increment misses that increment.
	for _, s := range []string{"ok", "partial", "failed", "interrupted"} {
		m.runs.WithLabelValues(s)
	}
	return m
}

// observe adds one finished run. Counters are the run's own (a fresh
// client per run), so they add up across runs.
func (m *metrics) observe(rep runReport, streams []string, took time.Duration) {
	c := rep.Counters
	for ep, n := range c.Requests {
		answered := 0
		for status, k := range c.Status[ep] {
			m.requests.WithLabelValues(ep, strconv.Itoa(status)).Add(float64(k))
			answered += k
		}
		if n > answered {
			m.requests.WithLabelValues(ep, "error").Add(float64(n - answered))
		}
	}
	for ep, n := range c.Retries {
		m.retries.WithLabelValues(ep).Add(float64(n))
	}
	for table, tt := range rep.Totals.Tables {
		m.rows.WithLabelValues(table, "inserted").Add(float64(tt.Inserted))
		m.rows.WithLabelValues(table, "updated").Add(float64(tt.Updated))
	}
	m.rejected.Add(float64(rep.Totals.Rejected))
	m.runs.WithLabelValues(rep.Status).Inc()
	m.lastDuration.Set(took.Seconds())
	if rep.Status == "ok" || rep.Status == "partial" {
		for _, s := range streams {
			m.lastSuccess.WithLabelValues(s).Set(float64(rep.Finished.UnixNano()) / 1e9)
		}
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
