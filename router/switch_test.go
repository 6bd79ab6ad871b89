package router

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

func TestSwitchLosesAndDuplicatesNothing(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	stats, err := NewStats(nil)
	require.NoError(t, err)
	build := func(out *memOutput) *Router {
		r, err := New(Config{
			Routes:  []Route{{Match: all, Decoder: lineDecoder{}, Outputs: []string{"carbon"}}},
			Outputs: []OutputConfig{{Name: "carbon", Output: out, BatchSize: 1, FlushInterval: time.Millisecond, QueueSize: 1}},
			Stats:   stats,
		})
		require.NoError(t, err)
		r.Start(context.Background())
		return r
	}
	oldOut, newOut := &memOutput{}, &memOutput{}
	oldOut.failing.Store(true) // the old config points at a Carbon that is down
	sw := NewSwitch(build(oldOut))

	var mu sync.Mutex
	acks := map[string]int{}
	handle := func(v string) error {
		return sw.Handle(context.Background(), &metric.Message{Value: []byte(v)}, func() {
			mu.Lock()
			acks[v]++
			mu.Unlock()
		})
	}
	require.NoError(t, handle("m.1 1 1")) // taken by the old sink, which retries it
	require.Eventually(t, func() bool { return len(sw.Current().sinks["carbon"].in) == 0 }, 5*time.Second, time.Millisecond)
	require.NoError(t, handle("m.2 2 2")) // fills the old queue
	blocked := make(chan error, 1)
	go func() { blocked <- handle("m.3 3 3") }() // waits for the old queue
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-blocked:
		t.Fatalf("m.3 should wait for the full queue, returned %v", err)
	default:
	}

	sw.Swap(build(newOut)) // the reload
	require.NoError(t, <-blocked, "the waiting message moves to the new generation")
	require.NoError(t, handle("m.4 4 4"))
	oldOut.failing.Store(false) // the old Carbon comes back: the old generation drains
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acks) == 4
	}, 5*time.Second, time.Millisecond)
	require.NoError(t, sw.Close(context.Background()))

	require.Equal(t, map[string]int{"m.1 1 1": 1, "m.2 2 2": 1, "m.3 3 3": 1, "m.4 4 4": 1}, acks, "each message acknowledged exactly once")
	require.Equal(t, []metric.Sample{{Path: "m.1", Value: 1, Time: 1}, {Path: "m.2", Value: 2, Time: 2}}, oldOut.samples())
	require.Equal(t, []metric.Sample{{Path: "m.3", Value: 3, Time: 3}, {Path: "m.4", Value: 4, Time: 4}}, newOut.samples())
	require.EqualValues(t, 4, stats.Snapshot().Messages, "counters span generations")
}
