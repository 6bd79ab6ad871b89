// Package kafkatest runs a real Kafka-protocol broker for tests: franz-go's
// kfake, in-process, on a free loopback port. confluent-kafka-go (librdkafka)
// talks to it over TCP exactly as it talks to Apache Kafka, for the part of
// the protocol they share.
package kafkatest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Broker is a running kfake cluster of one broker.
type Broker struct {
	Addr    string
	cluster *kfake.Cluster
	client  *kgo.Client
}

// Options adjust StartWith.
type Options struct {
	// MaxRecordBytes raises the broker's and the producer's record size
	// limit (for tests of huge messages); 0 keeps the defaults.
	MaxRecordBytes int
	// Listen replaces kfake's net.Listen. kfake advertises its listener's
	// Addr() in metadata, so a listener that reports another address (a
	// proxy's) routes every client connection through that address.
	Listen func(network, address string) (net.Listener, error)
}

// Start runs a broker with the given topics, each with partitions
// partitions, and stops it when the test ends.
func Start(t testing.TB, partitions int32, topics ...string) *Broker {
	return StartWith(t, Options{}, partitions, topics...)
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options, partitions int32, topics ...string) *Broker {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...), kfake.AllowAutoTopicCreation()}
	clientOpts := []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(100000),
		kgo.ProducerBatchMaxBytes(16 << 20)}
	if o.MaxRecordBytes > 0 {
		opts = append(opts, kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(o.MaxRecordBytes)}))
		clientOpts = append(clientOpts, kgo.ProducerBatchMaxBytes(int32(o.MaxRecordBytes)),
			kgo.BrokerMaxWriteBytes(int32(2*o.MaxRecordBytes)))
	}
	if o.Listen != nil {
		opts = append(opts, kfake.ListenFn(o.Listen))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kafkatest: start kfake: %v", err)
	}
	b := &Broker{Addr: c.ListenAddrs()[0], cluster: c}
	b.client, err = kgo.NewClient(append(clientOpts, kgo.SeedBrokers(b.Addr))...)
	if err != nil {
		c.Close()
		t.Fatalf("kafkatest: client: %v", err)
	}
	t.Cleanup(func() {
		b.client.Close()
		c.Close()
	})
	return b
}

// Record is one message to produce.
type Record struct {
	Topic     string
	Partition int32
	Value     []byte
	Headers   map[string]string
}

// Produce writes the records and waits until the broker has them all,
// failing the test if it cannot.
func (b *Broker) Produce(t testing.TB, recs ...Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.ProduceContext(ctx, recs...); err != nil {
		t.Fatalf("kafkatest: produce: %v", err)
	}
}

// ProduceContext is Produce returning the error instead of failing the
// test, for producers running in a goroutine.
func (b *Broker) ProduceContext(ctx context.Context, recs ...Record) error {
	krs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		kr := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Value: r.Value}
		for k, v := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		krs[i] = kr
	}
	return b.client.ProduceSync(ctx, krs...).FirstErr()
}

// Committed returns the group's committed offset for each partition of
// topic that has one.
func (b *Broker) Committed(t testing.TB, group, topic string) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < 64; p++ {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, b.client)
	if err != nil {
		t.Fatalf("kafkatest: offset fetch: %v", err)
	}
	out := map[int32]int64{}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode == 0 && p.Offset >= 0 {
				out[p.Partition] = p.Offset
			}
		}
	}
	return out
}

// CommittedTotal is the sum of the group's committed offsets on topic:
// with every partition starting at 0, the number of messages committed.
func (b *Broker) CommittedTotal(t testing.TB, group, topic string) int64 {
	t.Helper()
	var n int64
	for _, off := range b.Committed(t, group, topic) {
		n += off
	}
	return n
}

// Consume reads the first n records of topic (all partitions, from the
// start), failing the test if they don't arrive within 30 s.
func (b *Broker) Consume(t testing.TB, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("kafkatest: consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kafkatest: got %d of %d records from %s", len(out), n, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// SetTopicConfig sets one of topic's configs (as kafka-configs.sh
// --alter does), for example max.message.bytes.
func (b *Broker) SetTopicConfig(t testing.TB, topic, name, value string) {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType = kmsg.ConfigResourceTypeTopic
	r.ResourceName = topic
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Value, c.Op = name, &value, kmsg.IncrementalAlterConfigOpSet
	r.Configs = append(r.Configs, c)
	req.Resources = append(req.Resources, r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, b.client)
	if err != nil {
		t.Fatalf("kafkatest: alter configs: %v", err)
	}
	for _, r := range resp.Resources {
		if r.ErrorCode != 0 {
			t.Fatalf("kafkatest: alter %s of %s: error %d %v", name, topic, r.ErrorCode, r.ErrorMessage)
		}
	}
}

// Cluster is the kfake cluster, for tests that inject faults with its
// Control functions.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// String is the bootstrap address, for logs.
func (b *Broker) String() string { return fmt.Sprintf("kfake@%s", b.Addr) }
