package router

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/memory"
	"github.com/shovel-metrics/shovel/router/metric"
)

// TestBudgetChargesSamplesUntilDelivered: decoded samples are charged from
// the decode until every output took them, and an output's queue stops
// taking deliveries at its byte cap, whatever the number of messages.
func TestBudgetChargesSamplesUntilDelivered(t *testing.T) {
	budget := memory.New(memory.MinLimit)
	dead, live := &memOutput{}, &memOutput{}
	dead.failing.Store(true)
	const queueBytes = 64 << 10
	r, err := New(Config{
		Routes: []Route{
			{Name: "a", Match: mustMatchT(t, "", "a", nil), Decoder: lineDecoder{}, DecoderName: "line", Outputs: []string{"dead"}},
			{Name: "b", Match: mustMatchT(t, "", "b", nil), Decoder: lineDecoder{}, DecoderName: "line", Outputs: []string{"live"}},
		},
		Outputs: []OutputConfig{
			{Name: "dead", Output: dead, BatchSize: 10, FlushInterval: time.Millisecond, QueueBytes: queueBytes},
			{Name: "live", Output: live, BatchSize: 10, FlushInterval: time.Millisecond, QueueBytes: queueBytes},
		},
		Budget: budget,
	})
	require.NoError(t, err)
	r.Start(context.Background())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = r.Close(ctx)
	}()

	value := strings.Repeat("a.long.enough.metric.path.to.weigh.something 1 1700000000\n", 10)
	var acked atomic.Int64
	sent := 0
	// Topic a's output is dead: its queue fills to its cap, then Handle waits.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := r.Handle(ctx, &metric.Message{Topic: "a", Value: []byte(value)}, func() { acked.Add(1) })
		cancel()
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			break
		}
		sent++
		require.Less(t, sent, 10000, "the dead output's queue never filled")
	}
	gate := budget.Gate("dead")
	perMsg := int64(10 * (len("a.long.enough.metric.path.to.weigh.something") + 2*metric.SampleOverhead))
	require.LessOrEqual(t, gate.Used(), int64(queueBytes)+perMsg, "the queue holds its cap plus at most one delivery")
	require.GreaterOrEqual(t, gate.Used(), int64(queueBytes)-perMsg)
	require.Equal(t, gate.Used(), budget.UsedBy(memory.Samples), "the budget holds what the queue holds; the abandoned message holds nothing")
	t.Logf("dead output: %d messages queued, %d bytes (cap %d)", sent, gate.Used(), queueBytes)

	// Topic b is unaffected, and what it delivers is released.
	before := budget.UsedBy(memory.Samples)
	for i := range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		require.NoError(t, r.Handle(ctx, &metric.Message{Topic: "b", Value: []byte(fmt.Sprintf("b.x%d 1 1700000000", i))}, func() { acked.Add(1) }))
		cancel()
	}
	require.Eventually(t, func() bool { return acked.Load() == 50 }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return budget.UsedBy(memory.Samples) == before }, 5*time.Second, time.Millisecond)

	// The dead output comes back: everything is delivered and released.
	dead.failing.Store(false)
	require.Eventually(t, func() bool { return acked.Load() == int64(50+sent) }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return budget.Used() == 0 && gate.Used() == 0 }, 5*time.Second, time.Millisecond)
	require.Len(t, dead.samples(), 10*sent)
}

func mustMatchT(t *testing.T, typ, topic string, headers map[string]string) Match {
	m, err := NewMatch(typ, topic, headers)
	require.NoError(t, err)
	return m
}
