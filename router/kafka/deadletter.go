package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/shovel-metrics/shovel/router/metric"
)

// Dead-letter headers: why a message was rejected, where it came from, when.
const (
	HeaderReason    = "shovel.reason"
	HeaderDetail    = "shovel.detail"
	HeaderTopic     = "shovel.source.topic"
	HeaderPartition = "shovel.source.partition"
	HeaderOffset    = "shovel.source.offset"
	HeaderTime      = "shovel.rejected.at"
)

// DeadLetterConfig says where rejected messages go.
type DeadLetterConfig struct {
	Brokers string
	Topic   string
	// Settings are librdkafka producer properties. Security settings
	// (security.*, sasl.*, ssl.*) of the consumer apply unless overridden
	// here, so the dead-letter topic lives on the same cluster, reached the
	// same way.
	Settings map[string]any
}

// InheritSecurity returns the consumer settings the dead-letter producer shares.
func InheritSecurity(consumer map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range consumer {
		if strings.HasPrefix(k, "security.") || strings.HasPrefix(k, "sasl.") || strings.HasPrefix(k, "ssl.") {
			out[k] = v
		}
	}
	return out
}

// DeadLetterWriter produces rejected messages, unchanged, to a topic with
// headers that say why. The source message is acknowledged only when the
// broker has the dead letter; a failed delivery is produced again, so the
// source offset is never committed without it.
type DeadLetterWriter struct {
	p     *ck.Producer
	topic string
	log   *slog.Logger
	now   func() time.Time

	wg     sync.WaitGroup
	closed chan struct{}
}

// NewDeadLetter creates the producer. It does no I/O until the first Send.
func NewDeadLetter(cfg DeadLetterConfig, log *slog.Logger) (*DeadLetterWriter, error) {
	cm := ck.ConfigMap{
		"acks":                   "all",
		"linger.ms":              20,
		"go.logs.channel.enable": false,
	}
	for k, v := range cfg.Settings {
		cm[k] = v
	}
	cm["bootstrap.servers"] = cfg.Brokers
	p, err := ck.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("dead letter: create producer for %s: %w", cfg.Brokers, err)
	}
	d := &DeadLetterWriter{p: p, topic: cfg.Topic, log: log, now: time.Now, closed: make(chan struct{})}
	d.wg.Add(1)
	go d.reports()
	return d, nil
}

// pendingLetter travels with a produced message as its opaque.
type pendingLetter struct {
	msg  *ck.Message
	done func()
}

// Send produces msg to the dead-letter topic. It blocks while librdkafka's
// queue is full, and fails only when ctx ends first.
func (d *DeadLetterWriter) Send(ctx context.Context, msg *metric.Message, reason, detail string, done func()) error {
	if len(detail) > 256 {
		detail = detail[:256]
	}
	headers := make([]ck.Header, 0, len(msg.Headers)+6)
	for _, h := range msg.Headers {
		headers = append(headers, ck.Header{Key: h.Key, Value: h.Value})
	}
	headers = append(headers,
		ck.Header{Key: HeaderReason, Value: []byte(reason)},
		ck.Header{Key: HeaderDetail, Value: []byte(detail)},
		ck.Header{Key: HeaderTopic, Value: []byte(msg.Topic)},
		ck.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(msg.Partition)))},
		ck.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		ck.Header{Key: HeaderTime, Value: []byte(d.now().UTC().Format(time.RFC3339Nano))},
	)
	topic := d.topic
	km := &ck.Message{
		TopicPartition: ck.TopicPartition{Topic: &topic, Partition: ck.PartitionAny},
		Key:            msg.Key,
		Value:          msg.Value,
		Headers:        headers,
	}
	km.Opaque = &pendingLetter{msg: km, done: done}
	return d.produce(ctx, km)
}

func (d *DeadLetterWriter) produce(ctx context.Context, km *ck.Message) error {
	for {
		err := d.p.Produce(km, nil)
		var kerr ck.Error
		if err == nil {
			return nil
		}
		if !errors.As(err, &kerr) || kerr.Code() != ck.ErrQueueFull {
			// Not retriable locally (a bad topic name, say): log and retry
			// slowly; the partition waits, as it does for a dead output.
			d.log.Warn("dead letter: produce failed; retrying", "topic", d.topic, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.closed:
			return errors.New("dead letter: closed")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// reports acknowledges delivered dead letters and produces failed ones again.
func (d *DeadLetterWriter) reports() {
	defer d.wg.Done()
	for ev := range d.p.Events() {
		m, ok := ev.(*ck.Message)
		if !ok {
			if e, isErr := ev.(ck.Error); isErr {
				d.log.Warn("dead letter: kafka error", "err", e)
			}
			continue
		}
		pl, _ := m.Opaque.(*pendingLetter)
		if pl == nil {
			continue
		}
		if m.TopicPartition.Error == nil {
			pl.done()
			continue
		}
		d.log.Warn("dead letter: delivery failed; producing again", "topic", d.topic, "err", m.TopicPartition.Error)
		go func() {
			select {
			case <-d.closed:
			case <-time.After(time.Second):
				pl.msg.TopicPartition.Partition = ck.PartitionAny
				_ = d.produce(context.Background(), pl.msg)
			}
		}()
	}
}

// Close waits up to timeout for outstanding dead letters, then releases the
// producer. Letters not delivered by then leave their source messages
// uncommitted.
func (d *DeadLetterWriter) Close(timeout time.Duration) error {
	remaining := d.p.Flush(int(timeout / time.Millisecond))
	close(d.closed)
	d.p.Close()
	d.wg.Wait()
	if remaining > 0 {
		return fmt.Errorf("dead letter: %d messages not delivered before shutdown", remaining)
	}
	return nil
}
