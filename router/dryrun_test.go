package router

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

// TestDryRunAgreesWithHandle runs each message through Handle and through
// DryRun on routers built alike, and requires the same outcome: the same
// rejections with the same reasons (for every reason the router itself
// gives, and the decoder's), the same samples to the same outputs.
func TestDryRunAgreesWithHandle(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	recent := "999000"
	tests := []struct {
		name, topic, value string
		want               []string // the rejection reasons both must report
	}{
		{"delivered, after the rules", "lines", "keep.a 1 " + recent + "\ndrop.b 2 " + recent, nil},
		{"bad shape, whole message", "lines", "x 1 1\n 2", []string{metric.ReasonBadShape}},
		{"decoder panic", "lines", "panic now", []string{"decoder_panic"}},
		{"decoder drops a sample", "lines", "!nan\nkeep.c 3 " + recent, []string{metric.ReasonNotANumber}},
		{"unsafe path", "lines", "keep..d 1 " + recent, []string{metric.ReasonBadPath}},
		{"path too long for carbon", "lines", "keep." + strings.Repeat("x", metric.MaxSegmentLen+1) + " 1 " + recent, []string{metric.ReasonPathTooLong}},
		{"not finite", "lines", "keep.e +Inf " + recent, []string{metric.ReasonNotFinite}},
		{"bad timestamp", "lines", "keep.f 1 -5", []string{metric.ReasonBadTimestamp}},
		{"too old", "lines", "keep.g 1 100", []string{ReasonOutOfWindow}},
		{"too far ahead", "lines", "keep.h 1 2000000", []string{ReasonOutOfWindow}},
		{"no route", "json", `{"type":"other"}`, []string{metric.ReasonNoRoute}},
		{"invalid JSON", "json", `{"ts":1,"type":"t"`, []string{metric.ReasonInvalidJSON}},
		{"no type", "json", `{"kind":"t"}`, []string{metric.ReasonNoType}},
		{"too deep", "json", strings.Repeat("[", 10000), []string{ReasonTooDeep}},
		{"over the output budget", "lines", strings.Repeat("keep.long.path.of.many.segments 1 "+recent+"\n", 2000), []string{metric.ReasonOverBudget}},
		{"two routes", "json", `{"type":"t","v":"both.x 1 ` + recent + `"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			build := func() (*Router, map[string]*memOutput) {
				outs := map[string]*memOutput{"a": {}, "b": {}}
				lines, _ := NewMatch("", "lines", nil)
				typed, _ := NewMatch("t", "json", nil)
				r, err := New(Config{
					Routes: []Route{
						{Name: "lines", Match: lines, Decoder: lineDecoder{}, DecoderName: "lines",
							Rules: []Rule{{Drop: "drop.*"}}, Outputs: []string{"a"}},
						{Name: "first", Match: typed, Decoder: fieldDecoder{}, DecoderName: "field", Outputs: []string{"a"}, Continue: true},
						{Name: "second", Match: typed, Decoder: fieldDecoder{}, DecoderName: "field",
							Rules: []Rule{{AddPrefix: "again"}}, Outputs: []string{"b"}},
					},
					Outputs: []OutputConfig{
						{Name: "a", Output: outs["a"], BatchSize: 1, FlushInterval: time.Millisecond},
						{Name: "b", Output: outs["b"], BatchSize: 1, FlushInterval: time.Millisecond},
					},
					Window: TimeWindow{MaxAge: time.Hour, MaxFuture: time.Minute, Now: func() time.Time { return now }},
					Output: metric.OutputLimits{Ratio: 1, Min: 4128},
				})
				require.NoError(t, err)
				return r, outs
			}
			msg := func() *metric.Message { return &metric.Message{Topic: tt.topic, Value: []byte(tt.value)} }

			// What the router does.
			r, outs := build()
			r.Start(context.Background())
			acked := make(chan struct{})
			require.NoError(t, r.Handle(context.Background(), msg(), func() { close(acked) }))
			select {
			case <-acked:
			case <-time.After(5 * time.Second):
				t.Fatal("not acknowledged")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			require.NoError(t, r.Close(ctx))
			var handled []string
			for k, n := range r.Stats().Snapshot().Rejects {
				for range n {
					handled = append(handled, k.Reason)
				}
			}
			sort.Strings(handled)

			// What the dry run says, from a router that was never started.
			dr, _ := build()
			var dry []string
			delivered := map[string][]metric.Sample{}
			for _, o := range dr.DryRun(msg(), "") {
				if o.Reason != "" {
					dry = append(dry, o.Reason)
				}
				for _, rj := range o.Rejected {
					dry = append(dry, rj.Reason)
				}
				for _, name := range o.Outputs {
					delivered[name] = append(delivered[name], o.Samples...)
				}
			}
			sort.Strings(dry)
			want := append([]string(nil), tt.want...)
			sort.Strings(want)
			require.Equal(t, want, handled, "the router's rejections")
			require.Equal(t, handled, dry, "the dry run's rejections")
			for name, out := range outs {
				require.Equal(t, out.samples(), delivered[name], "samples to output %s", name)
			}
		})
	}
}

// fieldDecoder reads a JSON message's "v" string as lineDecoder lines.
type fieldDecoder struct{}

func (fieldDecoder) Decode(msg *metric.Message, out *metric.Result) error {
	s := string(msg.Value)
	i := strings.Index(s, `"v":"`)
	if i < 0 {
		return metric.Rejectf(metric.ReasonBadShape, "no v")
	}
	v := s[i+5:]
	v = v[:strings.IndexByte(v, '"')]
	return lineDecoder{}.Decode(&metric.Message{Value: []byte(v)}, out)
}
