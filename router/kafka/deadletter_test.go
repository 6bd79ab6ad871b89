package kafka

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
	"github.com/shovel-metrics/shovel/router/metric"
)

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// acks counts done calls.
type acks struct {
	mu sync.Mutex
	n  int
}

func (a *acks) done() { a.mu.Lock(); a.n++; a.mu.Unlock() }
func (a *acks) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func headerMap(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

// failProduce makes the broker answer every produce request with code
// while on is true, as a broker that refuses the topic would.
func failProduce(b *kafkatest.Broker, code int16, on *atomic.Bool) {
	c := b.Cluster()
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !on.Load() {
			return nil, nil, false
		}
		req := kr.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode, rp.BaseOffset = p.Partition, code, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
}

func newTestDeadLetter(t *testing.T, cfg DeadLetterConfig) *DeadLetterWriter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := NewDeadLetter(ctx, cfg, testLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close(0) })
	return d
}

func TestDeadLetterStartupChecksTheTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kfake broker")
	}
	b := kafkatest.Start(t, 1, "kpis.dead") // kafkatest lets clients create topics; the writer must not
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := NewDeadLetter(ctx, DeadLetterConfig{Brokers: b.Addr, Topic: "kpis.dead"}, testLogger(t))
	require.NoError(t, err)
	require.NoError(t, d.Close(time.Second))
	// Settings may turn the log channel off; Close must not wait for it.
	d, err = NewDeadLetter(ctx, DeadLetterConfig{Brokers: b.Addr, Topic: "kpis.dead",
		Settings: map[string]any{"go.logs.channel.enable": false}}, testLogger(t))
	require.NoError(t, err)
	require.NoError(t, d.Close(time.Second))

	_, err = NewDeadLetter(ctx, DeadLetterConfig{Brokers: b.Addr, Topic: "kpis.deadd"}, testLogger(t))
	require.EqualError(t, err, `dead letter: topic "kpis.deadd" does not exist (create it, or fix dead_letter.topic)`)

	// No broker: the check gives up within its bound.
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err = NewDeadLetter(ctx, DeadLetterConfig{Brokers: "127.0.0.1:1", Topic: "kpis.dead"}, testLogger(t))
	require.ErrorContains(t, err, `dead letter: topic "kpis.dead": metadata request`)
	require.Less(t, time.Since(start), 10*time.Second)
}

// TestDeadLetterTruncatesWhatCannotBeProduced: a dead letter over the
// producer's limit, or refused by the broker as too large, arrives
// truncated (shovel's headers, no value), and its source is acknowledged.
func TestDeadLetterTruncatesWhatCannotBeProduced(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kfake broker")
	}
	manyHeaders := make([]metric.Header, 1000)
	for i := range manyHeaders {
		manyHeaders[i] = metric.Header{Key: fmt.Sprintf("h%03d", i), Value: bytes.Repeat([]byte{'x'}, 1000)}
	}
	big := &metric.Message{Topic: "kpis", Partition: 3, Offset: 41, Key: []byte("k"), Value: bytes.Repeat([]byte{0xff}, 1_000_001)}
	headers := &metric.Message{Topic: "kpis", Partition: 3, Offset: 42, Value: []byte("x"), Headers: manyHeaders}
	small := &metric.Message{Topic: "kpis", Partition: 3, Offset: 43, Value: []byte("{"), Headers: []metric.Header{{Key: "origin", Value: []byte("olt")}}}

	for _, tc := range []struct {
		name      string
		producer  int // the writer's MaxRecordBytes
		topicMax  int // the topic's max.message.bytes; 0 leaves the broker's default
		wantLocal bool
	}{
		{name: "over the producer limit", producer: DeadLetterRecordLimit(4096), wantLocal: true},
		{name: "refused by the broker", producer: DeadLetterRecordLimit(1 << 20), topicMax: 100_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := kafkatest.Start(t, 1, "kpis.dead")
			if tc.topicMax > 0 {
				b.SetTopicConfig(t, "kpis.dead", "max.message.bytes", fmt.Sprint(tc.topicMax))
			}
			d := newTestDeadLetter(t, DeadLetterConfig{Brokers: b.Addr, Topic: "kpis.dead", MaxRecordBytes: tc.producer})
			var a acks
			ctx := context.Background()
			for _, m := range []*metric.Message{big, headers, small} {
				require.NoError(t, d.Send(ctx, m, "invalid_json", "detail", a.done))
			}
			require.Eventually(t, func() bool { return a.count() == 3 }, 30*time.Second, 10*time.Millisecond)

			recs := b.Consume(t, "kpis.dead", 3)
			byOffset := map[string]*kgo.Record{}
			var truncated []string
			for _, r := range recs {
				byOffset[headerMap(r)[HeaderOffset]] = r
				if _, ok := headerMap(r)[HeaderTruncated]; ok {
					truncated = append(truncated, headerMap(r)[HeaderOffset])
				}
				require.GreaterOrEqual(t, r.ProducerID, int64(0), "produced by the idempotent producer")
			}
			// Letters sent again truncated keep their order among themselves.
			require.Equal(t, []string{"41", "42"}, truncated)
			for off, want := range map[string]int{"41": 1 + 1_000_001 + 6*10 + 124, "42": 1 + 1000*1014 + 6*10 + 124} {
				r := byOffset[off]
				require.NotNil(t, r, "offset %s", off)
				h := headerMap(r)
				require.Empty(t, r.Value)
				require.Empty(t, r.Key)
				require.Len(t, r.Headers, 7, "shovel's headers only")
				require.Equal(t, "invalid_json", h[HeaderReason])
				require.Equal(t, "detail", h[HeaderDetail])
				require.Equal(t, "kpis", h[HeaderTopic])
				require.Equal(t, "3", h[HeaderPartition])
				size := 0
				_, err := fmt.Sscan(h[HeaderTruncated], &size)
				require.NoError(t, err)
				require.InDelta(t, want, size, 64, "the size left out")
			}
			r := byOffset["43"]
			require.Equal(t, "{", string(r.Value), "a letter that fits is whole")
			require.Equal(t, "olt", headerMap(r)["origin"])
			require.NotContains(t, headerMap(r), HeaderTruncated)

			require.Equal(t, 3.0, counterValue(d.m.delivered))
			require.Equal(t, 2.0, counterValue(d.m.truncated))
			require.Equal(t, 0.0, counterValue(d.m.dropped))
			require.Empty(t, d.Readiness())
		})
	}
}

