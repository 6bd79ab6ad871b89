package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
	"github.com/shovel-metrics/shovel/router/metric"
)

// hostileKey is a dotted name of about n bytes whose segments Carbon takes.
func hostileKey(n int) string {
	seg := strings.Repeat("h", 199)
	var b strings.Builder
	for b.Len()+len(seg)+1 < n {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}

// fillNames writes distinct short JSON members ("1f":1) until b holds size bytes.
func fillNames(b *bytes.Buffer, size int) {
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(b, `"%x":1`, i)
	}
}

// amplifyingMessages are the output amplification attacks of issue 11, each
// just under 1 MB: a long key shared by many short metric names (slice data
// and prefixes), one slice_data entry's long metadata shared by its
// metrics, json paths built from an array field or from a field repeated
// in the template. Each would decode into hundreds of MB.
func amplifyingMessages(ts int64) map[string][]byte {
	const size = 1_000_000 - 64
	key := hostileKey(4000)
	seg := strings.Repeat("m", 199)
	msgs := map[string]*bytes.Buffer{}
	add := func(name, head, tail string) {
		b := bytes.NewBufferString(head)
		fillNames(b, size)
		b.WriteString(tail)
		msgs[name] = b
	}
	add("slice data", fmt.Sprintf(`{"type":"slice","ts":%d,"data":{"%s":{`, ts, key), "}}}")
	add("slice prefixes", fmt.Sprintf(`{"type":"slice","ts":%d,"prefixes":{"%s":{"metrics":{`, ts, key), "}}}}")
	ctx := make([]string, 17)
	for i := range ctx {
		ctx[i] = fmt.Sprintf(`"c%d":"%s"`, i, seg)
	}
	add("slice_data", fmt.Sprintf(`{"type":"slice","ts":%d,"slice_data":[{"metadata":{"title":"%s","device_id":"%s","context":{%s}},"metrics":{`,
		ts, seg, seg, strings.Join(ctx, ",")), "}}]}")
	tags := make([]string, 19)
	for i := range tags {
		tags[i] = `"` + seg + `"`
	}
	add("json array field", fmt.Sprintf(`{"type":"tagged","ts":%d,"tags":[%s],"counters":{`, ts, strings.Join(tags, ",")), "}}")
	add("json repeated field", fmt.Sprintf(`{"type":"repeated","ts":%d,"host":"%s","counters":{`, ts, seg), "}}")
	out := map[string][]byte{}
	for k, v := range msgs {
		out[k] = v.Bytes()
	}
	return out
}

// pickleOf is [(path, (ts, value)), ...] as a protocol 2 pickle; refs > 0
// makes it the memo bomb: the first element referenced refs more times
// through the memo (BINGET).
func pickleOf(samples []carbontest.Sample, refs int) []byte {
	b := []byte{0x80, 2, ']', 'q', 0, '('}
	for i, s := range samples {
		b = append(b, 'X')
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s.Path)))
		b = append(b, s.Path...)
		b = append(b, 'J')
		b = binary.LittleEndian.AppendUint32(b, uint32(s.Time))
		b = append(b, 'J')
		b = binary.LittleEndian.AppendUint32(b, uint32(int32(s.Value)))
		b = append(b, 0x86, 0x86)
		if i == 0 {
			b = append(b, 'q', 1)
		}
	}
	for range refs {
		b = append(b, 'h', 1)
	}
	return append(b, 'e', '.')
}

