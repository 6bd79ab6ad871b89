package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/shovel-metrics/shovel/router/metric"
)

// ProducerConfig says where to publish.
type ProducerConfig struct {
	// Brokers is librdkafka's bootstrap.servers: a comma-separated host:port list.
	Brokers string
	// Settings are extra librdkafka producer properties; they override
	// shovel's defaults. bootstrap.servers is managed.
	Settings map[string]any
}

// Producer publishes messages with confluent-kafka-go. It is safe for
// concurrent use and implements router/kpi's Sender.
type Producer struct {
	p        *ck.Producer
	brokers  string
	log      *slog.Logger
	logsDone chan struct{}
	evDone   chan struct{}
}

// closeFlush bounds how long Close waits for messages still queued.
const closeFlush = 5 * time.Second

// NewProducer creates a producer. It does not wait for the brokers:
// librdkafka connects in the background and Send waits for each delivery.
func NewProducer(cfg ProducerConfig, log *slog.Logger) (*Producer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, ok := cfg.Settings["bootstrap.servers"]; ok {
		return nil, errors.New("kafka producer: bootstrap.servers: managed by shovel (set the brokers instead)")
	}
	cm := ck.ConfigMap{
		"go.logs.channel.enable": true,
		// KPIs are small and periodic: send them at once, and give up on
		// one after 30 s, when the next measurements have long replaced it.
		"linger.ms":          5,
		"message.timeout.ms": 30000,
		"acks":               "all",
	}
	for k, v := range cfg.Settings {
		cm[k] = v
	}
	cm["bootstrap.servers"] = cfg.Brokers
	p, err := ck.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: create for %s: %w", cfg.Brokers, err)
	}
	k := &Producer{p: p, brokers: cfg.Brokers, log: log, logsDone: make(chan struct{}), evDone: make(chan struct{})}
	go forwardLogs(k.p.Logs(), k.log, k.logsDone)
	go k.drainEvents()
	return k, nil
}

// drainEvents reads the producer's event channel, where librdkafka reports
// client-level errors (every delivery report goes to its Send instead).
// Unread, the channel would fill and stall the producer.
func (k *Producer) drainEvents() {
	defer close(k.evDone)
	for ev := range k.p.Events() {
		if e, ok := ev.(ck.Error); ok {
			if e.IsFatal() {
				k.log.Error("kafka producer fatal error", "err", e)
			} else {
				k.log.Debug("kafka producer error", "code", e.Code().String(), "err", e)
			}
		}
	}
}

// Send publishes value with key to topic and waits until the broker has
// acknowledged it, or ctx ends. When ctx ends first the message may still
// be delivered later: librdkafka keeps it queued for message.timeout.ms.
func (k *Producer) Send(ctx context.Context, topic string, key, value []byte) error {
	_, _, err := k.Produce(ctx, &metric.Message{Topic: topic, Partition: ck.PartitionAny, Key: key, Value: value})
	return err
}

// Produce publishes msg — its topic, key, value and headers, to its
// partition or, when that is negative, to the one librdkafka picks — and
// waits as Send does. It returns the partition and offset the broker gave
// the record.
func (k *Producer) Produce(ctx context.Context, msg *metric.Message) (int32, int64, error) {
	topic := msg.Topic
	report := make(chan ck.Event, 1) // buffered: librdkafka must never block on it
	km := &ck.Message{
		TopicPartition: ck.TopicPartition{Topic: &topic, Partition: msg.Partition},
		Key:            msg.Key,
		Value:          msg.Value,
	}
	if msg.Partition < 0 {
		km.TopicPartition.Partition = ck.PartitionAny
	}
	for _, h := range msg.Headers {
		km.Headers = append(km.Headers, ck.Header{Key: h.Key, Value: h.Value})
	}
	if err := k.p.Produce(km, report); err != nil {
		return 0, 0, fmt.Errorf("kafka producer: %s to %s: %w", topic, k.brokers, err)
	}
	select {
	case ev := <-report:
		m, ok := ev.(*ck.Message)
		if !ok {
			return 0, 0, fmt.Errorf("kafka producer: %s to %s: unexpected delivery report %v", topic, k.brokers, ev)
		}
		if m.TopicPartition.Error != nil {
			return 0, 0, fmt.Errorf("kafka producer: %s to %s: %w", topic, k.brokers, m.TopicPartition.Error)
		}
		return m.TopicPartition.Partition, int64(m.TopicPartition.Offset), nil
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("kafka producer: %s to %s: no acknowledgement: %w", topic, k.brokers, ctx.Err())
	}
}

// Close waits up to 5 s for queued messages to be delivered, then releases
// librdkafka. It reports how many were left undelivered.
func (k *Producer) Close() error {
	left := k.p.Flush(int(closeFlush / time.Millisecond))
	k.p.Close()
	<-k.logsDone
	<-k.evDone
	if left > 0 {
		return fmt.Errorf("kafka producer: %d messages to %s not delivered at close", left, k.brokers)
	}
	return nil
}
