package outputs

import (
	"context"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

// patience bounds every wait on the network; it only matters when a test
// is about to fail anyway.
const patience = 5 * time.Second

// decodeMap stands in for the core's strict YAML decoding
// (config.decodeStrict): mapstructure with the same hooks, so that nested
// blocks (tls), lists (destinations) and types that decode themselves
// (carbon.Destination) behave as in a real config, and unknown keys are
// errors.
func decodeMap(m map[string]any) metric.DecodeConfig {
	return func(into any) error {
		var md mapstructure.Metadata
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			Result:   into,
			Metadata: &md,
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				mapstructure.StringToTimeDurationHookFunc(),
				mapstructure.StringToSliceHookFunc(","),
			),
		})
		if err != nil {
			return err
		}
		if err := dec.Decode(m); err != nil {
			return err
		}
		if len(md.Unused) > 0 {
			sort.Strings(md.Unused)
			return fmt.Errorf("unknown key %q", strings.Join(md.Unused, ", "))
		}
		return nil
	}
}

type fakeResolver map[string][]string

func (r fakeResolver) Resolve(_ context.Context, service string) ([]string, error) {
	if addrs, ok := r[service]; ok {
		return addrs, nil
	}
	return nil, fmt.Errorf("unknown service %q", service)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// acceptAsync hands over the next connection made to ln.
func acceptAsync(t *testing.T, ln net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		t.Cleanup(func() { c.Close() })
		ch <- c
	}()
	return ch
}

func waitConn(t *testing.T, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c, ok := <-ch:
		require.True(t, ok, "accept failed")
		require.NoError(t, c.SetReadDeadline(time.Now().Add(patience)))
		return c
	case <-time.After(patience):
		t.Fatal("no connection arrived")
		return nil
	}
}

// unpickleSamples reads one pickle frame payload back into samples.
func unpickleSamples(t *testing.T, frame []byte) []metric.Sample {
	t.Helper()
	var v any
	require.NotPanics(t, func() {
		var err error
		v, err = pickle.Loads(string(frame))
		require.NoError(t, err)
	})
	list, ok := v.(*types.List)
	require.True(t, ok, "top level is %T", v)
	var out []metric.Sample
	for i := 0; i < list.Len(); i++ {
		outer := list.Get(i).(*types.Tuple)
		inner := outer.Get(1).(*types.Tuple)
		s := metric.Sample{Path: outer.Get(0).(string), Value: inner.Get(1).(float64)}
		switch ts := inner.Get(0).(type) {
		case int:
			s.Time = float64(ts)
		case float64:
			s.Time = ts
		default:
			t.Fatalf("ts is %T", ts)
		}
		out = append(out, s)
	}
	return out
}

// kpiSamples is a batch like voltha's KPI topics produce.
func kpiSamples(n int) []metric.Sample {
	out := make([]metric.Sample, n)
	for i := range out {
		v := float64(i % 977)
		if i%2 == 1 {
			v = float64(i*7919%100000) / 1000
		}
		out[i] = metric.Sample{
			Path:  fmt.Sprintf("voltha.internal.compose_voltha_%d.%s", i%40, []string{"rss-mb", "cpu-pct", "deferreds"}[i%3]),
			Time:  1700000000 + float64(i/100),
			Value: v,
		}
	}
	out[0].Time += 0.5 // one fractional timestamp, sent as a float
	return out
}

// requireSamples compares bit for bit, so that rounding anywhere shows.
func requireSamples(t *testing.T, want, got []metric.Sample) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].Path, got[i].Path, "sample %d", i)
		require.Equal(t, math.Float64bits(want[i].Time), math.Float64bits(got[i].Time), "ts of sample %d", i)
		require.Equal(t, math.Float64bits(want[i].Value), math.Float64bits(got[i].Value), "value of sample %d", i)
	}
}

// requireError checks err against want, "" meaning no error.
func requireError(t *testing.T, want string, err error) {
	t.Helper()
	if want == "" {
		require.NoError(t, err)
		return
	}
	require.Error(t, err)
	require.Equal(t, want, strings.TrimSpace(err.Error()))
}

// configCase is one row of an output kind's config table: the YAML keys,
// the environment, and the error expected ("" for none).
type configCase struct {
	name string
	cfg  map[string]any
	env  metric.Env
	want string
}

// runConfigCases builds an output of kind from each case's config.
func runConfigCases(t *testing.T, kind string, tests []configCase) {
	t.Helper()
	factory, err := Lookup(kind)
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := factory(decodeMap(tt.cfg), tt.env)
			requireError(t, tt.want, err)
			if err == nil {
				require.NoError(t, out.Close())
			}
		})
	}
}

// newOutput builds an output of kind from cfg and closes it when the test ends.
// connect starts out's dials, which run in the background, and waits until
// it is connected.
func connect(t *testing.T, out metric.Output) {
	t.Helper()
	require.NoError(t, out.Connect(context.Background()))
	require.Eventually(t, out.(metric.Connectivity).Connected, patience, time.Millisecond)
}

// dialOutcome starts out's dial and returns the first Write error that
// tells how it ended, not that it is under way (nil if connected).
func dialOutcome(t *testing.T, out metric.Output, batch []metric.Sample) error {
	t.Helper()
	var err error
	require.Eventually(t, func() bool {
		err = out.Write(context.Background(), batch)
		return err == nil || !strings.HasSuffix(err.Error(), ", connecting")
	}, patience, time.Millisecond)
	return err
}

func newOutput(t *testing.T, kind string, cfg map[string]any, env metric.Env) metric.Output {
	t.Helper()
	factory, err := Lookup(kind)
	require.NoError(t, err)
	out, err := factory(decodeMap(cfg), env)
	require.NoError(t, err)
	t.Cleanup(func() { out.Close() })
	return out
}
