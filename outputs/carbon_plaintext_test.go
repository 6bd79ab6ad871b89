package outputs

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

func TestCarbonPlaintextConfig(t *testing.T) {
	require.Equal(t, CarbonPlaintextConfig{
		CarbonConfig: CarbonConfig{
			ConnectTimeout: 5 * time.Second,
			WriteTimeout:   10 * time.Second,
			ReconnectMin:   100 * time.Millisecond,
			ReconnectMax:   30 * time.Second,
		},
	}, NewCarbonPlaintextConfig())

	runConfigCases(t, "carbon-plaintext", []configCase{
		{"host:port", map[string]any{"address": "127.0.0.1:2003"}, metric.Env{}, ""},
		{"service", map[string]any{"address": "@carbon"}, metric.Env{Resolver: fakeResolver{}}, ""},
		{"every key", map[string]any{
			"address": "h:1", "connect_timeout": "1s", "write_timeout": "2s", "reconnect_min": "10ms", "reconnect_max": "1m",
		}, metric.Env{}, ""},
		{"no address", map[string]any{}, metric.Env{}, "carbon-plaintext: address: missing; set host:port or @service"},
		{"bad address", map[string]any{"address": "carbon 2003"}, metric.Env{}, `carbon-plaintext: address: "carbon 2003" is not host:port or @service`},
		{"service without resolver", map[string]any{"address": "@carbon"}, metric.Env{},
			`carbon-plaintext: address: "@carbon" needs a service resolver (Consul), and none is configured`},
		{"zero write_timeout", map[string]any{"address": "h:1", "write_timeout": "0s"}, metric.Env{}, "carbon-plaintext: write_timeout: 0s must be positive"},
		{"max below min", map[string]any{"address": "h:1", "reconnect_max": "1ms"}, metric.Env{},
			"carbon-plaintext: reconnect_max: 1ms is less than reconnect_min 100ms"},
		{"pickle-only key", map[string]any{"address": "h:1", "max_frame_bytes": 8192}, metric.Env{}, `carbon-plaintext: unknown key "max_frame_bytes"`},
	})
}

func TestCarbonKindsRegistered(t *testing.T) {
	for _, kind := range []string{"carbon-pickle", "carbon-plaintext"} {
		require.Contains(t, Kinds(), kind)
		require.NotEmpty(t, Description(kind))
	}
}

func readLines(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	lines := make([]string, n)
	for i := range lines {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		lines[i] = line
	}
	return lines
}

func TestCarbonPlaintextDelivers(t *testing.T) {
	ln := listen(t)
	accepted := acceptAsync(t, ln)
	out := newOutput(t, "carbon-plaintext", map[string]any{"address": ln.Addr().String()}, metric.Env{})
	ctx := context.Background()
	connect(t, out)

	require.NoError(t, out.Write(ctx, []metric.Sample{
		{Path: "voltha.internal.compose_voltha_1.rss-mb", Time: 1700000000, Value: 24.54},
		{Path: "voltha.internal.compose_voltha_1.deferreds", Time: 1700000000.5, Value: 12},
		{Path: "bad path", Time: 1, Value: 1}, // the router never lets this through; the encoder drops it anyway
	}))
	samples := kpiSamples(1000)
	require.NoError(t, out.Write(ctx, samples))

	r := bufio.NewReader(waitConn(t, accepted))
	require.Equal(t, []string{
		"voltha.internal.compose_voltha_1.rss-mb 24.54 1700000000\n",
		"voltha.internal.compose_voltha_1.deferreds 12 1700000000.5\n",
	}, readLines(t, r, 2))
	for i, line := range readLines(t, r, len(samples)) {
		var got metric.Sample
		_, err := fmt.Sscanf(line, "%s %g %g\n", &got.Path, &got.Value, &got.Time)
		require.NoError(t, err, "line %q", line)
		requireSamples(t, samples[i:i+1], []metric.Sample{got})
	}
}

func TestCarbonPlaintextRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	accepted := acceptAsync(t, ln)
	out := newOutput(t, "carbon-plaintext", map[string]any{"address": "@carbon", "reconnect_min": "5ms", "reconnect_max": "20ms"},
		metric.Env{Resolver: fakeResolver{"carbon": {addr}}})
	ctx := context.Background()
	one := []metric.Sample{{Path: "a.b", Time: 1, Value: 2}}

	connect(t, out)
	require.NoError(t, out.Write(ctx, one))
	peer := waitConn(t, accepted)
	require.Equal(t, []string{"a.b 2 1\n"}, readLines(t, bufio.NewReader(peer), 1))

	require.NoError(t, ln.Close())
	require.NoError(t, peer.Close())
	require.Eventually(t, func() bool { return out.Write(ctx, one) != nil }, patience, time.Millisecond)
	require.ErrorIs(t, out.Write(ctx, one), metric.ErrNotConnected)

	var ln2 net.Listener
	require.Eventually(t, func() bool {
		ln2, err = net.Listen("tcp", addr)
		return err == nil
	}, patience, 10*time.Millisecond)
	t.Cleanup(func() { ln2.Close() })
	accepted = acceptAsync(t, ln2)
	require.Eventually(t, func() bool { return out.Write(ctx, one) == nil }, patience, time.Millisecond)
	line := readLines(t, bufio.NewReader(waitConn(t, accepted)), 1)[0]
	require.True(t, strings.HasPrefix(line, "a.b 2 1\n"))
}
