package router

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/memory"
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

// countingHandler counts the log records with a given message.
type countingHandler struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countingHandler) WithGroup(string) slog.Handler            { return h }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs[r.Message]++
	return nil
}

func (h *countingHandler) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs[msg]
}

// TestSwitchCountsOnceAndKeepsTheLogLimiter: a message a reload aborts is
// handled again by the new generation and counted once (its samples, its
// rejections), and the new generation logs rejections under the same
// limiter as the old one, so a reload does not let a flood through again.
func TestSwitchCountsOnceAndKeepsTheLogLimiter(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	stats, err := NewStats(nil)
	require.NoError(t, err)
	logs := &countingHandler{msgs: map[string]int{}}
	build := func(out *memOutput) *Router {
		r, err := New(Config{
			Routes:  []Route{{Match: all, Decoder: lineDecoder{}, DecoderName: "lines", Outputs: []string{"carbon"}}},
			Outputs: []OutputConfig{{Name: "carbon", Output: out, BatchSize: 1, FlushInterval: time.Millisecond, QueueSize: 1}},
			Stats:   stats,
			Logger:  slog.New(logs),
		})
		require.NoError(t, err)
		r.Start(context.Background())
		return r
	}
	oldOut, newOut := &memOutput{}, &memOutput{}
	oldOut.failing.Store(true)
	sw := NewSwitch(build(oldOut))
	handle := func(v string) error {
		return sw.Handle(context.Background(), &metric.Message{Value: []byte(v)}, func() {})
	}

	require.NoError(t, handle("m.1 1 1\n!bad")) // logged: the first not_a_number
	require.Eventually(t, func() bool { return len(sw.Current().sinks["carbon"].in) == 0 }, 5*time.Second, time.Millisecond)
	require.NoError(t, handle("m.2 2 2")) // fills the old queue
	blocked := make(chan error, 1)
	go func() { blocked <- handle("m.3 3 3\n!bad") }() // decoded, counted..., then waits for the old queue
	require.Eventually(t, func() bool { return logs.count("sample dropped") == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)

	sw.Swap(build(newOut)) // the reload aborts m.3, which the new generation handles again
	require.NoError(t, <-blocked)
	require.NoError(t, handle("m.4 4 4\n!bad"))
	oldOut.failing.Store(false)
	require.Eventually(t, func() bool { return len(newOut.samples()) == 2 && len(oldOut.samples()) == 2 }, 5*time.Second, time.Millisecond)
	require.NoError(t, sw.Close(context.Background()))

	snap := stats.Snapshot()
	require.EqualValues(t, 4, snap.Messages)
	require.EqualValues(t, 4, snap.SamplesIn, "m.3's sample counted once, not once per generation")
	require.Equal(t, map[RejectKey]uint64{{"lines", metric.ReasonNotANumber, true}: 3}, snap.Rejects, "m.3's rejection counted once")
	require.Equal(t, 1, logs.count("sample dropped"), "within the limiter's interval, across the reload: one line")
}

// TestSwitchHandsQueuesOver: generations that share a memory budget hand
// what they hold for an output to the next generation's output of that
// name. A reload storm while the output is down keeps one queue and one
// retry loop, within one cap; a reload that points the output at a live
// Carbon delivers what the old generation held; every message is
// acknowledged exactly once.
func TestSwitchHandsQueuesOver(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	stats, err := NewStats(nil)
	require.NoError(t, err)
	budget := memory.New(memory.MinLimit)
	const queueBytes = 4 << 10
	build := func(out *memOutput) *Router {
		r, err := New(Config{
			Routes: []Route{{Match: all, Decoder: lineDecoder{}, Outputs: []string{"carbon"}}},
			Outputs: []OutputConfig{{Name: "carbon", Output: out, BatchSize: 10, FlushInterval: time.Millisecond,
				QueueBytes: queueBytes}},
			Stats: stats, Budget: budget,
		})
		require.NoError(t, err)
		r.Start(context.Background())
		return r
	}
	dead := &memOutput{}
	dead.failing.Store(true)
	sw := NewSwitch(build(dead))

	var mu sync.Mutex
	acks := map[string]int{}
	var wg sync.WaitGroup
	var returned atomic.Int64
	sent := 0
	handle := func(i int) {
		v := fmt.Sprintf("m.%d %d 1", i, i)
		sent++
		wg.Go(func() {
			defer returned.Add(1)
			err := sw.Handle(context.Background(), &metric.Message{Value: []byte(v)}, func() {
				mu.Lock()
				acks[v]++
				mu.Unlock()
			})
			require.NoError(t, err)
		})
	}
	// The router's goroutines: all but this test's Handle calls still waiting.
	routerGoroutines := func() int { return runtime.NumGoroutine() - (sent - int(returned.Load())) }
	gate := budget.Gate("carbon")
	goroutines := routerGoroutines()
	var outs []*memOutput
	for gen := range 60 {
		for i := range 10 {
			handle(gen*10 + i)
		}
		time.Sleep(2 * time.Millisecond)
		// Slow to fail, so that a generation may be retired before its
		// predecessor has handed over (its write still in progress).
		out := &memOutput{delay: time.Duration(gen%3) * 5 * time.Millisecond}
		out.failing.Store(true)
		outs = append(outs, out)
		sw.Swap(build(out))
		require.LessOrEqual(t, gate.Used(), int64(2*queueBytes), "one cap across generations")
	}
	time.Sleep(100 * time.Millisecond) // let the retired generations finish
	require.LessOrEqual(t, routerGoroutines(), goroutines+5, "retired generations keep no goroutines")
	require.LessOrEqual(t, gate.Used(), int64(2*queueBytes))
	// The budget holds the queue and what the waiting calls decoded.
	require.GreaterOrEqual(t, budget.UsedBy(memory.Samples), gate.Used())
	t.Logf("after 60 reloads: %d goroutines (%d before), queue %d bytes in %d deliveries (cap %d)",
		routerGoroutines(), goroutines, gate.Used(), gate.Depth(), queueBytes)

	// The last reload points at a live Carbon: everything held is delivered there.
	live := &memOutput{}
	sw.Swap(build(live))
	wg.Wait()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acks) == sent
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, sw.Close(context.Background()))
	for v, n := range acks {
		require.Equal(t, 1, n, "%q acknowledged once", v)
	}
	require.Len(t, live.samples(), sent, "the live output got every sample")
	for _, o := range append(outs, dead) {
		require.Empty(t, o.samples())
	}
	require.Zero(t, budget.Used())
	require.Zero(t, gate.Used())
}
