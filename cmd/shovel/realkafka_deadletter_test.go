//go:build linux

package main

// The dead-letter producer on Apache Kafka: a missing topic stops start-up
// (Apache Kafka here creates no topic on request), and rejected messages
// land on the topic with their headers before their offsets are committed,
// produced by an idempotent producer (acks=all): each letter once, in
// order, also when the topic refuses letters as too large and the
// producer bumps its epoch to go on.

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	// The broker is shared by the whole run, -count=N included: names of
	// their own for each run.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic, dlTopic, group := "kpis.real-dl-"+run, "kpis.real-dead-"+run, "real-dl-"+run
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
		require.GreaterOrEqual(t, r.ProducerID, int64(0), "produced by the idempotent producer")
		require.Equal(t, dead[0].ProducerID, r.ProducerID, "one producer")
	}
	require.Eventually(t, func() bool { return c.CommittedTotal(t, group, topic) == int64(len(recs)) }, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, 0, sh.stop(t))
	require.Equal(t, sortSamples(want), sortSamples(pickle.Samples()))
	require.Equal(t, map[int32]int64{0: int64(len(bad))}, c.EndOffsets(t, dlTopic, 1), "each dead letter once")

	t.Run("refused by the broker", func(t *testing.T) {
		// The topic takes 100 000 bytes a record: the broker refuses two
		// letters of about 1 MB for good (MESSAGE_TOO_LARGE). The
		// idempotent producer bumps its epoch past the gap; the letters
		// arrive truncated, once each, in order, and nothing stalls.
		topic, dlTopic, group := "kpis.real-huge-"+run, "kpis.real-huge-dead-"+run, "real-dl-huge-"+run
		c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: 1, Configs: map[string]string{"max.message.bytes": "4194304"}})
		c.CreateTopic(t, kafkabroker.Topic{Name: dlTopic, Partitions: 1, Configs: map[string]string{"max.message.bytes": "100000"}})
		manyHeaders := map[string]string{}
		for i := range 1000 {
			manyHeaders[fmt.Sprintf("h%03d", i)] = strings.Repeat("x", 1000)
		}
		good := sliceKPIs("realdl.huge", 3, recent())
		c.Produce(t,
			kafkatest.Record{Topic: topic, Value: good[0].value},
			kafkatest.Record{Topic: topic, Value: bytes.Repeat([]byte{0xfe}, 1_000_001)},
			kafkatest.Record{Topic: topic, Value: good[1].value},
			kafkatest.Record{Topic: topic, Value: []byte("{"), Headers: manyHeaders},
			kafkatest.Record{Topic: topic, Value: good[2].value},
		)
		pickle := carbontest.ListenPickle(t)
		sh := startShovel(t, "route", "--config", writeConfig(t, `
kafka: {brokers: "`+c.Addr()+`", topics: [`+topic+`], group: `+group+`}
decoders: {kpis: {kind: slice, max_message_bytes: 1048576}}
routes: [{decoder: kpis, outputs: [graphite]}]
outputs: {graphite: {kind: carbon-pickle, address: "`+pickle.Addr()+`"}}
dead_letter: {topic: `+dlTopic+`}
`))
		url := statusURL(t, sh)
		var want []carbontest.Sample
		for _, k := range good {
			want = append(want, k.want...)
		}
		require.Eventually(t, func() bool { return c.CommittedTotal(t, group, topic) == 5 }, 60*time.Second, 50*time.Millisecond,
			"the offset is committed past the refused letters")
		dead := c.Consume(t, dlTopic, 2)
		require.Len(t, dead, 2)
		for i, r := range dead {
			h := recordHeaders(r)
			require.Empty(t, r.Value, "truncated")
			require.Len(t, r.Headers, 7, "shovel's headers only")
			require.Equal(t, strconv.Itoa(1+2*i), h[kafka.HeaderOffset], "in the order of the source")
			size, err := strconv.Atoi(h[kafka.HeaderTruncated])
			require.NoError(t, err)
			require.Greater(t, size, 1_000_000, "the size left out")
			require.GreaterOrEqual(t, r.ProducerID, int64(0), "produced by the idempotent producer")
		}
		_, body := get(t, url+"/metrics")
		require.EqualValues(t, 2, metricValue(t, body, "shovel_dead_letters_delivered_total"))
		require.EqualValues(t, 2, metricValue(t, body, "shovel_dead_letters_truncated_total"))
		require.EqualValues(t, 0, metricValue(t, body, "shovel_dead_letters_dropped_total"))
		code, readyz := get(t, url+"/readyz")
		require.Equal(t, http.StatusOK, code, readyz)
		require.Equal(t, 0, sh.stop(t))
		require.Equal(t, sortSamples(want), distinct(pickle.Samples()))
		require.Equal(t, map[int32]int64{0: 2}, c.EndOffsets(t, dlTopic, 1), "each dead letter once")
	})
}
