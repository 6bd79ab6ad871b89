package router_test

// FuzzHandle feeds arbitrary Kafka messages through a real router with the
// real decoders: whatever the bytes, Handle must not panic, must
// acknowledge the message exactly once, and must hand outputs only samples
// that Carbon can carry safely, no more of them than the message's output
// budget. It lives in the external test package
// because the decoders import router packages; router itself cannot
// import them.

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router"
	"github.com/shovel-metrics/shovel/router/metric"
)

// checkingOutput fails the fuzz target (through bad) on any sample an
// output must never see.
type checkingOutput struct {
	mu    sync.Mutex
	bad   []string
	bytes int // what the samples written since takeBad cost (metric.Cost)
}

func (o *checkingOutput) Connect(context.Context) error { return nil }
func (o *checkingOutput) Close() error                  { return nil }
func (o *checkingOutput) Write(_ context.Context, samples []metric.Sample) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range samples {
		o.bytes += metric.Cost(&s)
		switch {
		case !metric.ValidPath(s.Path):
			o.bad = append(o.bad, fmt.Sprintf("unsafe path %q", s.Path))
		case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
			o.bad = append(o.bad, fmt.Sprintf("%s: non-finite value %v", s.Path, s.Value))
		case math.IsNaN(s.Time) || math.IsInf(s.Time, 0) || s.Time < 0:
			o.bad = append(o.bad, fmt.Sprintf("%s: bad timestamp %v", s.Path, s.Time))
		}
	}
	return nil
}

// takeBad returns what was bad and what was written since the last call.
func (o *checkingOutput) takeBad() ([]string, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	bad, bytes := o.bad, o.bytes
	o.bad, o.bytes = nil, 0
	return bad, bytes
}

// fuzzRouter routes topic "<decoder>" to that registered decoder, for every
// decoder that builds with its defaults, and topic "typed" by the
// message's "type" to slice. Any other topic matches no route.
func fuzzRouter(f *testing.F, out *checkingOutput) (*router.Router, []string) {
	var routes []router.Route
	var topics []string
	for _, name := range decoders.Names() {
		factory, err := decoders.Lookup(name)
		if err != nil {
			f.Fatal(err)
		}
		dec, err := factory(nil, metric.Env{Name: name})
		if err != nil {
			f.Logf("decoder %s needs a config; not fuzzed: %v", name, err)
			continue
		}
		m, err := router.NewMatch("", name, nil)
		if err != nil {
			f.Fatal(err)
		}
		routes = append(routes, router.Route{Match: m, Decoder: dec, DecoderName: name, Outputs: []string{"out"}})
		topics = append(topics, name)
	}
	slice, err := decoders.Lookup("slice")
	if err != nil {
		f.Fatal(err)
	}
	dec, err := slice(nil, metric.Env{Name: "slice"})
	if err != nil {
		f.Fatal(err)
	}
	m, err := router.NewMatch("slice", "typed", nil)
	if err != nil {
		f.Fatal(err)
	}
	routes = append(routes, router.Route{Match: m, Decoder: dec, DecoderName: "slice", Outputs: []string{"out"}})
	// Rules run after the decoder: what they add is held to the budget too.
	if m, err = router.NewMatch("", "prefixed", nil); err != nil {
		f.Fatal(err)
	}
	routes = append(routes, router.Route{Match: m, Decoder: dec, DecoderName: "slice", Outputs: []string{"out"},
		Rules: []router.Rule{{AddPrefix: strings.Repeat("p", 200)}, {AddTag: "k=" + strings.Repeat("v", 100)}}})
	topics = append(topics, "typed", "prefixed", "unrouted")

	r, err := router.New(router.Config{
		Routes: routes,
		// A batch of one sample is written at once, so that each input's
		// acknowledgement comes before the next input.
		Outputs: []router.OutputConfig{{Name: "out", Output: out, BatchSize: 1, FlushInterval: time.Millisecond, QueueSize: 4}},
	})
	if err != nil {
		f.Fatal(err)
	}
	r.Start(context.Background())
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			f.Error(err)
		}
	})
	return r, topics
}

func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		`{"type":"slice","ts":1480000000,"data":{"voltha.internal.abc":{"deferreds":12,"rss-mb":80}}}`,
		`{"type":"slice","ts":1480000000.5,"data":{"a b":{"c\nd":1,"":2,"e..f":3,"n":null,"s":"12","t":true}}}`,
		`{"type":"slice","ts":1480000000,"data":{"x":{"y":1e999,"z":"NaN","w":"-Inf"}}}`,
		`{"type":"slice","ts":-1,"data":{"x":{"y":1}}}`,
		`{"type":"slice","ts":"1480000000","data":[]}`,
		`{"type":"slice","ts":1480000000,"data":{"a":{"b":1}},}`,
		`{"type":"slice","ts":1480000000,"data":{"a":{"b":1`,
		`{"type":"slice","prefixes":{"a":{"metrics":{"b":1}}}}`,
		`{"type":"slice","slice_data":[{"metrics":{"m":1},"context":{"k":"v"}}]}`,
		`{"type":7}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`,
		"a.b.c 1 1480000000\nd.e 2 1480000001\n",
		"\xff\xfe\x00",
		"",
	} {
		for which := range uint8(8) {
			f.Add(which, []byte(seed))
		}
	}
	// 400 one-letter names: on the "prefixed" route, its rules would make
	// them 140 KB, past the 64 KiB the message's size allows.
	var names strings.Builder
	for i := range 400 {
		fmt.Fprintf(&names, `,"%c%c":%d`, 'a'+i%26, 'a'+i/26, i)
	}
	for which := range uint8(8) {
		f.Add(which, []byte(`{"type":"slice","ts":1480000000,"data":{"a":{"x":0`+names.String()+`}}}`))
	}
	out := &checkingOutput{}
	r, topics := fuzzRouter(f, out)
	var offset int64
	f.Fuzz(func(t *testing.T, which uint8, value []byte) {
		offset++
		msg := &metric.Message{Topic: topics[int(which)%len(topics)], Offset: offset, Value: value}
		acked := make(chan struct{})
		// A second acknowledgement closes acked twice and panics.
		if err := r.Handle(context.Background(), msg, func() { close(acked) }); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		select {
		case <-acked:
		case <-time.After(10 * time.Second):
			t.Fatalf("message on %s never acknowledged", msg.Topic)
		}
		bad, written := out.takeBad()
		if len(bad) > 0 {
			t.Fatalf("topic %s, value %q: %v", msg.Topic, value, bad)
		}
		// What reaches the output is within the message's output budget.
		if budget := metric.DefaultOutputLimits().Budget(msg.Size()); written > budget {
			t.Fatalf("topic %s, value %q: %d bytes written, output budget %d", msg.Topic, value, written, budget)
		}
	})
}
