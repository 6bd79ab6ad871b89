package status

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

func TestSamples(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_rejected_total", Help: "x"}, []string{"decoder", "reason"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "shovel_up", Help: "x"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shovel_write_seconds", Help: "x"})
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shovel_kafka_consumer_lag", Help: "x"}, []string{"partition", "topic"})
	goGauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "go_goroutines", Help: "x"})
	reg.MustRegister(c, g, h, lag, goGauge)
	lag.WithLabelValues("0", "voltha.kpis").Set(7)
	goGauge.Set(12)
	c.WithLabelValues("slice", "not_a_number").Add(3)
	c.WithLabelValues("my.decoder", "bad path").Inc()
	g.Set(1)
	h.Observe(0.5)
	h.Observe(1.5)
	fams, err := reg.Gather()
	require.NoError(t, err)

	at := time.Unix(1700000000, 0)
	got := Samples(fams, "shovel.host1", at, false)
	want := []metric.Sample{
		{Path: "shovel.host1.rejected.my_decoder.bad_path", Time: 1700000000, Value: 1},
		{Path: "shovel.host1.rejected.slice.not_a_number", Time: 1700000000, Value: 3},
		{Path: "shovel.host1.up", Time: 1700000000, Value: 1},
		{Path: "shovel.host1.write_seconds_count", Time: 1700000000, Value: 2},
		{Path: "shovel.host1.write_seconds_sum", Time: 1700000000, Value: 2},
		{Path: "shovel.host1.kafka_consumer_lag.voltha_kpis.0", Time: 1700000000, Value: 7},
	}
	require.ElementsMatch(t, want, got, "shovel once, topic before partition, no go_* series")
	require.ElementsMatch(t, append(want, metric.Sample{Path: "shovel.host1.go_goroutines", Time: 1700000000, Value: 12}),
		Samples(fams, "shovel.host1", at, true), "runtime: true adds Go's and the process's series")
	for _, s := range got {
		require.True(t, metric.ValidPath(s.Path), s.Path)
	}
}
