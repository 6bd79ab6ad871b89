package router

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

// memOutput is an in-memory metric.Output for the router's unit tests; the
// Carbon outputs are tested against real sockets in their own package and
// end to end in cmd/shovel.
type memOutput struct {
	mu      sync.Mutex
	writes  [][]metric.Sample
	failing atomic.Bool   // Write fails with ErrNotConnected while set
	gate    chan struct{} // when non-nil, Write waits for a receive from it
	delay   time.Duration // each Write takes this long first
	closed  atomic.Bool
}

func (m *memOutput) Connect(context.Context) error { return nil }
func (m *memOutput) Close() error                  { m.closed.Store(true); return nil }
func (m *memOutput) Write(ctx context.Context, s []metric.Sample) error {
	time.Sleep(m.delay)
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.failing.Load() {
		return fmt.Errorf("mem: %w", metric.ErrNotConnected)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes = append(m.writes, append([]metric.Sample(nil), s...))
	return nil
}

func (m *memOutput) samples() []metric.Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	var all []metric.Sample
	for _, w := range m.writes {
		all = append(all, w...)
	}
	return all
}

func (m *memOutput) numWrites() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.writes)
}

// lineDecoder turns "path value ts" lines into samples; enough to drive the router.
type lineDecoder struct{}

func (lineDecoder) Decode(msg *metric.Message, out *metric.Result) error {
	if strings.HasPrefix(string(msg.Value), "panic") {
		panic("boom")
	}
	for _, line := range strings.Split(strings.TrimSpace(string(msg.Value)), "\n") {
		var s metric.Sample
		if _, err := fmt.Sscanf(line, "%s %g %g", &s.Path, &s.Value, &s.Time); err != nil {
			if strings.HasPrefix(line, "!") {
				out.Reject(line, metric.ReasonNotANumber)
				continue
			}
			return metric.Rejectf(metric.ReasonBadShape, "line %q", line)
		}
		out.Samples = append(out.Samples, s)
	}
	return nil
}

type harness struct {
	r     *Router
	outs  map[string]*memOutput
	acked atomic.Int64
}

func newHarness(t *testing.T, routes []Route, outs []OutputConfig) *harness {
	t.Helper()
	h := &harness{outs: map[string]*memOutput{}}
	for i := range outs {
		if outs[i].Output == nil {
			m := &memOutput{}
			outs[i].Output = m
		}
		h.outs[outs[i].Name] = outs[i].Output.(*memOutput)
	}
	r, err := New(Config{Routes: routes, Outputs: outs})
	require.NoError(t, err)
	r.Start(context.Background())
	h.r = r
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = r.Close(ctx)
	})
	return h
}

func (h *harness) send(t *testing.T, topic, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := &metric.Message{Topic: topic, Value: []byte(value)}
	require.NoError(t, h.r.Handle(ctx, msg, func() { h.acked.Add(1) }))
}

func (h *harness) waitAcked(t *testing.T, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return h.acked.Load() >= n }, 5*time.Second, 5*time.Millisecond,
		"acked %d of %d", h.acked.Load(), n)
}

func fastOutput(name string) OutputConfig {
	return OutputConfig{Name: name, BatchSize: 1, FlushInterval: time.Millisecond}
}

func TestRouteMatching(t *testing.T) {
	slice, _ := NewMatch("slice", "", nil)
	kpiTopic, _ := NewMatch("", "^kpi\\.", nil)
	any, _ := NewMatch("", "", nil)
	h := newHarness(t, []Route{
		{Name: "slice", Match: slice, Decoder: lineDecoder{}, Outputs: []string{"a"}},
		{Name: "kpi", Match: kpiTopic, Decoder: lineDecoder{}, Outputs: []string{"b"}},
		{Name: "rest", Match: any, Decoder: lineDecoder{}, Outputs: []string{"c"}},
	}, []OutputConfig{fastOutput("a"), fastOutput("b"), fastOutput("c")})

	// The "type" of a non-JSON body cannot be read, so only topic and catch-all routes see it.
	h.send(t, "kpi.x", "p.one 1 100")
	h.send(t, "other", "p.two 2 100")
	h.waitAcked(t, 2)
	require.Equal(t, []metric.Sample{{Path: "p.one", Value: 1, Time: 100}}, h.outs["b"].samples())
	require.Equal(t, []metric.Sample{{Path: "p.two", Value: 2, Time: 100}}, h.outs["c"].samples())
	require.Empty(t, h.outs["a"].samples())
}

