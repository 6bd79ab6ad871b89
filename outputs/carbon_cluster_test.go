package outputs

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon"
	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/metric"
)

// Tests of the destinations, distribution, on_down and tls keys shared by
// carbon-pickle and carbon-plaintext.

// abcPaths are the 120 distinct paths kpiSamples produces, and abcOwners
// the node of each under carbon_ch over ('127.0.0.1', 'a'), ('127.0.0.1',
// 'b'), ('127.0.0.1', 'c'): computed with carbon's own ConsistentHashRing
// (graphite-carbon 1.1.7, carbon/hashing.py, get_node), '0' for a.
// carbon_ch ignores ports, so the ring of three loopback listeners with
// these instance names is that ring whatever ports they get.
const abcOwners = "122222211010020210211202211120001002112212121102012111110101212202210001021020121021101022101201220201121200011012122101"

func abcPaths() []string {
	var paths []string
	for i := range 40 {
		for _, m := range []string{"rss-mb", "cpu-pct", "deferreds"} {
			paths = append(paths, fmt.Sprintf("voltha.internal.compose_voltha_%d.%s", i, m))
		}
	}
	return paths
}

// abcShare is the set of samples of batch that node (0, 1, 2) owns.
func abcShare(t *testing.T, batch []metric.Sample, node int) map[metric.Sample]bool {
	t.Helper()
	owner := map[string]int{}
	for i, p := range abcPaths() {
		owner[p] = int(abcOwners[i] - '0')
	}
	share := map[metric.Sample]bool{}
	for _, s := range batch {
		n, ok := owner[s.Path]
		require.True(t, ok, "no vector for %q", s.Path)
		if n == node {
			share[s] = true
		}
	}
	return share
}

func received(l *carbontest.Listener) map[metric.Sample]bool {
	got := map[metric.Sample]bool{}
	for _, s := range l.Samples() {
		got[metric.Sample{Path: s.Path, Time: s.Time, Value: s.Value}] = true
	}
	return got
}

func abcDestinations(ls []*carbontest.Listener) []any {
	var out []any
	for i, l := range ls {
		out = append(out, map[string]any{"address": l.Addr(), "instance": string(rune('a' + i))})
	}
	return out
}

