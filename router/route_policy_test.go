package router

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

func TestContinueLetsLaterRoutesSeeTheMessage(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	slow := &memOutput{gate: make(chan struct{})}
	h := newHarness(t, []Route{
		{Name: "archive", Match: all, Decoder: lineDecoder{}, Outputs: []string{"archive"}, Continue: true,
			Rules: []Rule{{AddPrefix: "archive"}}},
		{Name: "main", Match: all, Decoder: lineDecoder{}, Outputs: []string{"main"}},
		{Name: "never", Match: all, Decoder: lineDecoder{}, Outputs: []string{"never"}},
	}, []OutputConfig{fastOutput("archive"), {Name: "main", Output: slow, BatchSize: 1, FlushInterval: time.Millisecond}, fastOutput("never")})

	h.send(t, "t", "a.b 1 100")
	require.Eventually(t, func() bool { return len(h.outs["archive"].samples()) == 1 }, 5*time.Second, time.Millisecond)
	require.Equal(t, "archive.a.b", h.outs["archive"].samples()[0].Path)
	time.Sleep(20 * time.Millisecond)
	require.Zero(t, h.acked.Load(), "acknowledged before the second route's output took its samples")
	slow.gate <- struct{}{}
	h.waitAcked(t, 1)
	require.Equal(t, []metric.Sample{{Path: "a.b", Value: 1, Time: 100}}, slow.samples())
	require.Empty(t, h.outs["never"].samples(), "the route without continue stops matching")
}

func TestTimeWindow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, clamp := range []bool{false, true} {
		t.Run(map[bool]string{false: "reject", true: "clamp"}[clamp], func(t *testing.T) {
			all, _ := NewMatch("", "", nil)
			out := &memOutput{}
			r, err := New(Config{
				Routes:  []Route{{Match: all, Decoder: lineDecoder{}, DecoderName: "lines", Outputs: []string{"a"}}},
				Outputs: []OutputConfig{{Name: "a", Output: out, BatchSize: 1, FlushInterval: time.Millisecond}},
				Window:  TimeWindow{MaxAge: time.Hour, MaxFuture: 10 * time.Minute, Clamp: clamp},
			})
			require.NoError(t, err)
			r.now = func() time.Time { return now }
			r.Start(context.Background())
			defer r.Close(context.Background())
			done := make(chan struct{})
			msg := "old 1 1699990000\nok 2 1700000000\nfuture 3 1700003600\nedge 4 1700000600"
			require.NoError(t, r.Handle(context.Background(), &metric.Message{Value: []byte(msg)}, func() { close(done) }))
			<-done
			if clamp {
				require.Equal(t, []metric.Sample{
					{Path: "old", Value: 1, Time: 1699996400}, {Path: "ok", Value: 2, Time: 1700000000},
					{Path: "future", Value: 3, Time: 1700000600}, {Path: "edge", Value: 4, Time: 1700000600},
				}, out.samples())
				require.Empty(t, r.Stats().Snapshot().Rejects)
				return
			}
			require.Equal(t, []metric.Sample{{Path: "ok", Value: 2, Time: 1700000000}, {Path: "edge", Value: 4, Time: 1700000600}}, out.samples())
			require.Equal(t, map[RejectKey]uint64{{"lines", ReasonOutOfWindow, true}: 2}, r.Stats().Snapshot().Rejects)
		})
	}
}

// memDeadLetter records dead letters and acknowledges them when released.
type memDeadLetter struct {
	mu      sync.Mutex
	reasons []string
	pending []func()
}

func (d *memDeadLetter) Send(_ context.Context, msg *metric.Message, reason, _ string, done func()) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reasons = append(d.reasons, reason)
	d.pending = append(d.pending, done)
	return nil
}

func (d *memDeadLetter) release() {
	d.mu.Lock()
	p := d.pending
	d.pending = nil
	d.mu.Unlock()
	for _, f := range p {
		f()
	}
}

