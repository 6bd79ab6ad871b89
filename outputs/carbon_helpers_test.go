package outputs

import (
	"context"
	"fmt"
	"math"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

// patience bounds every wait on the network; it only matters when a test
// is about to fail anyway.
const patience = 5 * time.Second

// decodeMap stands in for the core's strict YAML decoding: it sets the
// fields whose mapstructure tag matches a key, parses durations from
// strings, and rejects unknown keys. It checks the tags as a side effect.
func decodeMap(m map[string]any) metric.DecodeConfig {
	return func(into any) error {
		v := reflect.ValueOf(into).Elem()
		for key, val := range m {
			field := -1
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).Tag.Get("mapstructure") == key {
					field = i
				}
			}
			if field < 0 {
				return fmt.Errorf("unknown key %q", key)
			}
			f := v.Field(field)
			switch {
			case f.Type() == reflect.TypeFor[time.Duration]():
				d, err := time.ParseDuration(val.(string))
				if err != nil {
					return fmt.Errorf("%s: %w", key, err)
				}
				f.SetInt(int64(d))
			default:
				f.Set(reflect.ValueOf(val))
			}
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
