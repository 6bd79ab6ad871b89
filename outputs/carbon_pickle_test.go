package outputs

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon"
	"github.com/shovel-metrics/shovel/router/metric"
)

func TestCarbonPickleConfig(t *testing.T) {
	require.Equal(t, CarbonPickleConfig{
		CarbonConfig: CarbonConfig{
			ConnectTimeout: 5 * time.Second,
			WriteTimeout:   10 * time.Second,
			ReconnectMin:   100 * time.Millisecond,
			ReconnectMax:   30 * time.Second,
		},
		MaxFrameBytes: carbon.DefaultPickleFrame,
	}, NewCarbonPickleConfig())

	resolver := metric.Env{Resolver: fakeResolver{}}
	runConfigCases(t, "carbon-pickle", []configCase{
		{"host:port", map[string]any{"address": "127.0.0.1:2004"}, metric.Env{}, ""},
		{"hostname", map[string]any{"address": "carbon.example.org:2004"}, metric.Env{}, ""},
		{"ipv6", map[string]any{"address": "[::1]:2004"}, metric.Env{}, ""},
		{"service", map[string]any{"address": "@carbon-relay"}, resolver, ""},
		{"every key", map[string]any{
			"address": "h:1", "connect_timeout": "1s", "write_timeout": "2s",
			"reconnect_min": "10ms", "reconnect_max": "10ms", "max_frame_bytes": carbon.MaxPickleFrame,
		}, metric.Env{}, ""},
		{"no address", map[string]any{}, metric.Env{}, "carbon-pickle: address: missing; set host:port or @service"},
		{"no port", map[string]any{"address": "carbon"}, metric.Env{}, `carbon-pickle: address: "carbon" is not host:port or @service`},
		{"no host", map[string]any{"address": ":2004"}, metric.Env{}, `carbon-pickle: address: ":2004" is not host:port or @service`},
		{"port 0", map[string]any{"address": "h:0"}, metric.Env{}, `carbon-pickle: address: "h:0" is not host:port or @service`},
		{"port too big", map[string]any{"address": "h:65536"}, metric.Env{}, `carbon-pickle: address: "h:65536" is not host:port or @service`},
		{"named port", map[string]any{"address": "h:carbon"}, metric.Env{}, `carbon-pickle: address: "h:carbon" is not host:port or @service`},
		{"empty service", map[string]any{"address": "@"}, resolver, `carbon-pickle: address: "@" is not host:port or @service`},
		{"service without resolver", map[string]any{"address": "@carbon"}, metric.Env{},
			`carbon-pickle: address: "@carbon" needs a service resolver (Consul), and none is configured`},
		{"zero connect_timeout", map[string]any{"address": "h:1", "connect_timeout": "0s"}, metric.Env{}, "carbon-pickle: connect_timeout: 0s must be positive"},
		{"negative write_timeout", map[string]any{"address": "h:1", "write_timeout": "-1s"}, metric.Env{}, "carbon-pickle: write_timeout: -1s must be positive"},
		{"zero reconnect_min", map[string]any{"address": "h:1", "reconnect_min": "0s"}, metric.Env{}, "carbon-pickle: reconnect_min: 0s must be positive"},
		{"max below min", map[string]any{"address": "h:1", "reconnect_min": "2s", "reconnect_max": "1s"}, metric.Env{},
			"carbon-pickle: reconnect_max: 1s is less than reconnect_min 2s"},
		{"frame too big", map[string]any{"address": "h:1", "max_frame_bytes": carbon.MaxPickleFrame + 1}, metric.Env{},
			"carbon-pickle: max_frame_bytes: 1048577 is above 1048576, the largest frame Carbon accepts"},
		{"frame too small", map[string]any{"address": "h:1", "max_frame_bytes": 100}, metric.Env{},
			"carbon-pickle: max_frame_bytes: 100 is below 8192, too small for a sample with a long path"},
		{"unknown key", map[string]any{"address": "h:1", "adress": "h:2"}, metric.Env{}, `carbon-pickle: unknown key "adress"`},
	})
}

func TestCarbonPickleLongestPathFitsSmallestFrame(t *testing.T) {
	s := []metric.Sample{{Path: string(make([]byte, metric.MaxPathLen)), Time: 1.5, Value: 1}}
	buf, skipped := carbon.AppendPickle(nil, s, minPickleFrame)
	require.Zero(t, skipped)
	require.NotEmpty(t, buf)
}

// readPickleSamples reads frames from c until it has n samples.
func readPickleSamples(t *testing.T, c net.Conn, n, maxFrame int) []metric.Sample {
	t.Helper()
	var got []metric.Sample
	for len(got) < n {
		var head [4]byte
		_, err := io.ReadFull(c, head[:])
		require.NoError(t, err)
		size := int(binary.BigEndian.Uint32(head[:]))
		require.LessOrEqual(t, size, maxFrame)
		frame := make([]byte, size)
		_, err = io.ReadFull(c, frame)
		require.NoError(t, err)
		got = append(got, unpickleSamples(t, frame)...)
	}
	return got
}