func TestDeadLetters(t *testing.T) {
	slice, _ := NewMatch("slice", "", nil)
	dl := &memDeadLetter{}
	out := &memOutput{}
	r, err := New(Config{
		Routes:     []Route{{Match: slice, Decoder: lineDecoder{}, DecoderName: "lines", Outputs: []string{"a"}}},
		Outputs:    []OutputConfig{{Name: "a", Output: out, BatchSize: 1, FlushInterval: time.Millisecond}},
		DeadLetter: dl,
	})
	require.NoError(t, err)
	r.Start(context.Background())
	defer r.Close(context.Background())

	var acked sync.WaitGroup
	acked.Add(3)
	for _, v := range []string{`{"type":"other"}`, `{"type":`, `{"type":"slice"}`} {
		require.NoError(t, r.Handle(context.Background(), &metric.Message{Value: []byte(v)}, acked.Done))
	}
	// The third is a slice message the line decoder rejects whole (bad shape).
	require.Equal(t, []string{metric.ReasonNoRoute, metric.ReasonInvalidJSON, metric.ReasonBadShape}, dl.reasons)
	waited := make(chan struct{})
	go func() { acked.Wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("acknowledged before the dead-letter writes were durable")
	case <-time.After(20 * time.Millisecond):
	}
	dl.release()
	<-waited
	require.EqualValues(t, 3, r.Stats().Snapshot().DeadLetters)
}

// TestDeadLettersAreNotDeadLetteredAgain: a rejected message that carries
// shovel's dead-letter headers came from a dead-letter topic; writing it
// to one again could loop, so it is counted and acknowledged instead.
func TestDeadLettersAreNotDeadLetteredAgain(t *testing.T) {
	slice, _ := NewMatch("slice", "", nil)
	dl := &memDeadLetter{}
	r, err := New(Config{
		Routes:     []Route{{Match: slice, Decoder: lineDecoder{}, DecoderName: "lines", Outputs: []string{"a"}}},
		Outputs:    []OutputConfig{{Name: "a", Output: &memOutput{}, BatchSize: 1, FlushInterval: time.Millisecond}},
		DeadLetter: dl,
	})
	require.NoError(t, err)
	r.Start(context.Background())
	defer r.Close(context.Background())

	marked := []metric.Header{{Key: "origin", Value: []byte("x")}, {Key: metric.HeaderDeadLetterReason, Value: []byte("invalid_json")}}
	acked := make(chan struct{}, 3)
	for _, m := range []*metric.Message{
		{Value: []byte(`{"type":`), Headers: marked},         // invalid JSON, once dead-lettered already
		{Value: []byte(`{"type":"other"}`), Headers: marked}, // no route, likewise
		{Value: []byte(`{"type":`)},                          // a first rejection: dead-lettered
	} {
		require.NoError(t, r.Handle(context.Background(), m, func() { acked <- struct{}{} }))
	}
	for range 2 {
		select {
		case <-acked:
		case <-time.After(5 * time.Second):
			t.Fatal("a message that already is a dead letter was not acknowledged at once")
		}
	}
	require.Equal(t, []string{metric.ReasonInvalidJSON}, dl.reasons, "only the unmarked message is dead-lettered")
	dl.release()
	<-acked
	snap := r.Stats().Snapshot()
	require.EqualValues(t, 1, snap.DeadLetters)
	require.EqualValues(t, 2, snap.DeadSkipped)
}

// vouchingDecoder is lineDecoder claiming metric.CheckedPaths, which the
// line decoder does not deserve: the router must check paths all the same
// once a rule has rewritten them.
type vouchingDecoder struct{ lineDecoder }

func (vouchingDecoder) PathsChecked() bool { return true }

func TestRewrittenPathsAreCheckedToo(t *testing.T) {
	for _, dec := range []metric.Decoder{lineDecoder{}, vouchingDecoder{}} {
		t.Run(fmt.Sprintf("%T", dec), func(t *testing.T) {
			all, _ := NewMatch("", "", nil)
			h := newHarness(t, []Route{{Match: all, Decoder: dec, DecoderName: "lines", Outputs: []string{"a"},
				Rules: []Rule{{Rewrite: &Rewrite{Match: `^evil\.`, Replace: "x y\nz."}}}}},
				[]OutputConfig{fastOutput("a")})
			h.send(t, "t", "evil.cpu 1 100\nfine.cpu 2 100")
			h.waitAcked(t, 1)
			require.Equal(t, []metric.Sample{{Path: "fine.cpu", Value: 2, Time: 100}}, h.outs["a"].samples())
			require.Equal(t, map[RejectKey]uint64{{"lines", metric.ReasonBadPath, true}: 1}, h.r.Stats().Snapshot().Rejects)
		})
	}
}