func TestMatchConditions(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		topic   string
		headers map[string]string
		msg     metric.Message
		want    bool
	}{
		{"type", "slice", "", nil, metric.Message{Value: []byte(`{"type":"slice"}`)}, true},
		{"other type", "slice", "", nil, metric.Message{Value: []byte(`{"type":"kpi"}`)}, false},
		{"type not json", "slice", "", nil, metric.Message{Value: []byte(`slice`)}, false},
		{"nested type does not count", "slice", "", nil, metric.Message{Value: []byte(`{"x":{"type":"slice"}}`)}, false},
		{"exact topic", "", "voltha.kpis", nil, metric.Message{Topic: "voltha.kpis"}, true},
		{"exact topic is not a prefix", "", "voltha", nil, metric.Message{Topic: "voltha.kpis"}, false},
		{"topic regexp", "", "^voltha\\..*", nil, metric.Message{Topic: "voltha.kpis"}, true},
		{"header", "", "", map[string]string{"content-type": "text/plain"},
			metric.Message{Headers: []metric.Header{{Key: "content-type", Value: []byte("text/plain")}}}, true},
		{"header value differs", "", "", map[string]string{"content-type": "text/plain"},
			metric.Message{Headers: []metric.Header{{Key: "content-type", Value: []byte("json")}}}, false},
		{"header missing", "", "", map[string]string{"content-type": "text/plain"}, metric.Message{}, false},
		{"all conditions", "slice", "t", map[string]string{"k": "v"},
			metric.Message{Topic: "t", Value: []byte(`{"type":"slice"}`), Headers: []metric.Header{{Key: "k", Value: []byte("v")}}}, true},
		{"catch-all", "", "", nil, metric.Message{Value: []byte("anything")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMatch(tt.typ, tt.topic, tt.headers)
			require.NoError(t, err)
			var typ msgType
			require.Equal(t, tt.want, m.matches(&tt.msg, &typ))
		})
	}
	_, err := NewMatch("", "^(", nil)
	require.ErrorContains(t, err, "topic:")
}

func TestRejections(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	h := newHarness(t, []Route{{Match: all, Decoder: lineDecoder{}, DecoderName: "lines", Outputs: []string{"a"}}},
		[]OutputConfig{fastOutput("a")})

	h.send(t, "t", "good.one 1 100\n!bad\nbad.path\n 2 100")         // whole message rejected: bad shape
	h.send(t, "t", "panic please")                                   // decoder panic
	h.send(t, "t", "good.two 2 100\n!junk\nbad..path 3 100\nok 4 5") // two samples dropped, two kept
	h.send(t, "t", "inf.value +Inf 100")
	h.waitAcked(t, 4) // every message is acknowledged: rejected ones must not block the partition

	require.Equal(t, []metric.Sample{{Path: "good.two", Value: 2, Time: 100}, {Path: "ok", Value: 4, Time: 5}},
		h.outs["a"].samples())
	snap := h.r.Stats().Snapshot()
	require.Equal(t, map[RejectKey]uint64{
		{"lines", metric.ReasonBadShape, false}:  1,
		{"lines", "decoder_panic", false}:        1,
		{"lines", metric.ReasonNotANumber, true}: 1,
		{"lines", metric.ReasonBadPath, true}:    1,
		{"lines", metric.ReasonNotFinite, true}:  1,
	}, snap.Rejects)
	require.EqualValues(t, 4, snap.Messages)
}

func TestNoRouteIsCountedAndAcknowledged(t *testing.T) {
	slice, _ := NewMatch("slice", "", nil)
	h := newHarness(t, []Route{{Match: slice, Decoder: lineDecoder{}, Outputs: []string{"a"}}}, []OutputConfig{fastOutput("a")})
	h.send(t, "t", `{"type":"other"}`)
	h.send(t, "t", `{"ts":1,"type":"slice"`) // type not first: the strict scanner finds the JSON broken
	h.send(t, "t", `{"kind":"slice"}`)
	h.send(t, "t", strings.Repeat("[", 10000))
	// Type first and readable: routed, and the decoder judges the rest.
	h.send(t, "t", `{"type":"slice"`)
	h.waitAcked(t, 5)
	require.Equal(t, map[RejectKey]uint64{
		{"", metric.ReasonNoRoute, false}:     1,
		{"", metric.ReasonInvalidJSON, false}: 1,
		{"", metric.ReasonNoType, false}:      1,
		{"", ReasonTooDeep, false}:            1,
		{"", metric.ReasonBadShape, false}:    1,
	}, h.r.Stats().Snapshot().Rejects)
}

func TestAckOnlyAfterEveryOutputTookTheSamples(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	slow := &memOutput{gate: make(chan struct{})}
	h := newHarness(t, []Route{{Match: all, Decoder: lineDecoder{}, Outputs: []string{"fast", "slow"}}},
		[]OutputConfig{fastOutput("fast"), {Name: "slow", Output: slow, BatchSize: 1, FlushInterval: time.Millisecond}})

	h.send(t, "t", "a.b 1 100")
	require.Eventually(t, func() bool { return len(h.outs["fast"].samples()) == 1 }, 5*time.Second, time.Millisecond)
	// The fast output has the sample, the slow one has not: no acknowledgement yet.
	time.Sleep(20 * time.Millisecond)
	require.Zero(t, h.acked.Load())
	slow.gate <- struct{}{}
	h.waitAcked(t, 1)
	require.Len(t, slow.samples(), 1)
}

