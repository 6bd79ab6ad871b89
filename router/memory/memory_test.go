package memory

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

func TestMessageCostCountsHeaders(t *testing.T) {
	bare := MessageCost(&metric.Message{Value: make([]byte, 1000)})
	require.GreaterOrEqual(t, bare, int64(1000))
	hs := make([]metric.Header, 50000)
	for i := range hs {
		hs[i] = metric.Header{Key: "k", Value: []byte{1}}
	}
	withHeaders := MessageCost(&metric.Message{Value: make([]byte, 1000), Headers: hs})
	// 50 000 one-byte headers take far more than their 100 000 bytes.
	require.GreaterOrEqual(t, withHeaders-bare, int64(50000*(2+2*40)))
}

func TestBudgetChargesAndGauges(t *testing.T) {
	b := New(0)
	require.EqualValues(t, DefaultLimit, b.Limit())
	reg := prometheus.NewRegistry()
	require.NoError(t, b.Register(reg))
	b.Charge(Messages, 100)
	b.Charge(Samples, 50)
	require.EqualValues(t, 150, b.Used())
	b.NotePeak()
	b.Release(Messages, 100)
	require.EqualValues(t, 50, b.Used())
	require.EqualValues(t, 150, b.Peak())
	require.False(t, b.Over())
	b.Charge(DeadLetters, DefaultLimit)
	require.True(t, b.Over())
	fams, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]int{}
	for _, f := range fams {
		got[f.GetName()] = len(f.GetMetric())
	}
	require.Equal(t, map[string]int{"shovel_memory_budget_bytes": 1, "shovel_memory_used_bytes": 3, "shovel_memory_used_peak_bytes": 1}, got)
}

// TestGateBlocksAtItsCap: a queue at its cap makes the next Acquire wait
// until a Release; an empty queue takes anything.
func TestGateBlocksAtItsCap(t *testing.T) {
	b := New(0)
	g := b.Gate("carbon")
	require.Same(t, g, b.Gate("carbon"), "one gate per name")
	g.SetLimit(100)
	ctx := context.Background()
	require.NoError(t, g.Acquire(ctx, nil, 1000), "an empty queue takes an outsized delivery")
	g.Release(1000)
	require.NoError(t, g.Acquire(ctx, nil, 60))
	require.NoError(t, g.Acquire(ctx, nil, 60), "under the cap before: taken")
	got := make(chan error, 1)
	go func() { got <- g.Acquire(ctx, nil, 10) }()
	select {
	case err := <-got:
		t.Fatalf("Acquire over the cap returned %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.Release(60)
	require.NoError(t, <-got)
	require.EqualValues(t, 70, g.Used())
	require.NoError(t, g.Acquire(ctx, nil, 30))

	abort := make(chan struct{})
	go func() { got <- g.Acquire(ctx, abort, 100) }()
	g2 := make(chan error, 1)
	cctx, cancel := context.WithCancel(ctx)
	go func() { g2 <- g.Acquire(cctx, nil, 100) }()
	time.Sleep(20 * time.Millisecond)
	close(abort)
	cancel()
	require.ErrorIs(t, <-got, ErrAborted)
	require.ErrorIs(t, <-g2, context.Canceled)
	require.EqualValues(t, 100, g.Used(), "a caller that gave up holds nothing")

	untrack := g.Track(func() int { return 3 })
	g.Track(func() int { return 4 })
	require.Equal(t, 7, g.Depth())
	untrack()
	require.Equal(t, 4, g.Depth())
}
