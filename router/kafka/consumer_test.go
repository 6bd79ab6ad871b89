package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
	"github.com/shovel-metrics/shovel/router/memory"
	"github.com/shovel-metrics/shovel/router/metric"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t *testing.T }

func (w *tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func produceNumbered(t *testing.T, b *kafkatest.Broker, topic string, partitions int32, n int) {
	recs := make([]kafkatest.Record, n)
	for i := range recs {
		recs[i] = kafkatest.Record{Topic: topic, Partition: int32(i) % partitions, Value: []byte(strconv.Itoa(i))}
	}
	b.Produce(t, recs...)
}

// run consumes until stop says so (or 30 s pass), then closes the consumer.
func run(t *testing.T, cfg Config, h Handler, stop func() bool) {
	t.Helper()
	c, err := New(cfg, testLogger(t))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, h) }()
	require.Eventually(t, stop, 30*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-errc)
	require.NoError(t, c.Close())
}

func TestConsumerDeliversInPartitionOrderAndCommitsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kfake broker")
	}
	b := kafkatest.Start(t, 3, "kpis")
	produceNumbered(t, b, "kpis", 3, 300)

	var mu sync.Mutex
	seen := map[int32][]int64{}
	count := atomic.Int32{}
	cfg := Config{Brokers: b.Addr, Topics: []string{"kpis"}, Group: "g1", Start: "earliest"}
	run(t, cfg, func(ctx context.Context, m *metric.Message, done func()) error {
		mu.Lock()
		seen[m.Partition] = append(seen[m.Partition], m.Offset)
		mu.Unlock()
		done()
		count.Add(1)
		return nil
	}, func() bool { return count.Load() == 300 })

	for p := int32(0); p < 3; p++ {
		require.Len(t, seen[p], 100, "partition %d", p)
		for i, off := range seen[p] {
			require.EqualValues(t, i, off, "partition %d in order", p)
		}
	}
	require.Equal(t, map[int32]int64{0: 100, 1: 100, 2: 100}, b.Committed(t, "g1", "kpis"))
}

func TestConsumerCommitsOnlyDeliveredPrefix(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kfake broker")
	}
	b := kafkatest.Start(t, 1, "kpis")
	produceNumbered(t, b, "kpis", 1, 20)

	// Acknowledge everything but offset 10: the commit must stop there.
	count := atomic.Int32{}
	cfg := Config{Brokers: b.Addr, Topics: []string{"kpis"}, Group: "g2", Start: "earliest"}
	run(t, cfg, func(ctx context.Context, m *metric.Message, done func()) error {
		if m.Offset != 10 {
			done()
		}
		count.Add(1)
		return nil
	}, func() bool { return count.Load() == 20 })
	require.Equal(t, map[int32]int64{0: 10}, b.Committed(t, "g2", "kpis"))

	// The same group starts again at the first unacknowledged message.
	var first atomic.Int64
	first.Store(-1)
	count.Store(0)
	run(t, cfg, func(ctx context.Context, m *metric.Message, done func()) error {
		first.CompareAndSwap(-1, m.Offset)
		done()
		count.Add(1)
		return nil
	}, func() bool { return count.Load() == 10 })
	require.EqualValues(t, 10, first.Load())
	require.Equal(t, map[int32]int64{0: 20}, b.Committed(t, "g2", "kpis"))
}