func TestFallbackTakesOverAndHandsBack(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	primary := &memOutput{}
	primary.failing.Store(true)
	pc := fastOutput("pickle")
	pc.Output, pc.Fallback = primary, "line"
	h := newHarness(t, []Route{{Match: all, Decoder: lineDecoder{}, Outputs: []string{"pickle"}}},
		[]OutputConfig{pc, fastOutput("line")})

	h.send(t, "t", "a.b 1 100")
	h.waitAcked(t, 1)
	require.Len(t, h.outs["line"].samples(), 1, "fallback should take the batch while the primary fails")
	require.Empty(t, primary.samples())

	primary.failing.Store(false)
	h.send(t, "t", "a.b 2 101")
	h.waitAcked(t, 2)
	require.Equal(t, []metric.Sample{{Path: "a.b", Value: 2, Time: 101}}, primary.samples(), "primary should take over again")
	require.Len(t, h.outs["line"].samples(), 1)
	require.EqualValues(t, 1, h.r.Stats().Snapshot().Fallbacks)
}

func TestNoOutputCanDeliverWaitsThenDelivers(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	primary := &memOutput{}
	primary.failing.Store(true)
	pc := fastOutput("p")
	pc.Output, pc.QueueSize = primary, 1
	h := newHarness(t, []Route{{Match: all, Decoder: lineDecoder{}, Outputs: []string{"p"}}}, []OutputConfig{pc})

	h.send(t, "t", "a 1 1") // taken by the sink, which is now retrying it
	require.Eventually(t, func() bool { return len(h.r.sinks["p"].in) == 0 }, 5*time.Second, time.Millisecond)
	h.send(t, "t", "b 2 2") // fills the one-slot queue
	// The next message cannot be taken: Handle blocks until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := h.r.Handle(ctx, &metric.Message{Value: []byte("c 3 3")}, func() { h.acked.Add(1) })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Zero(t, h.acked.Load())

	primary.failing.Store(false)
	h.waitAcked(t, 2)
	require.Equal(t, []metric.Sample{{Path: "a", Value: 1, Time: 1}, {Path: "b", Value: 2, Time: 2}}, primary.samples())
}

func TestBatching(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	t.Run("by count", func(t *testing.T) {
		h := newHarness(t, []Route{{Match: all, Decoder: lineDecoder{}, Outputs: []string{"a"}}},
			[]OutputConfig{{Name: "a", BatchSize: 4, FlushInterval: time.Hour}})
		for i := range 8 {
			h.send(t, "t", fmt.Sprintf("m.%d %d 100", i, i))
		}
		h.waitAcked(t, 8)
		require.Equal(t, 2, h.outs["a"].numWrites(), "8 samples in batches of 4")
	})
	t.Run("by delay", func(t *testing.T) {
		h := newHarness(t, []Route{{Match: all, Decoder: lineDecoder{}, Outputs: []string{"a"}}},
			[]OutputConfig{{Name: "a", BatchSize: 1000, FlushInterval: 20 * time.Millisecond}})
		h.send(t, "t", "m.0 0 100")
		h.send(t, "t", "m.1 1 100")
		// A trickle must not wait for a full batch.
		h.waitAcked(t, 2)
		require.Len(t, h.outs["a"].samples(), 2)
	})
}

func TestCloseFlushesPendingBatch(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	out := &memOutput{}
	r, err := New(Config{
		Routes:  []Route{{Match: all, Decoder: lineDecoder{}, Outputs: []string{"a"}}},
		Outputs: []OutputConfig{{Name: "a", Output: out, BatchSize: 1000, FlushInterval: time.Hour}},
	})
	require.NoError(t, err)
	r.Start(context.Background())
	var acked atomic.Int32
	require.NoError(t, r.Handle(context.Background(), &metric.Message{Value: []byte("x 1 1")}, func() { acked.Add(1) }))
	require.NoError(t, r.Close(context.Background()))
	require.EqualValues(t, 1, acked.Load())
	require.Len(t, out.samples(), 1)
	require.True(t, out.closed.Load())
}

func TestCloseDeadlineLeavesUndeliveredUnacknowledged(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	out := &memOutput{}
	out.failing.Store(true)
	r, err := New(Config{
		Routes:  []Route{{Match: all, Decoder: lineDecoder{}, Outputs: []string{"a"}}},
		Outputs: []OutputConfig{{Name: "a", Output: out, BatchSize: 1, FlushInterval: time.Millisecond}},
	})
	require.NoError(t, err)
	r.Start(context.Background())
	var acked atomic.Int32
	require.NoError(t, r.Handle(context.Background(), &metric.Message{Value: []byte("x 1 1")}, func() { acked.Add(1) }))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = r.Close(ctx)
	require.ErrorContains(t, err, "undelivered")
	require.Zero(t, acked.Load())
}

