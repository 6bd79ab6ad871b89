package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
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

func recordHeaders(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

// TestDeadLetterTopicTheConsumerReadsIsRefused: config check and route
// refuse a dead-letter topic that kafka.topics matches, before any I/O.
func TestDeadLetterTopicTheConsumerReadsIsRefused(t *testing.T) {
	const want = `shovel: dead_letter.topic: "hostile" is read by kafka.topics[0] "^hostile.*": shovel would consume its own dead letters (choose a topic that kafka.topics neither names nor matches)` + "\n"
	path := writeConfig(t, `
kafka: {brokers: "127.0.0.1:1", topics: ["^hostile.*"]}
routes: [{decoder: slice, outputs: [g]}]
outputs: {g: {kind: carbon-pickle, address: "127.0.0.1:1"}}
dead_letter: {topic: hostile}
`)
	for _, args := range [][]string{{"config", "check", "--config", path}, {"route", "--config", path, "--http", ""}} {
		code, out, errOut := runCaptured(t, args...)
		require.Equal(t, exitUsage, code, "%v: %s%s", args, out, errOut)
		require.Equal(t, want, errOut, "%v", args)
	}
}

// TestRouteNeedsItsDeadLetterTopic: a dead-letter topic that does not
// exist stops start-up with an error that names the key.
func TestRouteNeedsItsDeadLetterTopic(t *testing.T) {
	skipShort(t)
	b := kafkatest.Start(t, 1, "kpis.in") // kafkatest lets clients create topics; shovel must not
	path := writeConfig(t, `
kafka: {brokers: "`+b.Addr+`", topics: [kpis.in], group: it-dl-missing}
routes: [{decoder: slice, outputs: [g]}]
outputs: {g: {kind: carbon-pickle, address: "127.0.0.1:`+deadPort(t)+`"}}
dead_letter: {topic: kpis.dead}
`)
	code, _, errOut := runCaptured(t, "route", "--config", path, "--http", "")
	require.Equal(t, exitRuntime, code, errOut)
	require.Contains(t, errOut, `shovel: dead_letter.topic: dead letter: topic "kpis.dead" does not exist (create it, or fix dead_letter.topic)`)
}

// TestRouteDoesNotDeadLetterDeadLetters: a message read back from a
// dead-letter topic (here: copied by hand into the input) that is
// rejected again is counted and committed, not dead-lettered a second time.
func TestRouteDoesNotDeadLetterDeadLetters(t *testing.T) {
	skipShort(t)
	const topic, dlTopic, group = "kpis.replayed", "kpis.dead", "it-dl-replayed"
	b := kafkatest.Start(t, 1, topic, dlTopic)
	good := sliceKPIs("replayed", 2, recent())
	b.Produce(t,
		kafkatest.Record{Topic: topic, Value: good[0].value},
		kafkatest.Record{Topic: topic, Value: []byte(`{"type":"slice","data":`), Headers: map[string]string{
			kafka.HeaderReason: "invalid_json", kafka.HeaderTopic: "kpis.elsewhere", kafka.HeaderOffset: "7"}},
		kafkatest.Record{Topic: topic, Value: []byte(`{"type":"slice","data":`)}, // a first rejection
		kafkatest.Record{Topic: topic, Value: good[1].value},
	)
	pickle := carbontest.ListenPickle(t)
	sh := startShovel(t, "route", "--config", writeConfig(t, `
kafka: {brokers: "`+b.Addr+`", topics: [`+topic+`], group: `+group+`}
routes: [{match: {type: slice}, decoder: slice, outputs: [graphite]}]
outputs: {graphite: {kind: carbon-pickle, address: "`+pickle.Addr()+`"}}
dead_letter: {topic: `+dlTopic+`}
`))
	url := statusURL(t, sh)
	require.Eventually(t, func() bool { return b.CommittedTotal(t, group, topic) == 4 }, 60*time.Second, 50*time.Millisecond)
	dead := b.Consume(t, dlTopic, 1)
	require.Equal(t, "2", recordHeaders(dead[0])[kafka.HeaderOffset], "the first rejection is dead-lettered")
	_, body := get(t, url+"/metrics")
	require.EqualValues(t, 1, metricValue(t, body, `shovel_dead_letters_skipped_total{reason="already_dead_lettered"}`))
	require.EqualValues(t, 1, metricValue(t, body, "shovel_dead_letters_total"))
	require.Eventually(t, func() bool {
		_, body := get(t, url+"/metrics")
		return metricValue(t, body, "shovel_dead_letters_delivered_total") == 1
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, 0, sh.stop(t))
	require.Len(t, b.Consume(t, dlTopic, 1), 1)
	require.Equal(t, 1, strings.Count(sh.logs.String(), "it already is a dead letter"))
	require.Equal(t, sortSamples(append(good[0].want, good[1].want...)), distinct(pickle.Samples()))
}

// TestRouteHugeDeadLettersDoNotStall: messages whose dead letter cannot be
// produced whole, over the producer's limit derived from max_message_bytes
// or over the dead-letter topic's max.message.bytes on the broker, arrive
// truncated; the messages after them are delivered and committed.
func TestRouteHugeDeadLettersDoNotStall(t *testing.T) {
	skipShort(t)
	garbage := bytes.Repeat([]byte{0xfe}, 1_000_001)
	manyHeaders := map[string]string{}
	for i := range 1000 {
		manyHeaders[fmt.Sprintf("h%03d", i)] = strings.Repeat("x", 1000)
	}
	for _, tc := range []struct {
		name       string
		maxMessage int    // the decoder's max_message_bytes
		topicMax   string // the dead-letter topic's max.message.bytes, "" for the broker's default
		garbageWhy string
	}{
		// The decoders accept 4 KiB: the producer's limit is its floor,
		// librdkafka's default of 1 000 000 bytes, and both letters are
		// truncated before they reach librdkafka.
		{name: "over the producer limit", maxMessage: 4096, garbageWhy: "too_large"},
		// The decoders accept 1 MiB, so does the producer; the broker
		// refuses both letters for the topic, permanently.
		{name: "refused by the broker", maxMessage: 1 << 20, topicMax: "100000", garbageWhy: "invalid_json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic, dlTopic, group := "kpis.huge", "kpis.dead", "it-dl-huge"
			b := kafkatest.Start(t, 1, topic, dlTopic)
			if tc.topicMax != "" {
				b.SetTopicConfig(t, dlTopic, "max.message.bytes", tc.topicMax)
			}
			good := sliceKPIs("huge", 3, recent())
			b.Produce(t,
				kafkatest.Record{Topic: topic, Value: good[0].value},
				kafkatest.Record{Topic: topic, Value: garbage},
				kafkatest.Record{Topic: topic, Value: good[1].value},
				kafkatest.Record{Topic: topic, Value: []byte("{"), Headers: manyHeaders},
				kafkatest.Record{Topic: topic, Value: good[2].value},
			)
			pickle := carbontest.ListenPickle(t)
			sh := startShovel(t, "route", "--config", writeConfig(t, fmt.Sprintf(`
kafka: {brokers: "%s", topics: [%s], group: %s}
decoders: {kpis: {kind: slice, max_message_bytes: %d}}
routes: [{decoder: kpis, outputs: [graphite]}]
outputs: {graphite: {kind: carbon-pickle, address: "%s"}}
dead_letter: {topic: %s}
`, b.Addr, topic, group, tc.maxMessage, pickle.Addr(), dlTopic)))
			url := statusURL(t, sh)
			var want []carbontest.Sample
			for _, k := range good {
				want = append(want, k.want...)
			}
			require.Eventually(t, func() bool { return pickle.Len() >= len(want) }, 60*time.Second, 10*time.Millisecond,
				"the good messages after the huge ones are delivered")
			require.Eventually(t, func() bool { return b.CommittedTotal(t, group, topic) == 5 }, 60*time.Second, 50*time.Millisecond,
				"the offset is committed past the huge messages")

			dead := b.Consume(t, dlTopic, 2)
			require.Len(t, dead, 2)
			for i, r := range dead {
				h := recordHeaders(r)
				require.Empty(t, r.Value, "truncated")
				require.Len(t, r.Headers, 7, "shovel's headers only")
				require.Equal(t, strconv.Itoa(1+2*i), h[kafka.HeaderOffset])
				require.Equal(t, topic, h[kafka.HeaderTopic])
				require.NotEmpty(t, h[kafka.HeaderTime])
				size, err := strconv.Atoi(h[kafka.HeaderTruncated])
				require.NoError(t, err)
				require.Greater(t, size, 1_000_000, "the size left out")
			}
			require.Equal(t, tc.garbageWhy, recordHeaders(dead[0])[kafka.HeaderReason])
			require.Equal(t, "invalid_json", recordHeaders(dead[1])[kafka.HeaderReason])

			_, body := get(t, url+"/metrics")
			require.EqualValues(t, 2, metricValue(t, body, "shovel_dead_letters_delivered_total"))
			require.EqualValues(t, 2, metricValue(t, body, "shovel_dead_letters_truncated_total"))
			require.EqualValues(t, 0, metricValue(t, body, "shovel_dead_letters_dropped_total"))
			code, readyz := get(t, url+"/readyz")
			require.Equal(t, http.StatusOK, code, readyz)
			require.Equal(t, 0, sh.stop(t))
			require.Equal(t, sortSamples(want), distinct(pickle.Samples()))
			// One truncation line per kind per 10 s, not one per attempt.
			require.LessOrEqual(t, strings.Count(sh.logs.String(), "level=WARN"), 6, warnLines(sh.logs.String()))
		})
	}
}

func warnLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "level=WARN") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRouteDropsDeadLettersTheTopicNeverTakes: when the dead-letter topic
// refuses even a truncated letter, the letter is counted as dropped, its
// message committed, and /readyz says so; the partition goes on.
func TestRouteDropsDeadLettersTheTopicNeverTakes(t *testing.T) {
	skipShort(t)
	const topic, dlTopic, group = "kpis.in", "kpis.dead", "it-dl-drop"
	b := kafkatest.Start(t, 1, topic, dlTopic)
	b.SetTopicConfig(t, dlTopic, "max.message.bytes", "100") // smaller than shovel's headers alone
	good := sliceKPIs("drop", 2, recent())
	b.Produce(t,
		kafkatest.Record{Topic: topic, Value: good[0].value},
		kafkatest.Record{Topic: topic, Value: []byte("{")},
		kafkatest.Record{Topic: topic, Value: good[1].value},
	)
	pickle := carbontest.ListenPickle(t)
	sh := startShovel(t, "route", "--config", writeConfig(t, `
kafka: {brokers: "`+b.Addr+`", topics: [`+topic+`], group: `+group+`}
routes: [{decoder: slice, outputs: [graphite]}]
outputs: {graphite: {kind: carbon-pickle, address: "`+pickle.Addr()+`"}}
dead_letter: {topic: `+dlTopic+`}
`))
	url := statusURL(t, sh)
	require.Eventually(t, func() bool { return b.CommittedTotal(t, group, topic) == 3 }, 60*time.Second, 50*time.Millisecond)
	_, body := get(t, url+"/metrics")
	require.EqualValues(t, 1, metricValue(t, body, "shovel_dead_letters_dropped_total"))
	require.EqualValues(t, 0, metricValue(t, body, "shovel_dead_letters_delivered_total"))
	code, readyz := get(t, url+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, readyz)
	require.Contains(t, readyz, `"dead_letter":"dead letters to kpis.dead are being dropped: Broker: Message size too large"`)
	require.Equal(t, 0, sh.stop(t))
	var want []carbontest.Sample
	for _, k := range good {
		want = append(want, k.want...)
	}
	require.Equal(t, sortSamples(want), distinct(pickle.Samples()))
	require.Contains(t, sh.logs.String(), "dead letter dropped: even truncated it cannot be produced")
}
