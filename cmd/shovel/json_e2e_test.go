package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

// onuStatsKPIs builds n messages of a type shovel has no Go for, onu_stats,
// which configs/json-decoder.yaml describes in YAML alone. The expected
// samples are written out here, independently of the decoder.
func onuStatsKPIs(n int, ts0ms int64) []kpi {
	out := make([]kpi, n)
	for i := range out {
		ms := ts0ms + int64(i)*1000 + 250
		device, port := fmt.Sprintf("onu-%d", i%4), fmt.Sprintf("uni-%d", i%2)
		counters := map[string]any{"rx_bytes": i * 100, "tx_bytes": float64(i) + 0.5, "link_up": i%3 == 0}
		b, _ := json.Marshal(map[string]any{
			"type": "onu_stats", "device": map[string]any{"id": device, "serial": "ALPH"},
			"port": port, "collected_at": ms, "counters": counters,
			"optics": map[string]any{"rx_power_dbm": -20 - float64(i%8)/4},
		})
		ts := float64(ms) / 1000
		prefix := "voltha.onu." + device + "." + port + "."
		up := 0.0
		if i%3 == 0 {
			up = 1
		}
		out[i] = kpi{value: b, want: []carbontest.Sample{
			{Path: prefix + "optics.rx_power_dbm", Time: ts, Value: -20 - float64(i%8)/4},
			{Path: prefix + "rx_bytes", Time: ts, Value: float64(i * 100)},
			{Path: prefix + "tx_bytes", Time: ts, Value: float64(i) + 0.5},
			{Path: prefix + "link_up", Time: ts, Value: up},
		}}
	}
	return out
}

// A new message type added in YAML alone goes end to end: Kafka (kfake) →
// shovel route with configs/json-decoder.yaml → Carbon's pickle receiver,
// every sample exact, next to the slice messages on the same topic.
func TestRouteJSONDecoderFromYAML(t *testing.T) {
	skipShort(t)
	const topic = "kpis.json"
	b := kafkatest.Start(t, 2, topic)
	// Recent timestamps: the router drops samples outside its time window.
	ts0 := time.Now().Add(-10 * time.Minute).Unix()
	want := produceKPIs(t, b, topic, 2, onuStatsKPIs(200, ts0*1000))
	want = append(want, produceKPIs(t, b, topic, 2, sliceKPIs("voltha.internal", 50, ts0))...)
	// Bad onu_stats messages are rejected with a reason and hold nothing up.
	for i, v := range []string{
		`{"type":"onu_stats","device":{"id":"d"},"port":"p","counters":{"x":1}}`,                      // no timestamp
		`{"type":"onu_stats","device":{"id":"d"},"port":"p","collected_at":1,"counters":[1]}`,         // counters not an object
		`{"type":"onu_stats","port":"p","collected_at":1,"counters":{"x":1}}`,                         // no device id for the path
		`{"type":"onu_stats","device":{"id":"d"},"port":"p","collected_at":"x","counters":{"x":1}}`,   // bad timestamp
		`{"type":"onu_stats","device":{"id":"d"},"port":"p","collected_at":1,"counters":{"x":1e999}}`, // not finite
	} {
		b.Produce(t, kafkatest.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(v)})
	}
	tail := produceKPIs(t, b, topic, 2, onuStatsKPIs(20, (ts0+300)*1000))
	want = append(want, tail...)

	pickle := carbontest.ListenPickle(t)
	sh := startShovel(t, "route", "--config", "../../configs/json-decoder.yaml",
		"-K", b.Addr, "-t", topic, "-g", "it-json", "-H", "127.0.0.1", "-p", port(t, pickle.Addr()))
	require.Eventually(t, func() bool { return pickle.Len() >= len(want) }, 60*time.Second, 10*time.Millisecond,
		"got %d of %d samples", pickle.Len(), len(want))
	require.Equal(t, 0, sh.stop(t))
	require.Empty(t, pickle.Errors())
	require.Equal(t, sortSamples(want), sortSamples(pickle.Samples()), "every sample exact, none missing, none extra")
	logs := sh.logs.String()
	for _, reason := range []string{"bad_timestamp", "bad_shape", "missing_field", "not_finite"} {
		require.Contains(t, logs, "reason="+reason)
	}
}