// TestCheckedPathsSkipOnlyWhenSafe: the router leaves out its path check
// only for a decoder that vouches for its paths, on a route whose rules at
// most filter.
func TestCheckedPathsSkipOnlyWhenSafe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dec   metric.Decoder
		rules []Rule
		check bool
	}{
		{"plain decoder", lineDecoder{}, nil, true},
		{"vouching decoder", vouchingDecoder{}, nil, false},
		{"vouching, keep and drop", vouchingDecoder{}, []Rule{{Keep: "a.*"}, {Drop: "a.b"}}, false},
		{"vouching, rewrite", vouchingDecoder{}, []Rule{{Rewrite: &Rewrite{Match: "^a", Replace: "b"}}}, true},
		{"vouching, add_prefix", vouchingDecoder{}, []Rule{{AddPrefix: "p"}}, true},
		{"vouching, strip_prefix", vouchingDecoder{}, []Rule{{StripPrefix: "p."}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all, _ := NewMatch("", "", nil)
			r, err := New(Config{
				Routes:  []Route{{Match: all, Decoder: tc.dec, Outputs: []string{"a"}, Rules: tc.rules}},
				Outputs: []OutputConfig{{Name: "a", Output: &memOutput{}}},
			})
			require.NoError(t, err)
			require.Equal(t, tc.check, r.routes[0].checkPaths)
		})
	}
}

// skippingDecoder skips messages starting with "skip:", naming the reason
// after the colon, and decodes the rest as lines.
type skippingDecoder struct{ lineDecoder }

func (d skippingDecoder) Decode(msg *metric.Message, out *metric.Result) error {
	if reason, ok := strings.CutPrefix(string(msg.Value), "skip:"); ok {
		return fmt.Errorf("wrapped: %w", metric.Skip(reason))
	}
	return d.lineDecoder.Decode(msg, out)
}

// A skipped message is counted by decoder and reason, acknowledged at
// once, never logged and never dead-lettered; the messages around it go on.
func TestSkippedMessages(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	dl := &memDeadLetter{}
	out := &memOutput{}
	var logs strings.Builder
	logw := &syncWriter{w: &logs}
	reg := prometheus.NewRegistry()
	r, err := New(Config{
		Routes:     []Route{{Match: all, Decoder: skippingDecoder{}, DecoderName: "events", Outputs: []string{"a"}}},
		Outputs:    []OutputConfig{{Name: "a", Output: out, BatchSize: 1, FlushInterval: time.Millisecond}},
		DeadLetter: dl,
		Logger:     slog.New(slog.NewTextHandler(logw, nil)),
		Registerer: reg,
	})
	require.NoError(t, err)
	r.Start(context.Background())
	defer r.Close(context.Background())

	var acked atomic.Int64
	for _, v := range []string{"skip:device_event", "a.b 1 100", "skip:device_event", "skip:rpc_event"} {
		require.NoError(t, r.Handle(context.Background(), &metric.Message{Value: []byte(v)}, func() { acked.Add(1) }))
	}
	require.Eventually(t, func() bool { return acked.Load() == 4 }, 5*time.Second, time.Millisecond)
	require.Equal(t, []metric.Sample{{Path: "a.b", Value: 1, Time: 100}}, out.samples())
	snap := r.Stats().Snapshot()
	require.Equal(t, map[SkipKey]uint64{{"events", "device_event"}: 2, {"events", "rpc_event"}: 1}, snap.Skips)
	require.Empty(t, snap.Rejects)
	require.Empty(t, dl.reasons, "a skip is not a dead letter")
	require.Zero(t, snap.DeadLetters)
	require.EqualValues(t, 4, snap.Messages)
	logw.mu.Lock()
	require.Empty(t, logs.String(), "a skip is not worth a log line")
	logw.mu.Unlock()
	families, err := reg.Gather()
	require.NoError(t, err)
	var got []string
	for _, f := range families {
		if f.GetName() != "shovel_skipped_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += l.GetName() + "=" + l.GetValue() + " "
			}
			got = append(got, fmt.Sprintf("%s%g", labels, m.GetCounter().GetValue()))
		}
	}
	require.ElementsMatch(t, []string{"decoder=events reason=device_event 2", "decoder=events reason=rpc_event 1"}, got)
}

// syncWriter serialises writes from the router's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
