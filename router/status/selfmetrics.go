package status

import (
	"math"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/shovel-metrics/shovel/router/metric"
)

// Samples turns gathered Prometheus metrics into Carbon samples under
// prefix, the way carbon-relay reports itself: counters and gauges as
// <prefix>.<name>[.<label value>...], histograms and summaries as their
// _count and _sum. The name drops Prometheus' "shovel_" namespace (the
// prefix says shovel already) and a counter's "_total"; label values come
// from the most general to the most particular (topic before partition,
// output before via), made path-safe. Go's and the process's own series
// (go_*, process_*) are left out unless runtime is set; non-finite values
// always are.
func Samples(families []*dto.MetricFamily, prefix string, at time.Time, runtime bool) []metric.Sample {
	ts := float64(at.Unix())
	var out []metric.Sample
	add := func(name string, m *dto.Metric, suffix string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		var b strings.Builder
		b.WriteString(prefix)
		b.WriteByte('.')
		b.WriteString(name)
		b.WriteString(suffix)
		labels := append([]*dto.LabelPair(nil), m.GetLabel()...)
		sort.Slice(labels, func(i, j int) bool { return labelBefore(labels[i].GetName(), labels[j].GetName()) })
		for _, l := range labels {
			b.WriteByte('.')
			b.WriteString(PathSafe(l.GetValue()))
		}
		out = append(out, metric.Sample{Path: b.String(), Time: ts, Value: v})
	}
	for _, f := range families {
		fname := f.GetName()
		if !runtime && (strings.HasPrefix(fname, "go_") || strings.HasPrefix(fname, "process_")) {
			continue
		}
		fname = strings.TrimPrefix(fname, "shovel_")
		if f.GetType() == dto.MetricType_COUNTER {
			fname = strings.TrimSuffix(fname, "_total")
		}
		name := PathSafe(fname)
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				add(name, m, "", m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, m, "", m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add(name, m, "", m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM:
				add(name, m, "_count", float64(m.GetHistogram().GetSampleCount()))
				add(name, m, "_sum", m.GetHistogram().GetSampleSum())
			case dto.MetricType_SUMMARY:
				add(name, m, "_count", float64(m.GetSummary().GetSampleCount()))
				add(name, m, "_sum", m.GetSummary().GetSampleSum())
			}
		}
	}
	return out
}

// labelOrder ranks labels from the most general to the most particular;
// labels not listed come after, by name.
var labelOrder = map[string]int{"route": 1, "decoder": 2, "output": 3, "via": 4, "topic": 5, "partition": 6, "reason": 7, "result": 8}

func labelBefore(a, b string) bool {
	ra, rb := labelOrder[a], labelOrder[b]
	if ra == 0 {
		ra = len(labelOrder) + 1
	}
	if rb == 0 {
		rb = len(labelOrder) + 1
	}
	if ra != rb {
		return ra < rb
	}
	return a < b
}

// PathSafe maps s to one Carbon path segment: letters, digits, '-' and
// '_' stay, everything else (dots included) becomes '_'.
func PathSafe(s string) string {
	if s == "" {
		return "_"
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