func TestNewRejectsBadConfigs(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"fallback loop", Config{Outputs: []OutputConfig{
			{Name: "a", Output: &memOutput{}, Fallback: "b"}, {Name: "b", Output: &memOutput{}, Fallback: "a"}}},
			`output "a": fallback chain loops back to "a"`},
		{"unknown fallback", Config{Outputs: []OutputConfig{{Name: "a", Output: &memOutput{}, Fallback: "z"}}},
			`output "a" falls back to unknown output "z"`},
		{"unknown output", Config{Routes: []Route{{Match: all, Decoder: lineDecoder{}, Outputs: []string{"z"}}}},
			`routes[0] names unknown output "z"`},
		{"no decoder", Config{Routes: []Route{{Match: all, Outputs: []string{"z"}}}}, "routes[0] has no decoder"},
		{"duplicate output", Config{Outputs: []OutputConfig{{Name: "a", Output: &memOutput{}}, {Name: "a", Output: &memOutput{}}}},
			`output "a" defined twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestQuickTypeAgreesWithTheStrictScanner(t *testing.T) {
	for _, msg := range []string{
		`{"type":"slice","ts":1}`, ` { "type" : "slice" }`, `{"type":"sl\u0069ce"}`, `{"type":"sl\\"ice"}`,
		`{"ts":1,"type":"slice"}`, `{"type":"héllo"}`, "{\"type\":\"a\xffb\"}", `{"type":1}`, `{"type":"slice"`,
		`["type","slice"]`, `{"type":"sli` + "\n" + `ce"}`, `{"type":""}`,
	} {
		t.Run(msg, func(t *testing.T) {
			strictVal, reason := messageType([]byte(msg))
			if raw, ok := quickType([]byte(msg)); ok {
				// The fast path may accept a message the strict scanner
				// rejects later in the document (the decoder rejects it
				// then), but never reads a different type.
				if reason == "" {
					require.Equal(t, strictVal, string(raw))
				}
			}
			var typ msgType
			require.Equal(t, reason == "" && strictVal == "slice", typ.is([]byte(msg), "slice") && reason == "")
		})
	}
}

func FuzzQuickType(f *testing.F) {
	for _, s := range []string{`{"type":"slice"}`, `{"type":"a\"b"}`, `{"type":"x","type":"y"}`, "{\"type\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		raw, ok := quickType(msg)
		if !ok {
			return
		}
		strictVal, reason := messageType(msg)
		if reason == "" && strictVal != string(raw) {
			t.Fatalf("quickType read %q, the strict scanner %q", raw, strictVal)
		}
	})
}

func TestInjectNeverBlocks(t *testing.T) {
	blocked := &memOutput{gate: make(chan struct{})}
	r, err := New(Config{Outputs: []OutputConfig{
		{Name: "ok", Output: &memOutput{}, BatchSize: 1, FlushInterval: time.Millisecond},
		{Name: "stuck", Output: blocked, BatchSize: 1, FlushInterval: time.Millisecond, QueueSize: 1},
	}})
	require.NoError(t, err)
	r.Start(context.Background())
	self := []metric.Sample{{Path: "shovel.h.up", Value: 1, Time: 1}}
	require.NoError(t, r.Inject([]string{"ok"}, self))
	require.Eventually(t, func() bool { return len(r.sinks["ok"].primary.out.(*memOutput).samples()) == 1 }, 5*time.Second, time.Millisecond)
	// Fill the stuck output's sink and queue: Inject skips instead of waiting.
	var err2 error
	for i := 0; i < 5 && err2 == nil; i++ {
		err2 = r.Inject([]string{"stuck"}, self)
	}
	require.ErrorContains(t, err2, "queue full for stuck")
	require.ErrorContains(t, r.Inject([]string{"nope"}, self), `unknown output "nope"`)
	close(blocked.gate)
	require.NoError(t, r.Close(context.Background()))
}

func TestInjectRacingClose(t *testing.T) {
	r, err := New(Config{Outputs: []OutputConfig{{Name: "a", Output: &memOutput{}, BatchSize: 1, FlushInterval: time.Millisecond}}})
	require.NoError(t, err)
	r.Start(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			_ = r.Inject([]string{"a"}, []metric.Sample{{Path: "x", Value: 1, Time: 1}})
		}
	}()
	require.NoError(t, r.Close(context.Background()))
	<-done // no send on a closed queue
	require.ErrorContains(t, r.Inject([]string{"a"}, nil), "closed")
}
