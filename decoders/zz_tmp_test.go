package decoders_test

import (
	"testing"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

func BenchmarkZZArena(bm *testing.B) {
	dec := newDecoder[decoders.PickleConfig](bm, "carbon-pickle", nil)
	b := []byte{0x80, 2, ']'}
	for len(b) < 1<<20-6 {
		b = append(b, 'N', 'N', 'N', 0x87, 'a')
	}
	b = append(b, '.')
	bm.ReportAllocs()
	for bm.Loop() {
		out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(len(b))}
		_ = dec.Decode(&metric.Message{Value: b}, &out)
	}
}
