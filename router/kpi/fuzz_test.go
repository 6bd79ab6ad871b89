package kpi_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/shovel-metrics/shovel/router/kpi"
)

// FuzzSliceJSON checks that whatever names and values a program passes,
// the encoder either refuses them or writes JSON that reads back to
// exactly what was added.
func FuzzSliceJSON(f *testing.F) {
	f.Add("voltha.internal.abc", "rss-mb", 80.5, int64(1480000000123))
	f.Add(`we"ird\obj`, "größe", -1e-9, int64(1))
	f.Add("a\x00b", "c\xff", math.Inf(1), int64(-5))
	f.Fuzz(func(t *testing.T, object, name string, value float64, ms int64) {
		s := kpi.NewSlice(time.UnixMilli(ms)).Add(object, name, value)
		b, err := s.MarshalJSON()
		if err != nil {
			return
		}
		var back struct {
			Type string                        `json:"type"`
			TS   float64                       `json:"ts"`
			Data map[string]map[string]float64 `json:"data"`
		}
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("invalid JSON %s: %v", b, err)
		}
		want := s.Samples()[0]
		if back.Type != "slice" || back.TS != want.Time || len(back.Data) != 1 || len(back.Data[object]) != 1 {
			t.Fatalf("%s read back as %+v", b, back)
		}
		if v, ok := back.Data[object][name]; !ok || v != value {
			t.Fatalf("%s: %q.%q = %v, want %v", b, object, name, v, value)
		}
	})
}