// TestDeadLetterDropsWhatNeverFits: when the topic refuses even the
// truncated letter for good, the letter is counted as dropped and its
// source acknowledged, and the writer says it is not ready.
func TestDeadLetterDropsWhatNeverFits(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kfake broker")
	}
	b := kafkatest.Start(t, 1, "kpis.dead")
	var on atomic.Bool
	on.Store(true)
	failProduce(b, kerr.TopicAuthorizationFailed.Code, &on)
	d := newTestDeadLetter(t, DeadLetterConfig{Brokers: b.Addr, Topic: "kpis.dead", UnreadyAfter: time.Minute,
		Settings: map[string]any{"topic.metadata.refresh.interval.ms": 1000}})
	var a acks
	for i := range 5 {
		require.NoError(t, d.Send(context.Background(), &metric.Message{Topic: "kpis", Offset: int64(i), Value: []byte("{")}, "invalid_json", "", a.done))
	}
	require.Eventually(t, func() bool { return a.count() == 5 }, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, 5.0, counterValue(d.m.dropped))
	require.Equal(t, 0.0, counterValue(d.m.delivered))
	require.Contains(t, d.Readiness(), "dead letters to kpis.dead are being dropped")

	// Once allowed, letters are delivered again, from librdkafka's next
	// metadata refresh on (it remembers the topic's error until then).
	on.Store(false)
	for i := 5; counterValue(d.m.delivered) == 0; i++ {
		require.Less(t, i, 300, "no letter delivered once the broker took them again")
		require.NoError(t, d.Send(context.Background(), &metric.Message{Topic: "kpis", Offset: int64(i), Value: []byte("{")}, "invalid_json", "", a.done))
		time.Sleep(50 * time.Millisecond)
	}
	require.Empty(t, d.Readiness(), "ready again once a letter is delivered")
}