func TestCarbonPickleDelivers(t *testing.T) {
	ln := listen(t)
	accepted := acceptAsync(t, ln)
	out := newOutput(t, "carbon-pickle", map[string]any{"address": ln.Addr().String(), "max_frame_bytes": minPickleFrame}, metric.Env{})
	ctx := context.Background()

	connect(t, out)
	samples := kpiSamples(1000) // several frames at this frame size
	require.NoError(t, out.Write(ctx, samples))
	require.NoError(t, out.Write(ctx, samples[:3]), "the buffer is reused")
	require.NoError(t, out.Write(ctx, nil))

	peer := waitConn(t, accepted)
	requireSamples(t, samples, readPickleSamples(t, peer, 1000, minPickleFrame))
	requireSamples(t, samples[:3], readPickleSamples(t, peer, 3, minPickleFrame))
}

func TestCarbonPickleService(t *testing.T) {
	ln := listen(t)
	accepted := acceptAsync(t, ln)
	out := newOutput(t, "carbon-pickle", map[string]any{"address": "@carbon"},
		metric.Env{Resolver: fakeResolver{"carbon": {ln.Addr().String()}}})

	samples := kpiSamples(10)
	connect(t, out)
	require.NoError(t, out.Write(context.Background(), samples))
	requireSamples(t, samples, readPickleSamples(t, waitConn(t, accepted), 10, carbon.DefaultPickleFrame))
}

// TestCarbonPickleRestart is Carbon going away and coming back on the same
// port: writes fail with ErrNotConnected meanwhile, then go through again.
func TestCarbonPickleRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	accepted := acceptAsync(t, ln)
	out := newOutput(t, "carbon-pickle", map[string]any{"address": addr, "reconnect_min": "5ms", "reconnect_max": "20ms"}, metric.Env{})
	ctx := context.Background()
	samples := kpiSamples(5)

	connect(t, out)
	require.NoError(t, out.Write(ctx, samples))
	peer := waitConn(t, accepted)
	requireSamples(t, samples, readPickleSamples(t, peer, 5, carbon.DefaultPickleFrame))

	require.NoError(t, ln.Close())
	require.NoError(t, peer.Close())
	// Until the reader notices the close, a write may still go into the
	// dead socket; after that every write fails.
	require.Eventually(t, func() bool {
		return out.Write(ctx, samples) != nil
	}, patience, time.Millisecond)
	for range 3 {
		require.ErrorIs(t, out.Write(ctx, samples), metric.ErrNotConnected)
	}

	var ln2 net.Listener
	require.Eventually(t, func() bool {
		ln2, err = net.Listen("tcp", addr)
		return err == nil
	}, patience, 10*time.Millisecond)
	t.Cleanup(func() { ln2.Close() })
	accepted = acceptAsync(t, ln2)

	require.Eventually(t, func() bool {
		err := out.Write(ctx, samples)
		if err != nil {
			require.ErrorIs(t, err, metric.ErrNotConnected)
		}
		return err == nil
	}, patience, time.Millisecond)
	requireSamples(t, samples, readPickleSamples(t, waitConn(t, accepted), 5, carbon.DefaultPickleFrame))
}

func TestCarbonPickleWriteTimeout(t *testing.T) {
	ln := listen(t)
	accepted := acceptAsync(t, ln)
	out := newOutput(t, "carbon-pickle", map[string]any{"address": ln.Addr().String(), "write_timeout": "200ms"}, metric.Env{})
	ctx := context.Background()
	connect(t, out)
	waitConn(t, accepted) // and never read

	// Batches of about 8 MB until the socket buffers of both ends are full
	// and a write waits out its deadline: a handful on a host with large
	// buffers, and never more than 16 × 200ms.
	samples := make([]metric.Sample, 2000)
	for i := range samples {
		samples[i] = metric.Sample{Path: string(make([]byte, 4000)), Time: float64(i), Value: 1}
	}
	start := time.Now()
	var err error
	for i := 0; i < 16 && err == nil; i++ {
		err = out.Write(ctx, samples)
	}
	require.Less(t, time.Since(start), patience)
	require.ErrorIs(t, err, metric.ErrNotConnected)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.EqualError(t, err, "carbon-pickle: write "+ln.Addr().String()+": i/o timeout")
}

func TestCarbonPickleCancel(t *testing.T) {
	out := newOutput(t, "carbon-pickle", map[string]any{"address": "127.0.0.1:1"}, metric.Env{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := out.Write(ctx, kpiSamples(1))
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, metric.ErrNotConnected)
}
