package decoders_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

// goldenReceiveTime is the Kafka time of every golden message, so that a
// sample that takes the receive time has a fixed one.
var goldenReceiveTime = time.Unix(1700000000, 0)

// newDecoder builds a registered decoder the way the router does, with set
// standing in for the YAML sub-tree.
func newDecoder[C any](t testing.TB, name string, set func(*C)) metric.Decoder {
	t.Helper()
	factory, err := decoders.Lookup(name)
	require.NoError(t, err)
	dec, err := factory(func(into any) error {
		if set != nil {
			set(into.(*C))
		}
		return nil
	}, metric.Env{Name: "test"})
	require.NoError(t, err)
	return dec
}

// goldenFiles lists testdata/<dir>/*<ext>.
func goldenFiles(t testing.TB, dir, ext string) []string {
	inputs, err := filepath.Glob(filepath.Join("testdata", dir, "*"+ext))
	require.NoError(t, err)
	require.NotEmpty(t, inputs)
	return inputs
}

// testGolden decodes every testdata/<dir>/*<ext> and compares the result
// with the .golden file beside it (-update rewrites them).
func testGolden(t *testing.T, dec metric.Decoder, dir, ext string) {
	for _, in := range goldenFiles(t, dir, ext) {
		name := strings.TrimSuffix(filepath.Base(in), ext)
		t.Run(name, func(t *testing.T) {
			value, err := os.ReadFile(in)
			require.NoError(t, err)
			var out metric.Result
			err = dec.Decode(&metric.Message{Value: value, Timestamp: goldenReceiveTime}, &out)
			got := render(out, err)
			golden := strings.TrimSuffix(in, ext) + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, rerr := os.ReadFile(golden)
			require.NoError(t, rerr, "run with -update to create it, then review it")
			require.Equal(t, string(want), got)
			if err != nil {
				var re *metric.RejectError
				require.ErrorAs(t, err, &re, "whole-message errors are rejections, counted by reason")
				require.Less(t, len(re.Detail), 120, "detail is for a log line")
				require.Empty(t, out.Samples)
				require.Empty(t, out.Rejected)
			}
			for _, s := range out.Samples {
				require.True(t, metric.ValidPath(s.Path), "path %q", s.Path)
			}
		})
	}
}

// TestDecodersVouchForPaths: every built-in decoder builds its paths with
// the sanitiser, so the router need not check them again
// (metric.CheckedPaths); checkInvariants and FuzzSlice hold them to it.
func TestDecodersVouchForPaths(t *testing.T) {
	for name, dec := range map[string]metric.Decoder{
		"slice":            newDecoder[decoders.SliceConfig](t, "slice", nil),
		"json":             newDecoder(t, "json", onuStats), // it needs its fields
		"carbon-plaintext": newDecoder[decoders.PlaintextConfig](t, "carbon-plaintext", nil),
		"carbon-pickle":    newDecoder[decoders.PickleConfig](t, "carbon-pickle", nil),
		"voltha-event":     newDecoder[decoders.VolthaEventConfig](t, "voltha-event", nil),
		"protobuf":         newDecoder(t, "protobuf", kpiProto(nil)),
	} {
		cp, ok := dec.(metric.CheckedPaths)
		require.True(t, ok && cp.PathsChecked(), name)
	}
}
