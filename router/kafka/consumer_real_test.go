package kafka

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/kafka/kafkabroker"
	"github.com/shovel-metrics/shovel/router/metric"
)

// TestRealKafkaRebalanceProtocols runs two consumers of one group on Apache
// Kafka under each way a group can rebalance — classic eager (the
// default), classic cooperative-sticky and KIP-848's consumer protocol, the
// last two incremental — while messages arrive: a second member joins, then
// the first leaves. Every message must be handled, the remaining member
// must end up holding every partition, and the group must end with every
// offset committed: revocations commit what was delivered and incremental
// assignments are applied as increments (order within a partition is
// TestConsumerDeliversInPartitionOrderAndCommitsAcknowledged's).
func TestRealKafkaRebalanceProtocols(t *testing.T) {
	c := kafkabroker.Start(t, kafkabroker.Options{})
	for _, tt := range []struct {
		name     string
		settings map[string]any
	}{
		{"classic eager", map[string]any{"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}},
		{"classic cooperative-sticky", map[string]any{"session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
			"partition.assignment.strategy": "cooperative-sticky"}},
		{"consumer (KIP-848)", map[string]any{"group.protocol": "consumer"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const parts, perPart = 4, 300
			topic := "rebalance-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			group := topic
			c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: parts})

			var mu sync.Mutex
			seen := map[int64]int{} // partition<<32|offset: times handled
			handler := func(ctx context.Context, m *metric.Message, done func()) error {
				mu.Lock()
				seen[int64(m.Partition)<<32|m.Offset]++
				mu.Unlock()
				done()
				return nil
			}
			distinct := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(seen)
			}
			produce := func(from, to int) {
				var recs []kafkabroker.Record
				for i := from; i < to; i++ {
					recs = append(recs, kafkabroker.Record{Topic: topic, Partition: int32(i % parts), Value: []byte(strconv.Itoa(i))})
				}
				c.Produce(t, recs...)
			}
			start := func() (*Consumer, context.CancelFunc, chan error) {
				cons, err := New(Config{Brokers: c.Addr(), Topics: []string{topic}, Group: group, Start: "earliest",
					Settings: tt.settings, InstanceID: InstanceNone}, testLogger(t))
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(context.Background())
				errc := make(chan error, 1)
				go func() { errc <- cons.Run(ctx, handler) }()
				return cons, cancel, errc
			}
			stop := func(cons *Consumer, cancel context.CancelFunc, errc chan error) {
				cancel()
				require.NoError(t, <-errc)
				require.NoError(t, cons.Close())
			}

			const total = parts * perPart
			produce(0, total/3)
			a, cancelA, errA := start()
			require.Eventually(t, func() bool { return distinct() >= total/3 }, 60*time.Second, 10*time.Millisecond)
			b, cancelB, errB := start()
			produce(total/3, 2*total/3)
			require.Eventually(t, func() bool { return distinct() >= 2*total/3 }, 60*time.Second, 10*time.Millisecond)
			// Let b's assignment settle before a leaves.
			require.Eventually(t, func() bool {
				b.mu.Lock()
				defer b.mu.Unlock()
				return len(b.assigned) > 0
			}, 60*time.Second, 10*time.Millisecond, "the second member gets partitions")
			stop(a, cancelA, errA)
			produce(2*total/3, total)
			require.Eventually(t, func() bool { return distinct() == total }, 60*time.Second, 10*time.Millisecond,
				"handled %d of %d", distinct(), total)
			require.Eventually(t, func() bool {
				b.mu.Lock()
				defer b.mu.Unlock()
				return len(b.assigned) == parts
			}, 60*time.Second, 10*time.Millisecond, "the remaining member holds every partition")
			stop(b, cancelB, errB)
			want := map[int32]int64{}
			for p := int32(0); p < parts; p++ {
				want[p] = perPart
			}
			require.Equal(t, want, c.Committed(t, group, topic), "every offset committed")
			dups := 0
			for _, n := range seen {
				dups += n - 1
			}
			t.Logf("%s: %d messages, %d handled twice", tt.name, total, dups)
		})
	}
}
