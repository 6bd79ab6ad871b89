package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

func TestRouteDeadLetters(t *testing.T) {
	skipShort(t)
	const topic, dlTopic, group = "kpis.dl", "kpis.dead", "it-dl"
	b := kafkatest.Start(t, 1, topic, dlTopic)
	good := sliceKPIs("dl.good", 20, recent())
	bad := []struct{ value, reason string }{
		{`{"type":"slice","ts":1,"data":`, "invalid_json"},
		{`{"type":"kpi-v9","ts":1}`, "no_route"},
		{`{"type":"slice","data":{"a":{"b":1}}}`, "bad_timestamp"}, // the decoder rejects it whole
	}
	var want []carbontest.Sample
	var recs []kafkatest.Record
	for i, k := range good {
		recs = append(recs, kafkatest.Record{Topic: topic, Value: k.value})
		want = append(want, k.want...)
		if i < len(bad) {
			recs = append(recs, kafkatest.Record{Topic: topic, Value: []byte(bad[i].value), Headers: map[string]string{"origin": "olt-7"}})
		}
	}
	b.Produce(t, recs...)

	pickle := carbontest.ListenPickle(t)
	cfg := filepath.Join(t.TempDir(), "shovel.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
kafka: {brokers: "`+b.Addr+`", topics: [`+topic+`], group: `+group+`}
routes: [{match: {type: slice}, decoder: slice, outputs: [graphite]}]
outputs:
  graphite: {kind: carbon-pickle, address: "`+pickle.Addr()+`"}
dead_letter: {topic: `+dlTopic+`}
`), 0o600))
	sh := startShovel(t, "route", "--config", cfg)
	require.Eventually(t, func() bool { return pickle.Len() >= len(want) }, 60*time.Second, 10*time.Millisecond)

	dead := b.Consume(t, dlTopic, len(bad))
	require.Len(t, dead, len(bad))
	for i, r := range dead {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		require.Equal(t, bad[i].value, string(r.Value), "the message is kept unchanged")
		require.Equal(t, bad[i].reason, h[kafka.HeaderReason])
		require.Equal(t, topic, h[kafka.HeaderTopic])
		require.Equal(t, "0", h[kafka.HeaderPartition])
		require.Equal(t, strconv.Itoa(2*i+1), h[kafka.HeaderOffset], "good and bad messages alternate")
		require.Equal(t, "olt-7", h["origin"], "the original headers are kept")
		_, err := time.Parse(time.RFC3339Nano, h[kafka.HeaderTime])
		require.NoError(t, err)
	}
	require.Equal(t, 0, sh.stop(t))
	require.Equal(t, sortSamples(want), sortSamples(pickle.Samples()))
	require.Equal(t, map[int32]int64{0: int64(len(recs))}, b.Committed(t, group, topic))
}