// TestConsumerPausesOnlyTheBlockedPartition: a handler blocked on one
// partition (an output that cannot deliver) holds up no other partition;
// the blocked one is paused once it holds more than its share of the
// budget, and nothing is lost or skipped when it goes on.
func TestConsumerPausesOnlyTheBlockedPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kfake broker")
	}
	b := kafkatest.Start(t, 2, "kpis")
	// A budget whose per-partition share (a quarter of it, shared by two
	// partitions: 8 KiB) is some 40 of these messages: partition 0 passes
	// it long before its end.
	budget := memory.New(64 << 10)
	const n = 2000
	produceNumbered(t, b, "kpis", 2, n)

	gate := make(chan struct{})
	count := [2]atomic.Int32{}
	cfg := Config{Brokers: b.Addr, Topics: []string{"kpis"}, Group: "g3", Start: "earliest", Budget: budget}
	c, err := New(cfg, testLogger(t))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- c.Run(ctx, func(ctx context.Context, m *metric.Message, done func()) error {
			if m.Offset == 5 && m.Partition == 0 {
				select { // an output that cannot deliver
				case <-gate:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			done()
			count[m.Partition].Add(1)
			return nil
		})
	}()
	require.Eventually(t, func() bool { return count[1].Load() == n/2 }, 30*time.Second, 5*time.Millisecond,
		"partition 1 is not held up by partition 0")
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		p := c.parts[key("kpis", 0)]
		return p != nil && p.paused && !c.paused
	}, 30*time.Second, 5*time.Millisecond, "partition 0, and only it, should be paused while its handler is blocked")
	require.EqualValues(t, 5, count[0].Load())
	require.Less(t, budget.Peak(), 2*budget.Limit(), "peak %d", budget.Peak())
	t.Logf("while blocked: budget peak %d of %d bytes", budget.Peak(), budget.Limit())
	// The blocked consumer keeps serving the group: no message is lost or skipped.
	time.Sleep(200 * time.Millisecond)
	close(gate)
	require.Eventually(t, func() bool { return count[0].Load() == n/2 }, 30*time.Second, 5*time.Millisecond,
		fmt.Sprintf("delivered %d of %d", count[0].Load(), n/2))
	cancel()
	require.NoError(t, <-errc)
	require.NoError(t, c.Close())
	require.Zero(t, budget.Used(), "every charge returned")
	committed := b.Committed(t, "g3", "kpis")
	require.EqualValues(t, n, committed[0]+committed[1])
}

// lagSeries returns the partitions reg has a shovel_kafka_consumer_lag series for.
func lagSeries(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var parts []string
	for _, mf := range mfs {
		if mf.GetName() != "shovel_kafka_consumer_lag" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" {
					parts = append(parts, l.GetValue())
				}
			}
		}
	}
	sort.Strings(parts)
	return parts
}

// TestConsumerLagSeriesFollowAssignment: when a second member takes
// partitions away, the first stops exporting their lag instead of
// reporting its last value forever.
func TestConsumerLagSeriesFollowAssignment(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kfake broker")
	}
	b := kafkatest.Start(t, 4, "kpis")
	produceNumbered(t, b, "kpis", 4, 40)
	h := func(_ context.Context, _ *metric.Message, done func()) error { done(); return nil }
	start := func(reg *prometheus.Registry) *Consumer {
		c, err := New(Config{Brokers: b.Addr, Topics: []string{"kpis"}, Group: "lag", Start: "earliest", Registerer: reg,
			Settings: map[string]any{"statistics.interval.ms": 100, "partition.assignment.strategy": "range"}}, testLogger(t))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- c.Run(ctx, h) }()
		t.Cleanup(func() {
			cancel()
			require.NoError(t, <-errc)
			require.NoError(t, c.Close())
		})
		return c
	}
	first := prometheus.NewRegistry()
	start(first)
	require.Eventually(t, func() bool { return len(lagSeries(t, first)) == 4 }, 30*time.Second, 20*time.Millisecond,
		"the only member reports all four partitions")

	second := prometheus.NewRegistry()
	start(second)
	require.Eventually(t, func() bool {
		a, b := lagSeries(t, first), lagSeries(t, second)
		return len(a) == 2 && len(b) == 2
	}, 30*time.Second, 20*time.Millisecond, "each member reports only its own partitions")
	require.NotEqual(t, lagSeries(t, first), lagSeries(t, second))
	// And it stays so: no late statistics bring a revoked series back.
	time.Sleep(500 * time.Millisecond)
	require.Len(t, lagSeries(t, first), 2)
}
