package router

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

// repeatDecoder reads "N path" and returns N samples of path: an
// amplifying decoder, as a hostile message makes of a real one. With add
// it charges each sample through Result.Add and stops at the budget, as
// the built-in decoders do; without, it appends to Samples itself, as a
// user's decoder may, and only the router's check after Decode bounds it.
type repeatDecoder struct {
	add   bool
	built *int // samples built by the last call, for the test
}

func (d repeatDecoder) Decode(msg *metric.Message, out *metric.Result) error {
	n, path, _ := strings.Cut(string(msg.Value), " ")
	count, err := strconv.Atoi(n)
	if err != nil {
		return metric.Rejectf(metric.ReasonBadShape, "%v", err)
	}
	*d.built = 0
	for i := 0; i < count; i++ {
		s := metric.Sample{Path: path, Time: 100, Value: float64(i)}
		*d.built++
		if !d.add {
			out.Samples = append(out.Samples, s)
			continue
		}
		if err := out.Add(s); err != nil {
			out.Samples = out.Samples[:0]
			return err
		}
	}
	return nil
}

// TestOutputBudget: a message that would decode into more than its output
// budget is rejected whole as output_budget, counted under its decoder and
// dead-lettered, whether its decoder charges as it goes (and then stops at
// the budget) or not; the messages around it are delivered.
func TestOutputBudget(t *testing.T) {
	for _, add := range []bool{true, false} {
		t.Run("add="+strconv.FormatBool(add), func(t *testing.T) {
			all, _ := NewMatch("", "", nil)
			built := 0
			dl := &memDeadLetter{}
			out := &memOutput{}
			limits := metric.OutputLimits{Ratio: 4, Min: 8 << 10}
			r, err := New(Config{
				Routes:     []Route{{Match: all, Decoder: repeatDecoder{add: add, built: &built}, DecoderName: "rep", Outputs: []string{"a"}}},
				Outputs:    []OutputConfig{{Name: "a", Output: out, BatchSize: 1, FlushInterval: time.Millisecond}},
				DeadLetter: dl,
				Output:     limits,
			})
			require.NoError(t, err)
			r.Start(context.Background())
			defer r.Close(context.Background())

			path := strings.Repeat("p", 100)
			sampleCost := len(path) + metric.SampleOverhead
			fits := limits.Min / sampleCost // what the floor takes of a tiny message
			handle := func(value string, key []byte) {
				msg := &metric.Message{Value: []byte(value), Key: key}
				require.NoError(t, r.Handle(context.Background(), msg, func() {}))
			}
			handle(strconv.Itoa(fits)+" "+path, nil) // exactly the floor: delivered
			handle("1000000 "+path, nil)             // 130 MB of samples from 108 bytes
			if add {
				require.Equal(t, fits+1, built, "a charging decoder stops at the first sample past the budget")
			}
			// A large key raises the budget: the key counts as the message's size.
			key := make([]byte, 2*fits*sampleCost/int(limits.Ratio))
			handle(strconv.Itoa(2*fits)+" "+path, key)
			handle(strconv.Itoa(fits+1)+" "+path, nil) // one sample past the floor
			dl.release()

			require.Eventually(t, func() bool { return len(out.samples()) == 3*fits }, 5*time.Second, time.Millisecond)
			require.Equal(t, []string{metric.ReasonOverBudget, metric.ReasonOverBudget}, dl.reasons)
			require.Equal(t, map[RejectKey]uint64{{"rep", metric.ReasonOverBudget, false}: 2}, r.Stats().Snapshot().Rejects)
		})
	}
}

// TestRulesWithinBudget: what a route's rules add to its paths is held to
// the message's output budget too. A message of short names that its
// decoder fits in the budget is rejected whole as output_budget once an
// add_prefix rule would grow it past the budget (before, the rules ran
// after the check: a 200-byte prefix on 1-byte names made it seven times
// as large); the same message on a route without the rule goes through.
func TestRulesWithinBudget(t *testing.T) {
	all, _ := NewMatch("", "", nil)
	built := 0
	limits := metric.OutputLimits{Ratio: 4, Min: 8 << 10}
	prefix := strings.Repeat("p", 200)
	fits := limits.Min / (1 + metric.SampleOverhead) // 1-byte paths the floor takes
	msg := &metric.Message{Value: []byte(strconv.Itoa(fits) + " x")}
	for _, tt := range []struct {
		name   string
		rules  []Rule
		reason string
	}{
		{"no rule", nil, ""},
		{"add_prefix", []Rule{{AddPrefix: prefix}}, metric.ReasonOverBudget},
		{"add_tag", []Rule{{AddTag: "k=" + prefix}}, metric.ReasonOverBudget},
		{"rewrite", []Rule{{Rewrite: &Rewrite{Match: "^x$", Replace: prefix}}}, metric.ReasonOverBudget},
		{"a prefix stripped again", []Rule{{AddPrefix: prefix}, {StripPrefix: prefix + "."}}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(Config{
				Routes:  []Route{{Match: all, Decoder: repeatDecoder{add: true, built: &built}, DecoderName: "rep", Outputs: []string{"a"}, Rules: tt.rules}},
				Outputs: []OutputConfig{{Name: "a", Output: &memOutput{}}},
				Output:  limits,
			})
			require.NoError(t, err)
			outs := r.DryRun(msg, "")
			require.Len(t, outs, 1)
			require.Equal(t, tt.reason, outs[0].Reason, outs[0].Detail)
			if tt.reason == "" {
				require.Len(t, outs[0].Samples, fits)
			} else {
				require.Empty(t, outs[0].Samples)
			}
		})
	}
}

// TestLargeMessageRoomNotKept: once a message of 400 000 samples (13 MB,
// within its budget) has been delivered, the router does not keep its
// room for the messages after it: the heap goes back to what it was
// while small messages go on. Before, the worker's pooled Result kept
// the large message's slices for as long as messages kept coming.
func TestLargeMessageRoomNotKept(t *testing.T) {
	// One P: the pool hands the worker's scratch back, as it does a busy
	// router's worker.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	all, _ := NewMatch("", "", nil)
	built := 0
	r, err := New(Config{
		Routes:  []Route{{Match: all, Decoder: repeatDecoder{add: true, built: &built}, DecoderName: "rep", Outputs: []string{"a"}}},
		Outputs: []OutputConfig{{Name: "a", Output: &discardOutput{}, FlushInterval: time.Millisecond}},
		Output:  metric.OutputLimits{Ratio: 4 << 20, Min: 64 << 10},
	})
	require.NoError(t, err)
	r.Start(context.Background())
	defer r.Close(context.Background())
	handle := func(value string) {
		done := make(chan struct{})
		require.NoError(t, r.Handle(context.Background(), &metric.Message{Value: []byte(value)}, func() { close(done) }))
		<-done
	}
	heap := func() uint64 { // after small messages and GCs, as a busy router's heap is
		var ms runtime.MemStats
		for range 3 {
			handle("10 x")
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	handle("400000 x")
	require.Equal(t, 400_000, built)
	after := heap()
	t.Logf("heap %d before, %d after", before, after)
	require.Less(t, int64(after)-int64(before), int64(4<<20), "the large message's room is not kept")
}