// TestCarbonPickleCarbonCH is shovel in front of three carbon-caches that
// carbon-relay fed until now: each gets exactly the metrics whose whisper
// files it already holds.
func TestCarbonPickleCarbonCH(t *testing.T) {
	ls := []*carbontest.Listener{carbontest.ListenPickle(t), carbontest.ListenPickle(t), carbontest.ListenPickle(t)}
	out := newOutput(t, "carbon-pickle", map[string]any{
		"destinations": abcDestinations(ls),
		"distribution": "carbon_ch",
	}, metric.Env{})
	connect(t, out)
	batch := kpiSamples(1000)
	require.NoError(t, out.Write(context.Background(), batch))

	total := 0
	for i, l := range ls {
		want := abcShare(t, batch, i)
		require.NotEmpty(t, want)
		total += len(want)
		require.Eventually(t, func() bool { return l.Len() >= len(want) }, patience, time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		require.Equal(t, len(want), l.Len(), "node %c: its share and nothing else", 'a'+i)
		require.Equal(t, want, received(l), "node %c", 'a'+i)
		require.Empty(t, l.Errors())
	}
	require.Equal(t, len(distinctSamples(batch)), total)
}

func distinctSamples(batch []metric.Sample) map[metric.Sample]bool {
	m := map[metric.Sample]bool{}
	for _, s := range batch {
		m[s] = true
	}
	return m
}

// TestCarbonPickleCarbonCHNodeDown is one carbon-cache of three down
// under the default on_down (wait): the output fails the batch, as the
// router's sink expects, and the sink's retries deliver nothing to the
// wrong node; once the node is back, everything is where it belongs.
func TestCarbonPickleCarbonCHNodeDown(t *testing.T) {
	ls := []*carbontest.Listener{carbontest.ListenPickle(t), carbontest.ListenPickle(t), carbontest.ListenPickle(t)}
	out := newOutput(t, "carbon-pickle", map[string]any{
		"destinations":  abcDestinations(ls),
		"distribution":  "carbon_ch",
		"reconnect_min": "10ms",
		"reconnect_max": "40ms",
	}, metric.Env{})
	ctx := context.Background()
	require.NoError(t, out.Connect(ctx))

	addrB := ls[1].Addr()
	ls[1].Close()
	batch := kpiSamples(600)

	// Until b's connection notices the close, a write may still go into
	// its dead socket (the window the README owns up to); after that,
	// while b is down, every attempt of the sink's loop (retry the whole
	// batch until Write succeeds) fails with ErrNotConnected.
	require.Eventually(t, func() bool { return out.Write(ctx, batch) != nil }, patience, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // let the listeners read what was written so far
	before := ls[0].Len()
	deadline := time.Now().Add(300 * time.Millisecond)
	attempts := 0
	for time.Now().Before(deadline) {
		err := out.Write(ctx, batch)
		require.ErrorIs(t, err, metric.ErrNotConnected, "attempt %d", attempts)
		attempts++
		time.Sleep(5 * time.Millisecond)
	}
	require.Greater(t, attempts, 10)
	for _, i := range []int{0, 2} {
		got := received(ls[i])
		want := abcShare(t, batch, i)
		for s := range got {
			require.True(t, want[s], "node %c got %v, which is not its own", 'a'+i, s)
		}
	}
	// The healthy nodes are not flooded with copies while b is down: a
	// node that must dial is written first, and a failure stops the rest.
	time.Sleep(50 * time.Millisecond)
	require.LessOrEqual(t, ls[0].Len()-before, len(abcShare(t, batch, 0)), "copies sent to a while b was down")

	back := carbontest.ListenPickleAt(t, addrB)
	ls[1] = back
	require.Eventually(t, func() bool { return out.Write(ctx, batch) == nil }, patience, 5*time.Millisecond)
	for i, l := range ls {
		want := abcShare(t, batch, i)
		require.Eventually(t, func() bool { return len(received(l)) >= len(want) }, patience, time.Millisecond)
		require.Equal(t, want, received(l), "node %c: everything of its own, nothing else", 'a'+i)
		require.Empty(t, l.Errors())
	}
}

// TestCarbonPlaintextOnDownNext is on_down: next: b's metrics go to the
// next node of their carbon_ch order while b is down.
func TestCarbonPlaintextOnDownNext(t *testing.T) {
	ls := []*carbontest.Listener{carbontest.ListenPlaintext(t), carbontest.ListenPlaintext(t), carbontest.ListenPlaintext(t)}
	ls[1].Close()
	out := newOutput(t, "carbon-plaintext", map[string]any{
		"destinations": abcDestinations(ls),
		"distribution": "carbon_ch",
		"on_down":      "next",
	}, metric.Env{})
	batch := kpiSamples(300)
	batch[0].Time = 1700000000 // plaintext rounds nothing, but keep it simple
	require.Eventually(t, func() bool { return out.Write(context.Background(), batch) == nil }, patience, 5*time.Millisecond)
	got := map[metric.Sample]bool{}
	for _, i := range []int{0, 2} {
		require.Eventually(t, func() bool { return len(received(ls[i])) >= len(abcShare(t, batch, i)) }, patience, time.Millisecond)
		for s := range received(ls[i]) {
			got[s] = true
		}
	}
	require.Eventually(t, func() bool {
		n := 0
		for _, i := range []int{0, 2} {
			n += len(received(ls[i]))
		}
		return n == len(distinctSamples(batch))
	}, patience, time.Millisecond, "b's share moved to a and c, all of it")
}

func TestCarbonPickleMutualTLS(t *testing.T) {
	ca := carbontest.NewCA(t)
	client := ca.Client("shovel")
	l := carbontest.ListenPickleTLS(t, ca.ServerConfig(true))
	ctx := context.Background()
	batch := kpiSamples(50)

	t.Run("with client certificate", func(t *testing.T) {
		out := newOutput(t, "carbon-pickle", map[string]any{"address": l.Addr(), "tls": map[string]any{
			"enabled": true, "ca": ca.CertFile, "cert": client.CertFile, "key": client.KeyFile,
		}}, metric.Env{})
		connect(t, out)
		require.NoError(t, out.Write(ctx, batch))
		require.Eventually(t, func() bool { return l.Len() == len(batch) }, patience, time.Millisecond)
		got := l.Samples()
		for i := range batch {
			require.Equal(t, batch[i], metric.Sample{Path: got[i].Path, Time: got[i].Time, Value: got[i].Value})
		}
	})
	t.Run("server name checked", func(t *testing.T) {
		out := newOutput(t, "carbon-pickle", map[string]any{"address": l.Addr(), "tls": map[string]any{
			"enabled": true, "ca": ca.CertFile, "cert": client.CertFile, "key": client.KeyFile, "server_name": "carbon.example.org",
		}}, metric.Env{})
		err := dialOutcome(t, out, batch)
		require.ErrorIs(t, err, metric.ErrNotConnected)
		require.ErrorContains(t, err, "carbon.example.org")
	})
	t.Run("unknown CA", func(t *testing.T) {
		out := newOutput(t, "carbon-pickle", map[string]any{"address": l.Addr(), "tls": map[string]any{
			"enabled": true, "cert": client.CertFile, "key": client.KeyFile,
		}}, metric.Env{})
		err := dialOutcome(t, out, batch)
		require.ErrorIs(t, err, metric.ErrNotConnected)
		require.ErrorContains(t, err, "certificate")
	})
	t.Run("no client certificate", func(t *testing.T) {
		before := l.Len()
		out := newOutput(t, "carbon-pickle", map[string]any{"address": l.Addr(), "tls": map[string]any{
			"enabled": true, "ca": ca.CertFile,
		}}, metric.Env{})
		// TLS 1.3 clients learn of the rejection only on their first
		// read or write after the handshake; the listener never gets a sample.
		for range 3 {
			if err := out.Write(ctx, batch); err != nil {
				require.ErrorIs(t, err, metric.ErrNotConnected)
			}
		}
		time.Sleep(50 * time.Millisecond)
		require.Equal(t, before, l.Len())
	})
}

func TestCarbonPlaintextTLSInsecure(t *testing.T) {
	ca := carbontest.NewCA(t)
	l := carbontest.ListenPlaintextTLS(t, ca.ServerConfig(false))
	out := newOutput(t, "carbon-plaintext", map[string]any{"address": l.Addr(), "tls": map[string]any{"enabled": true, "insecure_skip_verify": true}}, metric.Env{})
	connect(t, out)
	require.NoError(t, out.Write(context.Background(), kpiSamples(5)))
	require.Eventually(t, func() bool { return l.Len() == 5 }, patience, time.Millisecond)
}

func TestCarbonClusterConfig(t *testing.T) {
	ca := carbontest.NewCA(t)
	client := ca.Client("shovel")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	huge := filepath.Join(t.TempDir(), "huge.pem")
	require.NoError(t, os.WriteFile(huge, make([]byte, carbon.MaxPEMBytes+1), 0o600))

	tests := []struct {
		name string
		cfg  map[string]any
		want string // after "carbon-pickle: " / "carbon-plaintext: "
	}{
		{"destinations", map[string]any{"destinations": []any{"a:1", "b:1"}, "distribution": "any"}, ""},
		{"carbon style instances", map[string]any{"destinations": []any{"h:1:a", "h:2:b"}, "distribution": "carbon_ch",
			"replication_factor": 2, "diverse_replicas": false, "on_down": "next"}, ""},
		{"tls", map[string]any{"address": "h:1", "tls": map[string]any{"enabled": true, "ca": ca.CertFile, "cert": client.CertFile, "key": client.KeyFile, "server_name": "carbon"}}, ""},
		{"tls off", map[string]any{"address": "h:1", "tls": map[string]any{"enabled": false}}, ""},
		{"both", map[string]any{"address": "h:1", "destinations": []any{"h:2"}}, "address: set either address or destinations, not both"},
		{"neither", map[string]any{}, "address: missing; set host:port or @service"},
		{"no distribution", map[string]any{"destinations": []any{"a:1", "b:1"}},
			"distribution: missing; with several destinations set one of all, any, failover, carbon_ch, fnv1a_ch, jump_fnv1a_ch"},
		{"bad destination", map[string]any{"destinations": []any{"a:1", "b:x"}, "distribution": "all"}, `destinations[1].address: "b:x" is not host:port or @service`},
		{"service without resolver", map[string]any{"destinations": []any{"a:1", "@relays"}, "distribution": "any"},
			`destinations[1].address: "@relays" needs a service resolver (Consul), and none is configured`},
		{"unknown tls key", map[string]any{"address": "h:1", "tls": map[string]any{"enabled": true, "verify": false}}, `unknown key "tls.verify"`},
		{"tls keys while disabled", map[string]any{"address": "h:1", "tls": map[string]any{"ca": ca.CertFile}},
			"tls.enabled: is false, but other tls keys are set; set enabled: true or remove them"},
		{"cert without key", map[string]any{"address": "h:1", "tls": map[string]any{"enabled": true, "cert": client.CertFile}},
			"tls.key: missing; tls.cert needs the key that goes with it"},
		{"key without cert", map[string]any{"address": "h:1", "tls": map[string]any{"enabled": true, "key": client.KeyFile}},
			"tls.cert: missing; tls.key needs the certificate that goes with it"},
		{"insecure with ca", map[string]any{"address": "h:1", "tls": map[string]any{"enabled": true, "ca": ca.CertFile, "insecure_skip_verify": true}},
			"tls.insecure_skip_verify: set together with tls.ca, which it would ignore"},
		{"missing ca", map[string]any{"address": "h:1", "tls": map[string]any{"enabled": true, "ca": missing}},
			"tls.ca: stat " + missing + ": no such file or directory"},
		{"ca that never ends", map[string]any{"address": "h:1", "tls": map[string]any{"enabled": true, "ca": "/dev/zero"}},
			"tls.ca: /dev/zero: not a regular file (it is a device, which could block or never end)"},
		{"huge key", map[string]any{"address": "h:1", "tls": map[string]any{"enabled": true, "cert": client.CertFile, "key": huge}},
			"tls.key: " + huge + ": too large: larger than the limit of 1 MiB"},
		{"ca not PEM", map[string]any{"address": "h:1", "tls": map[string]any{"enabled": true, "ca": notPEM}},
			"tls.ca: no PEM certificate in " + notPEM},
		{"key does not match", map[string]any{"address": "h:1", "tls": map[string]any{"enabled": true, "cert": client.CertFile, "key": ca.Client("other").KeyFile}},
			"tls.cert, tls.key: tls: private key does not match public key"},
	}
	for _, kind := range []string{"carbon-pickle", "carbon-plaintext"} {
		factory, err := Lookup(kind)
		require.NoError(t, err)
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				out, err := factory(decodeMap(tt.cfg), metric.Env{})
				if tt.want == "" {
					require.NoError(t, err)
					require.NoError(t, out.Close())
					return
				}
				requireError(t, kind+": "+tt.want, err)
			})
		}
	}
}

// TestCarbonClusterWriteAllocs keeps the hashed write path as frugal as
// the single-address one: no allocation per batch once the buffers have
// grown. The receivers discard what they read, so that their own
// allocations do not count.
func TestCarbonClusterWriteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	var dests []any
	for i := range 3 {
		ln := listen(t)
		srv := carbontest.Serve(ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
		t.Cleanup(srv.Close)
		dests = append(dests, map[string]any{"address": ln.Addr().String(), "instance": string(rune('a' + i))})
	}
	for _, d := range []string{"carbon_ch", "fnv1a_ch", "jump_fnv1a_ch"} {
		t.Run(d, func(t *testing.T) {
			out := newOutput(t, "carbon-pickle", map[string]any{"destinations": dests, "distribution": d, "replication_factor": 2}, metric.Env{})
			connect(t, out)
			ctx := context.Background()
			batch := kpiSamples(500)
			require.NoError(t, out.Write(ctx, batch))
			allocs := testing.AllocsPerRun(20, func() {
				if err := out.Write(ctx, batch); err != nil {
					t.Fatal(err)
				}
			})
			require.Zero(t, allocs)
		})
	}
}
