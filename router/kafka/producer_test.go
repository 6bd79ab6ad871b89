package kafka

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

// consumeAll reads n records of topic from the start with franz-go, a
// client independent of the one under test.
func consumeAll(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "got %d of %d records", len(out), n)
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func TestProducerSendWaitsForTheBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kfake broker")
	}
	b := kafkatest.Start(t, 1, "kpis.out")
	p, err := NewProducer(ProducerConfig{Brokers: b.Addr}, testLogger(t))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 3 {
		require.NoError(t, p.Send(ctx, "kpis.out", []byte("k"), fmt.Appendf(nil, "v%d", i)))
	}
	require.NoError(t, p.Close())

	recs := consumeAll(t, b.Addr, "kpis.out", 3)
	require.Len(t, recs, 3)
	for i, r := range recs {
		require.Equal(t, "k", string(r.Key))
		require.Equal(t, fmt.Sprintf("v%d", i), string(r.Value), "in order")
	}
}

func TestProducerSendFailsWithoutABroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	ln.Close()
	p, err := NewProducer(ProducerConfig{Brokers: dead}, testLogger(t))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = p.Send(ctx, "kpis.out", nil, []byte("x"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, dead)
	require.ErrorContains(t, p.Close(), "1 messages to "+dead+" not delivered")
}

func TestProducerRejectsManagedSettings(t *testing.T) {
	_, err := NewProducer(ProducerConfig{Brokers: "x:1", Settings: map[string]any{"bootstrap.servers": "y:2"}}, nil)
	require.ErrorContains(t, err, "bootstrap.servers: managed by shovel")
}
