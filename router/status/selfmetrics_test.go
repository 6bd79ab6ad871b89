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
	reg.MustRegister(c, g, h)
	c.WithLabelValues("slice", "not_a_number").Add(3)
	c.WithLabelValues("my.decoder", "bad path").Inc()
	g.Set(1)
	h.Observe(0.5)
	h.Observe(1.5)
	fams, err := reg.Gather()
	require.NoError(t, err)

	at := time.Unix(1700000000, 0)
	got := Samples(fams, "shovel.host1", at)
	require.ElementsMatch(t, []metric.Sample{
		{Path: "shovel.host1.shovel_rejected_total.my_decoder.bad_path", Time: 1700000000, Value: 1},
		{Path: "shovel.host1.shovel_rejected_total.slice.not_a_number", Time: 1700000000, Value: 3},
		{Path: "shovel.host1.shovel_up", Time: 1700000000, Value: 1},
		{Path: "shovel.host1.shovel_write_seconds_count", Time: 1700000000, Value: 2},
		{Path: "shovel.host1.shovel_write_seconds_sum", Time: 1700000000, Value: 2},
	}, got)
	for _, s := range got {
		require.True(t, metric.ValidPath(s.Path), s.Path)
	}
}
