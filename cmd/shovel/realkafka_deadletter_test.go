//go:build linux

package main

// The dead-letter producer on Apache Kafka: a missing topic stops start-up
// (Apache Kafka here creates no topic on request), and rejected messages
// land on the topic with their headers before their offsets are committed.

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka"
	"github.com/shovel-metrics/shovel/router/kafka/kafkabroker"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

func TestRealKafkaDeadLetters(t *testing.T) {
	c := sharedKafka(t)
	const topic, dlTopic, group = "kpis.real-dl", "kpis.real-dead", "real-dl"
	c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: 1})
	pickle := carbontest.ListenPickle(t)
	config := func(dead string) string {
		return `
kafka: {brokers: "` + c.Addr() + `", topics: [` + topic + `], group: ` + group + `}
routes: [{match: {type: slice}, decoder: slice, outputs: [graphite]}]
outputs:
  graphite: {kind: carbon-pickle, address: "` + pickle.Addr() + `"}
dead_letter: {topic: ` + dead + `}
`
	}

	t.Run("missing topic", func(t *testing.T) {
		start := time.Now()
		code, _, errOut := runCaptured(t, "route", "--config", writeConfig(t, config(dlTopic)), "--http", "")
		require.Equal(t, exitRuntime, code, errOut)
		require.Contains(t, errOut, `dead_letter.topic: dead letter: topic "`+dlTopic+`" does not exist (create it, or fix dead_letter.topic)`)
		t.Logf("refused in %v", time.Since(start).Round(time.Millisecond))
	})

	c.CreateTopic(t, kafkabroker.Topic{Name: dlTopic, Partitions: 1})
	good := sliceKPIs("realdl.good", 200, recent())
	bad := []struct{ value, reason string }{
		{`{"type":"slice","ts":1,"data":`, "invalid_json"},
		{`{"type":"kpi-v9","ts":1}`, "no_route"},
		{`{"type":"slice","data":{"a":{"b":1}}}`, "bad_timestamp"},
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
	c.Produce(t, recs...)
	sh := startShovel(t, "route", "--config", writeConfig(t, config(dlTopic)))
	require.Eventually(t, func() bool { return pickle.Len() >= len(want) }, 60*time.Second, 10*time.Millisecond)
	dead := c.Consume(t, dlTopic, len(bad))
	require.Len(t, dead, len(bad))
	for i, r := range dead {
		h := recordHeaders(r)
		require.Equal(t, bad[i].value, string(r.Value), "the message is kept unchanged")
		require.Equal(t, bad[i].reason, h[kafka.HeaderReason])
		require.Equal(t, topic, h[kafka.HeaderTopic])
		require.Equal(t, strconv.Itoa(2*i+1), h[kafka.HeaderOffset], "good and bad messages alternate")
		require.Equal(t, "olt-7", h["origin"], "the original headers are kept")
	}
	require.Eventually(t, func() bool { return c.CommittedTotal(t, group, topic) == int64(len(recs)) }, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, 0, sh.stop(t))
	require.Equal(t, sortSamples(want), sortSamples(pickle.Samples()))
	require.Equal(t, map[int32]int64{0: int64(len(bad))}, c.EndOffsets(t, dlTopic, 1), "each dead letter once")
}
