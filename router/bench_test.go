package router

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/shovel-metrics/shovel/router/metric"
)

// The router's share of the hot path, without Kafka, JSON or sockets: the
// route matcher and Handle → sink → Output.Write. The decoder and the
// Carbon encoders have their own benchmarks (decoders.BenchmarkSlice,
// carbon.BenchmarkAppendPickle); cmd/shovel-bench measures the whole.

// benchSliceMsg is a typical Voltha KPI message: 10 metrics in 3 objects.
const benchSliceMsg = `{"type":"slice","ts":1484291389,"data":{` +
	`"voltha.internal.abc":{"deferreds":12,"rss-mb":80.125,"cpu":3.250,"fds":140},` +
	`"voltha.internal.def":{"deferreds":7,"rss-mb":91.500,"cpu":1.875},` +
	`"voltha.adapter.ponsim_olt":{"rx_bytes":123456789,"tx_bytes":98765.432,"errors":0}}}`

// benchDecoder emits a fixed set of samples without parsing, so that the
// benchmark measures the router and not a decoder.
type benchDecoder struct{ samples []metric.Sample }

func (d benchDecoder) Decode(_ *metric.Message, out *metric.Result) error {
	out.Samples = append(out.Samples, d.samples...)
	return nil
}

func newBenchDecoder(n int) benchDecoder {
	s := make([]metric.Sample, n)
	for i := range s {
		s[i] = metric.Sample{Path: "voltha.internal.abc.metric" + strconv.Itoa(i), Time: 1484291389, Value: float64(i) + 0.5}
	}
	return benchDecoder{s}
}

// discardOutput counts what it is given and keeps nothing.
type discardOutput struct{ samples atomic.Int64 }

func (o *discardOutput) Connect(context.Context) error { return nil }
func (o *discardOutput) Close() error                  { return nil }
func (o *discardOutput) Write(_ context.Context, s []metric.Sample) error {
	o.samples.Add(int64(len(s)))
	return nil
}

func mustMatch(b *testing.B, typ, topic string, headers map[string]string) Match {
	m, err := NewMatch(typ, topic, headers)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkMatch is the cost of choosing a route for one message: the
// matches are tried in order, as Handle does, until one holds.
func BenchmarkMatch(b *testing.B) {
	msg := &metric.Message{Topic: "voltha.kpis", Value: []byte(benchSliceMsg),
		Headers: []metric.Header{{Key: "Content-Type", Value: []byte("application/json")}, {Key: "source", Value: []byte("voltha")}}}
	others := func(n int) []Match {
		var ms []Match
		for i := range n {
			ms = append(ms, mustMatch(b, "kpi"+strconv.Itoa(i), "", nil))
		}
		return ms
	}
	tests := []struct {
		name    string
		matches []Match
	}{
		{"catch-all", []Match{mustMatch(b, "", "", nil)}},
		{"type", []Match{mustMatch(b, "slice", "", nil)}},
		{"type/fifth", append(others(4), mustMatch(b, "slice", "", nil))},
		{"topic", []Match{mustMatch(b, "", "voltha.kpis", nil)}},
		{"topic-regexp", []Match{mustMatch(b, "", `^voltha\..*`, nil)}},
		{"headers", []Match{mustMatch(b, "", "", map[string]string{"source": "voltha"})}},
		{"topic+headers+type", []Match{mustMatch(b, "slice", "voltha.kpis", map[string]string{"source": "voltha"})}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var typ msgType
				hit := -1
				for i := range tt.matches {
					if tt.matches[i].matches(msg, &typ) {
						hit = i
						break
					}
				}
				if hit != len(tt.matches)-1 {
					b.Fatalf("matched route %d", hit)
				}
			}
		})
	}
}

// BenchmarkHandle is the router's cost per message: match, decode (a
// decoder that only copies 10 samples), check every sample, copy them into
// a delivery, enqueue to each output's sink, batch, write and acknowledge.
// Allocations per op are per message.
func BenchmarkHandle(b *testing.B) {
	for _, tt := range []struct {
		name    string
		outputs int
		samples int
	}{
		{"1-output/10-samples", 1, 10},
		{"2-outputs/10-samples", 2, 10},
		{"1-output/100-samples", 1, 100},
	} {
		b.Run(tt.name, func(b *testing.B) {
			var outs []OutputConfig
			var names []string
			var sinks []*discardOutput
			for i := range tt.outputs {
				o := &discardOutput{}
				name := "out" + strconv.Itoa(i)
				sinks = append(sinks, o)
				names = append(names, name)
				outs = append(outs, OutputConfig{Name: name, Output: o})
			}
			r, err := New(Config{
				Routes:  []Route{{Match: mustMatch(b, "slice", "", nil), Decoder: newBenchDecoder(tt.samples), DecoderName: "bench", Outputs: names}},
				Outputs: outs,
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			r.Start(ctx)
			msg := &metric.Message{Topic: "voltha.kpis", Value: []byte(benchSliceMsg)}
			var acked atomic.Int64
			done := func() { acked.Add(1) }
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Handle(ctx, msg, done); err != nil {
					b.Fatal(err)
				}
			}
			n := b.N
			if err := r.Close(ctx); err != nil {
				b.Fatal(err)
			}
			if got := acked.Load(); got != int64(n) {
				b.Fatalf("acknowledged %d of %d messages", got, n)
			}
			for _, o := range sinks {
				if got := o.samples.Load(); got != int64(n*tt.samples) {
					b.Fatalf("output got %d samples, want %d", got, n*tt.samples)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*tt.samples), "ns/sample")
		})
	}
}
