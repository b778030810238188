// Package metricstest reads what a /metrics endpoint served, for tests:
// the metric families of a scrape and the value of a series.
package metricstest

import (
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Parse reads Prometheus text exposition into its metric families, by
// name.
func Parse(text string) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(strings.NewReader(text))
}

// Value sums the counters and gauges of the series of name whose labels
// include every "k=v" given (none: every series of name); ok says at least
// one series matched.
func Value(mf map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	for _, m := range mf[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for _, kv := range labels {
			k, want, _ := strings.Cut(kv, "=")
			match = match && have[k] == want
		}
		if match {
			v, ok = v+m.GetCounter().GetValue()+m.GetGauge().GetValue(), true
		}
	}
	return v, ok
}