// TestRouteOutputBudget: the amplification attacks of issue 11 go through
// the real router (kfake, shovel route, a Carbon pickle listener) between
// good messages. Each is rejected whole as output_budget, counted under its
// decoder and dead-lettered; every good message arrives exactly, and
// nothing else does; what reaches Carbon is within the budget's multiple of
// what was read, and the heap never grows by more than a few budgets.
func TestRouteOutputBudget(t *testing.T) {
	skipShort(t)
	const jsonTopic, pickleTopic, dlTopic, group = "hostile.json", "hostile.pickle", "hostile.dead", "it-budget"
	b := kafkatest.StartWith(t, kafkatest.Options{MaxRecordBytes: maxRecordBytes}, 2, jsonTopic, pickleTopic, dlTopic)
	ts := recent()

	var want []carbontest.Sample
	var recs []kafkatest.Record
	inBytes := 0
	add := func(topic string, value []byte, partition int32) {
		recs = append(recs, kafkatest.Record{Topic: topic, Partition: partition, Value: value})
		inBytes += len(value)
	}
	good := sliceKPIs("budget.good", 40, ts)
	attacks := amplifyingMessages(ts)
	names := []string{"slice data", "slice prefixes", "slice_data", "json array field", "json repeated field"}
	for i, k := range good {
		add(jsonTopic, k.value, int32(i%2))
		want = append(want, k.want...)
		if i < len(names) {
			add(jsonTopic, attacks[names[i]], int32(i%2))
		}
		if i%8 == 0 { // good json messages of both decoders
			tagged := fmt.Sprintf(`{"type":"tagged","ts":%d,"tags":["olt%d","pon1"],"counters":{"rx":%d}}`, ts+int64(i), i, i)
			add(jsonTopic, []byte(tagged), int32(i%2))
			want = append(want, carbontest.Sample{Path: fmt.Sprintf("olt%d.pon1.rx", i), Time: float64(ts + int64(i)), Value: float64(i)})
			repeated := fmt.Sprintf(`{"type":"repeated","ts":%d,"host":"h%d","counters":{"up":1}}`, ts+int64(i), i)
			add(jsonTopic, []byte(repeated), int32(i%2))
			want = append(want, carbontest.Sample{Path: strings.Repeat(fmt.Sprintf("h%d.", i), 19) + "up", Time: float64(ts + int64(i)), Value: 1})
		}
	}
	// The pickle memo bomb, two of them, between good pickles.
	longPath := hostileKey(3800)
	for i := range 3 {
		p := []carbontest.Sample{{Path: fmt.Sprintf("budget.pickle.p%d", i), Time: float64(ts), Value: float64(i)}}
		add(pickleTopic, pickleOf(p, 0), 0)
		want = append(want, p...)
		if i < 2 {
			add(pickleTopic, pickleOf([]carbontest.Sample{{Path: longPath, Time: float64(ts), Value: 1}}, (1_000_000-4000)/2), 0)
		}
	}
	b.Produce(t, recs...)
	rejectedWant := map[string]float64{"slice": 3, "tagged": 1, "repeated": 1, "carbon-pickle": 2}

	pickle := carbontest.ListenPickle(t)
	cfg := writeConfig(t, fmt.Sprintf(`
kafka:
  brokers: %s
  topics: [%s, %s]
  group: %s
  workers: 2
  settings: {fetch.max.bytes: 104857600, receive.message.max.bytes: 209715200}
routes:
  - {match: {topic: %s}, decoder: carbon-pickle, outputs: [graphite]}
  - {match: {type: tagged}, decoder: tagged, outputs: [graphite]}
  - {match: {type: repeated}, decoder: repeated, outputs: [graphite]}
  - {match: {type: slice}, decoder: slice, outputs: [graphite]}
decoders:
  tagged: {kind: json, path: "{tags}.{metric}", metrics_object: counters}
  repeated: {kind: json, path: "%s{metric}", metrics_object: counters}
outputs:
  graphite: {kind: carbon-pickle, address: %q, flush_interval: 50ms}
dead_letter: {topic: %s}
`, b.Addr, jsonTopic, pickleTopic, group, pickleTopic, strings.Repeat("{host}.", 19), pickle.Addr(), dlTopic))

	// The heap's peak while shovel works through the messages (shovel runs
	// in this process; the broker holds its records already).
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline, allocBefore := ms.HeapAlloc, ms.TotalAlloc
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()

	sh := startShovel(t, "route", "--config", cfg)
	require.Eventually(t, func() bool { return pickle.Len() >= len(want) }, 120*time.Second, 20*time.Millisecond,
		"got %d of %d samples", pickle.Len(), len(want))
	require.Eventually(t, func() bool {
		return b.CommittedTotal(t, group, jsonTopic)+b.CommittedTotal(t, group, pickleTopic) == int64(len(recs))
	}, 60*time.Second, 50*time.Millisecond, "every message, rejected ones included, is committed")
	m := statusAddr.FindStringSubmatch(sh.logs.String())
	require.NotNil(t, m, "shovel logs where its status endpoints listen")
	rejected := map[string]float64{}
	for _, c := range scrapeCounters(t, m[1]+"/metrics", "shovel_rejected_messages_total") {
		if c.labels["reason"] == metric.ReasonOverBudget {
			rejected[c.labels["decoder"]] += c.value
		}
	}
	for _, c := range scrapeCounters(t, m[1]+"/metrics", "shovel_rejected_samples_total") {
		require.NotEqual(t, metric.ReasonOverBudget, c.labels["reason"], "the budget rejects whole messages")
	}
	dead := b.Consume(t, dlTopic, 7)
	require.Equal(t, 0, sh.stop(t))
	close(stopSampling)
	<-sampled
	runtime.ReadMemStats(&ms)
	allocated := int64(ms.TotalAlloc - allocBefore)

	require.Equal(t, rejectedWant, rejected, "shovel_rejected_messages_total{reason=output_budget} by decoder")
	require.Len(t, dead, 7)
	for _, r := range dead {
		reason := ""
		for _, h := range r.Headers {
			if h.Key == kafka.HeaderReason {
				reason = string(h.Value)
			}
		}
		require.Equal(t, metric.ReasonOverBudget, reason)
	}
	require.Empty(t, pickle.Errors())
	got := distinct(pickle.Samples())
	require.Equal(t, sortSamples(want), got, "the good messages exactly, nothing of the attacks")
	outBytes := 0
	for _, s := range pickle.Samples() {
		outBytes += len(s.Path) + metric.SampleOverhead
	}
	require.LessOrEqual(t, outBytes, metric.DefaultOutputRatio*inBytes)
	// Before the budget, each attack decoded into 400 MB to 2 GB: the
	// run allocated gigabytes and held them (7.7 GB RSS for three). Now
	// each costs about its budget, once; the heap's peak, garbage
	// included (shovel's GOGC is 300), stays below the sum of the
	// budgets and what the broker and consumer in this process hold.
	growth := int64(peak.Load()) - int64(baseline)
	budget := int64(metric.DefaultOutputRatio * 1_000_000)
	nAttacks := int64(len(names) + 2)
	t.Logf("%d messages, %d bytes in, %d sample bytes to Carbon; %d attacks of budget %d MB: %d MB allocated in all, heap peak %d MB over a %d MB baseline",
		len(recs), inBytes, outBytes, nAttacks, budget>>20, allocated>>20, growth>>20, baseline>>20)
	require.Less(t, allocated, nAttacks*(budget+2<<20)+128<<20, "allocated %d MB in all", allocated>>20)
	require.Less(t, growth, nAttacks*budget+128<<20, "heap grew by %d MB", growth>>20)
}