// TestDeadLetterDropsWhenTheProducerFailsForGood: a broker that answers the
// idempotent producer's first batch with OUT_OF_ORDER_SEQUENCE_NUMBER
// makes librdkafka raise a fatal error (it can no longer vouch for order
// or once-ness); from then on every letter fails. They are dropped and
// counted, their sources acknowledged, never retried forever.
func TestDeadLetterDropsWhenTheProducerFailsForGood(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kfake broker")
	}
	b := kafkatest.Start(t, 1, "kpis.dead")
	var on atomic.Bool
	on.Store(true)
	failProduce(b, kerr.OutOfOrderSequenceNumber.Code, &on)
	d := newTestDeadLetter(t, DeadLetterConfig{Brokers: b.Addr, Topic: "kpis.dead", UnreadyAfter: time.Minute})
	var a acks
	for i := range 3 {
		require.NoError(t, d.Send(context.Background(), &metric.Message{Topic: "kpis", Offset: int64(i), Value: []byte("{")}, "invalid_json", "", a.done))
	}
	require.Eventually(t, func() bool { return a.count() == 3 }, 30*time.Second, 10*time.Millisecond)
	require.Error(t, d.p.GetFatalError())
	// Later letters too: the producer takes none.
	require.NoError(t, d.Send(context.Background(), &metric.Message{Topic: "kpis", Offset: 3, Value: []byte("{")}, "invalid_json", "", a.done))
	require.Eventually(t, func() bool { return a.count() == 4 }, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, 4.0, counterValue(d.m.dropped))
	require.Equal(t, 0.0, counterValue(d.m.delivered))
	require.Equal(t, 0.0, counterValue(d.m.truncated), "truncating cannot help")
	require.Contains(t, d.Readiness(), "dead letters to kpis.dead are being dropped")
	require.Contains(t, d.Readiness(), "sequence")
}

// TestDeadLetterRetriesTransientFailures: a broker that fails produce
// requests for a while delays dead letters, it does not lose them; the
// writer reports itself not ready meanwhile.
func TestDeadLetterRetriesTransientFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kfake broker")
	}
	b := kafkatest.Start(t, 1, "kpis.dead")
	var on atomic.Bool
	on.Store(true)
	failProduce(b, kerr.NotEnoughReplicas.Code, &on)
	// A short message timeout: librdkafka gives the letter back, and the
	// writer produces it again.
	d := newTestDeadLetter(t, DeadLetterConfig{Brokers: b.Addr, Topic: "kpis.dead", UnreadyAfter: 300 * time.Millisecond,
		Settings: map[string]any{"message.timeout.ms": 500}})
	var a acks
	require.NoError(t, d.Send(context.Background(), &metric.Message{Topic: "kpis", Value: []byte("{")}, "invalid_json", "", a.done))
	require.Eventually(t, func() bool { return strings.Contains(d.Readiness(), "1 dead letters to kpis.dead waiting") },
		10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return counterValue(d.m.retries) >= 2 }, 10*time.Second, 10*time.Millisecond)
	require.Zero(t, a.count(), "not acknowledged while undelivered")
	require.Equal(t, 0.0, counterValue(d.m.truncated), "a transient failure does not truncate")

	on.Store(false)
	require.Eventually(t, func() bool { return a.count() == 1 }, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, "{", string(b.Consume(t, "kpis.dead", 1)[0].Value))
	require.Empty(t, d.Readiness())
	require.Equal(t, 1.0, counterValue(d.m.delivered))
	require.Equal(t, 0.0, counterValue(d.m.dropped))
}

func TestDeadLetterRecordLimit(t *testing.T) {
	for _, tc := range []struct{ largest, want int }{
		{0, DefaultMaxRecordBytes},          // no decoder states a limit: librdkafka's default
		{4096, DefaultMaxRecordBytes},       // never below it
		{1 << 20, 1<<20 + 64<<10 + 1<<10},   // the default decoders: 1 115 136
		{2_000_000_000, maxProducerRecord},  // never above librdkafka's ceiling
		{10 << 20, 10<<20 + 64<<10 + 1<<10}, // a decoder raised to 10 MiB
	} {
		require.Equal(t, tc.want, DeadLetterRecordLimit(tc.largest), "largest value %d", tc.largest)
	}
}

func TestDeadLetterPermanentErrors(t *testing.T) {
	for code, want := range map[ck.ErrorCode]bool{
		ck.ErrMsgSizeTooLarge:          true,
		ck.ErrRecordListTooLarge:       true,
		ck.ErrTopicException:           true,
		ck.ErrUnknownTopicOrPart:       true,
		ck.ErrUnknownTopic:             true,
		ck.ErrTopicAuthorizationFailed: true,
		ck.ErrQueueFull:                false,
		ck.ErrMsgTimedOut:              false,
		ck.ErrTransport:                false,
		ck.ErrAllBrokersDown:           false,
		ck.ErrNotEnoughReplicas:        false,
		ck.ErrRequestTimedOut:          false,
	} {
		require.Equal(t, want, permanent(ck.NewError(code, "x", false)), "%v", code)
	}
	require.False(t, permanent(context.DeadlineExceeded))
}
