package carbon

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/metric"
)

// testCluster builds a Cluster that writes plaintext, closed with the test.
func testCluster(t *testing.T, cfg ClusterConfig) *Cluster {
	t.Helper()
	cfg.Conn.ReconnectMin, cfg.Conn.ReconnectMax = 20*time.Millisecond, 50*time.Millisecond
	cfg.Conn.ConnectTimeout, cfg.Conn.WriteTimeout = patience, patience
	require.NoError(t, cfg.Validate())
	c, err := NewCluster(cfg, AppendPlaintext)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// connectAll starts every destination's dial and waits for them to end.
func connectAll(t testing.TB, c *Cluster) {
	t.Helper()
	_ = c.Connect(context.Background())
	for _, conn := range c.conns {
		conn.mu.Lock()
		d := conn.dialing
		conn.mu.Unlock()
		if d != nil {
			select {
			case <-d:
			case <-time.After(patience):
				t.Fatal("a dial did not end")
			}
		}
	}
}

// placement is where a sample with this path goes now.
func (c *Cluster) placement(path string) []int { return c.nodesFor(nil, path) }

func TestClusterConfigValidate(t *testing.T) {
	dests := func(addrs ...string) []Destination {
		var out []Destination
		for _, a := range addrs {
			out = append(out, parseDestination(a))
		}
		return out
	}
	yes := true
	conn := ConnConfig{ConnectTimeout: time.Second, WriteTimeout: time.Second, ReconnectMin: time.Second, ReconnectMax: time.Second}
	tests := []struct {
		name string
		cfg  ClusterConfig
		want string
	}{
		{"single address", ClusterConfig{Conn: withAddress(conn, "h:1")}, ""},
		{"one destination needs no distribution", ClusterConfig{Conn: conn, Destinations: dests("h:1")}, ""},
		{"all", ClusterConfig{Conn: conn, Destinations: dests("a:1", "b:1", "@relays"), Distribution: DistributeAll, OnDown: OnDownNext}, ""},
		{"carbon_ch with instances", ClusterConfig{Conn: conn, Destinations: dests("h:1:a", "h:2:b"), Distribution: DistributeCarbonCH, ReplicationFactor: 2, DiverseReplicas: &yes}, ""},
		{"fnv1a_ch same host other ports", ClusterConfig{Conn: conn, Destinations: dests("h:1", "h:2"), Distribution: DistributeFNV1aCH}, ""},
		{"jump", ClusterConfig{Conn: conn, Destinations: dests("h:1", "g:1"), Distribution: DistributeJumpFNV1aCH, OnDown: OnDownWait}, ""},
		{"neither", ClusterConfig{Conn: conn}, "address: missing; set host:port or @service"},
		{"both", ClusterConfig{Conn: withAddress(conn, "h:1"), Destinations: dests("h:2")}, "address: set either address or destinations, not both"},
		{"distribution without destinations", ClusterConfig{Conn: withAddress(conn, "h:1"), Distribution: DistributeAll},
			"distribution: needs destinations; a single address has nothing to distribute over"},
		{"on_down without destinations", ClusterConfig{Conn: withAddress(conn, "h:1"), OnDown: OnDownNext}, "on_down: needs destinations"},
		{"no distribution", ClusterConfig{Conn: conn, Destinations: dests("a:1", "b:1")},
			"distribution: missing; with several destinations set one of all, any, failover, carbon_ch, fnv1a_ch, jump_fnv1a_ch"},
		{"unknown distribution", ClusterConfig{Conn: conn, Destinations: dests("a:1", "b:1"), Distribution: "consistent-hashing"},
			`distribution: "consistent-hashing" is not one of all, any, failover, carbon_ch, fnv1a_ch, jump_fnv1a_ch`},
		{"bad destination", ClusterConfig{Conn: conn, Destinations: dests("a:1", "b"), Distribution: DistributeAll},
			`destinations[1].address: "b" is not host:port or @service`},
		{"replication without hashing", ClusterConfig{Conn: conn, Destinations: dests("a:1", "b:1"), Distribution: DistributeAll, ReplicationFactor: 2},
			`replication_factor: only applies to carbon_ch, fnv1a_ch and jump_fnv1a_ch, not "all"`},
		{"replication above destinations", ClusterConfig{Conn: conn, Destinations: dests("a:1", "b:1"), Distribution: DistributeFNV1aCH, ReplicationFactor: 3},
			"replication_factor: 3 is not from 1 to the 2 destinations"},
		{"diverse without carbon_ch", ClusterConfig{Conn: conn, Destinations: dests("a:1", "b:1"), Distribution: DistributeFNV1aCH, DiverseReplicas: &yes},
			`diverse_replicas: only applies to carbon_ch, not "fnv1a_ch"`},
		{"bad on_down", ClusterConfig{Conn: conn, Destinations: dests("a:1", "b:1"), Distribution: DistributeCarbonCH, OnDown: "skip"},
			`on_down: "skip" is not wait or next`},
		{"on_down with failover", ClusterConfig{Conn: conn, Destinations: dests("a:1", "b:1"), Distribution: DistributeFailover, OnDown: OnDownWait},
			"on_down: has no effect with distribution failover, which always skips destinations that are down"},
		{"instance without hashing", ClusterConfig{Conn: conn, Destinations: dests("a:1:x", "b:1"), Distribution: DistributeAny},
			"destinations[0].instance: only used by carbon_ch, fnv1a_ch and jump_fnv1a_ch"},
		{"bad instance", ClusterConfig{Conn: conn, Destinations: []Destination{{Address: "a:1", Instance: "it's"}, {Address: "b:1"}}, Distribution: DistributeCarbonCH},
			`destinations[0].instance: "it's": use letters, digits, '_', '-' and '.' only`},
		{"service on a ring", ClusterConfig{Conn: conn, Destinations: dests("a:1", "@relays"), Distribution: DistributeJumpFNV1aCH},
			`destinations[1].address: "@relays": a node of a hash ring must be one host:port, not a service`},
		{"carbon_ch ignores ports", ClusterConfig{Conn: conn, Destinations: dests("h:1", "h:2"), Distribution: DistributeCarbonCH},
			"destinations[1]: same host as destinations[0]; carbon_ch ignores ports, so give each an instance"},
		{"carbon_ch same instance", ClusterConfig{Conn: conn, Destinations: dests("h:1:a", "h:2:a"), Distribution: DistributeCarbonCH},
			"destinations[1]: same node as destinations[0]"},
		{"fnv1a_ch same instance", ClusterConfig{Conn: conn, Destinations: dests("h:1:a", "g:2:a"), Distribution: DistributeFNV1aCH},
			"destinations[1]: same node as destinations[0]"},
		{"quote in a carbon_ch host", ClusterConfig{Conn: conn, Destinations: []Destination{{Address: "it's:1"}, {Address: "b:1"}}, Distribution: DistributeCarbonCH},
			`destinations[0].address: "it's:1": a quote or backslash in the host would not hash as carbon's does`},
		{"duplicate", ClusterConfig{Conn: conn, Destinations: dests("h:1", "h:1"), Distribution: DistributeFailover},
			"destinations[1]: same node as destinations[0]"},
		{"durations still checked", ClusterConfig{Conn: ConnConfig{}, Destinations: dests("h:1")}, "connect_timeout: 0s must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.want)
		})
	}
}

func withAddress(c ConnConfig, addr string) ConnConfig {
	c.Address = addr
	return c
}

func TestDestinationDecodes(t *testing.T) {
	var got struct {
		Destinations []Destination `mapstructure:"destinations"`
	}
	require.NoError(t, mapstructure.Decode(map[string]any{"destinations": []any{
		"a:2004",
		"b:2004:x",
		"[::1]:2004",
		"[::1]:2004:y",
		map[string]any{"address": "c:2004", "instance": "z"},
		map[string]any{"address": "d:2004", "instance": 7},
	}}, &got))
	require.Equal(t, []Destination{
		{Address: "a:2004"}, {Address: "b:2004", Instance: "x"}, {Address: "[::1]:2004"},
		{Address: "[::1]:2004", Instance: "y"}, {Address: "c:2004", Instance: "z"}, {Address: "d:2004", Instance: "7"},
	}, got.Destinations)

	err := mapstructure.Decode(map[string]any{"destinations": []any{map[string]any{"adress": "c:2004"}}}, &got)
	require.ErrorContains(t, err, "'destinations[0]' adress: unknown key (known keys here: address, instance)")
	err = mapstructure.Decode(map[string]any{"destinations": []any{[]any{"x"}}}, &got)
	require.ErrorContains(t, err, "'destinations[0]' must be host:port, host:port:instance or {address, instance}, got []interface {}")
}

// samplesFor makes one sample per path.
func samplesFor(paths []string) []metric.Sample {
	out := make([]metric.Sample, len(paths))
	for i, p := range paths {
		out[i] = metric.Sample{Path: p, Time: 1700000000, Value: float64(i)}
	}
	return out
}

func pathsOf(s []carbontest.Sample) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i].Path
	}
	return out
}

func waitLen(t *testing.T, l *carbontest.Listener, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return l.Len() >= n }, patience, time.Millisecond, "listener %s has %d samples, want %d", l.Addr(), l.Len(), n)
	time.Sleep(20 * time.Millisecond) // and no more
	require.Equal(t, n, l.Len())
}

func TestClusterAll(t *testing.T) {
	for _, onDown := range []OnDown{OnDownWait, OnDownNext} {
		t.Run(string(onDown), func(t *testing.T) {
			ls := []*carbontest.Listener{carbontest.ListenPlaintext(t), carbontest.ListenPlaintext(t), carbontest.ListenPlaintext(t)}
			c := testCluster(t, ClusterConfig{Destinations: listenerDests(ls...), Distribution: DistributeAll, OnDown: onDown})
			ctx := context.Background()
			require.NoError(t, c.Connect(ctx))
			connectAll(t, c)
			_, err := c.Write(ctx, samplesFor(vectorPaths))
			require.NoError(t, err)
			for _, l := range ls {
				waitLen(t, l, len(vectorPaths))
			}

			require.True(t, c.Connected())
			ls[1].Close()
			require.Eventually(t, func() bool { return !c.conns[1].Connected() }, patience, time.Millisecond)
			require.Equal(t, onDown == OnDownNext, c.Connected(), "all + wait needs every destination")
			_, err = c.Write(ctx, samplesFor(vectorPaths[:2]))
			want := len(vectorPaths) + 2
			if onDown == OnDownWait {
				require.ErrorIs(t, err, metric.ErrNotConnected, "all + wait: every destination must take it")
				// While the down one is down, the others are not written
				// to: they would only get the batch again on the retry.
				_, err = c.Write(ctx, samplesFor(vectorPaths[:2]))
				require.ErrorIs(t, err, metric.ErrNotConnected)
				want = len(vectorPaths)
			} else {
				require.NoError(t, err, "all + next: the others suffice")
			}
			waitLen(t, ls[0], want)
			waitLen(t, ls[2], want)
		})
	}
}

func distinct(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func listenerDests(ls ...*carbontest.Listener) []Destination {
	out := make([]Destination, len(ls))
	for i, l := range ls {
		out[i] = Destination{Address: l.Addr()}
	}
	return out
}

func TestClusterAny(t *testing.T) {
	ls := []*carbontest.Listener{carbontest.ListenPlaintext(t), carbontest.ListenPlaintext(t), carbontest.ListenPlaintext(t)}
	c := testCluster(t, ClusterConfig{Destinations: listenerDests(ls...), Distribution: DistributeAny})
	ctx := context.Background()
	connectAll(t, c)
	for i := range 6 {
		_, err := c.Write(ctx, samplesFor(vectorPaths[i:i+1]))
		require.NoError(t, err)
	}
	for _, l := range ls {
		waitLen(t, l, 2) // in turn
	}
	ls[0].Close()
	require.Eventually(t, func() bool { return !c.conns[0].Connected() }, patience, time.Millisecond)
	require.True(t, c.Connected(), "any needs one destination")
	for i := range 4 {
		_, err := c.Write(ctx, samplesFor(vectorPaths[i:i+1]))
		require.NoError(t, err, "any skips the one that is down")
	}
	waitLen(t, ls[1], 4)
	waitLen(t, ls[2], 4)
}

func TestClusterFailover(t *testing.T) {
	ls := []*carbontest.Listener{carbontest.ListenPlaintext(t), carbontest.ListenPlaintext(t)}
	c := testCluster(t, ClusterConfig{Destinations: listenerDests(ls...), Distribution: DistributeFailover})
	ctx := context.Background()
	connectAll(t, c)
	write := func() {
		t.Helper()
		_, err := c.Write(ctx, samplesFor(vectorPaths[:1]))
		require.NoError(t, err)
	}
	write()
	write()
	waitLen(t, ls[0], 2)
	addr := ls[0].Addr()
	ls[0].Close()
	require.Eventually(t, func() bool { return !c.conns[0].Connected() }, patience, time.Millisecond)
	write()
	waitLen(t, ls[1], 1)

	back := carbontest.ListenPlaintextAt(t, addr)
	require.Eventually(t, func() bool {
		write()
		return back.Len() > 0
	}, patience, 10*time.Millisecond, "failover returns to the first destination once it is back")

	ls[1].Close()
	back.Close()
	require.Eventually(t, func() bool {
		_, err := c.Write(ctx, samplesFor(vectorPaths[:1]))
		return errors.Is(err, metric.ErrNotConnected)
	}, patience, 10*time.Millisecond, "with both down, failover fails")
}

func TestClusterHashedOnDownNext(t *testing.T) {
	ls := []*carbontest.Listener{carbontest.ListenPlaintext(t), carbontest.ListenPlaintext(t), carbontest.ListenPlaintext(t)}
	dests := listenerDests(ls...)
	for i, inst := range []string{"a", "b", "c"} {
		dests[i].Instance = inst
	}
	c := testCluster(t, ClusterConfig{Destinations: dests, Distribution: DistributeCarbonCH, OnDown: OnDownNext})
	ctx := context.Background()
	ls[1].Close()
	require.Eventually(t, func() bool {
		_, err := c.Write(ctx, samplesFor(vectorPaths))
		return err == nil
	}, patience, 10*time.Millisecond)
	// Each path goes to the first node of its carbon order that is up.
	want := map[int][]string{}
	for _, v := range oneHostABCOrders {
		node := v.order[0]
		if node == 1 {
			node = v.order[1]
		}
		want[node] = append(want[node], v.path)
	}
	require.Empty(t, want[1])
	// A node written to before b was known to be down gets its part again
	// when the batch is split anew without b: duplicates, never
	// misplacements.
	require.Eventually(t, func() bool {
		return len(distinct(pathsOf(ls[0].Samples())))+len(distinct(pathsOf(ls[2].Samples()))) == len(vectorPaths)
	}, patience, time.Millisecond)
	for _, i := range []int{0, 2} {
		require.ElementsMatch(t, want[i], distinct(pathsOf(ls[i].Samples())))
	}

	ls[0].Close()
	ls[2].Close()
	require.Eventually(t, func() bool {
		_, err := c.Write(ctx, samplesFor(vectorPaths))
		return err != nil && errors.Is(err, metric.ErrNotConnected)
	}, patience, 10*time.Millisecond, "with every node down, next has nowhere to go")
}

func TestConnTLSFailsOnPlainListener(t *testing.T) {
	l := carbontest.ListenPlaintext(t)
	cfg := TLSConfig{Enabled: true}
	tc, err := cfg.Build()
	require.NoError(t, err)
	c := newConn(t, ConnConfig{Kind: "carbon-plaintext", Address: l.Addr(), TLS: tc, ConnectTimeout: time.Second})
	err = connectNow(t, c)
	require.ErrorIs(t, err, metric.ErrNotConnected)
	require.Contains(t, err.Error(), "carbon-plaintext: dial "+l.Addr()+": ")
}

func BenchmarkClusterWriteHashed(b *testing.B) {
	// Receivers that discard, so that only the writer's allocations count.
	dests := make([]Destination, 3)
	for i := range dests {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(b, err)
		srv := carbontest.Serve(ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
		b.Cleanup(srv.Close)
		dests[i] = Destination{Address: ln.Addr().String(), Instance: string(rune('a' + i))}
	}
	samples := make([]metric.Sample, 5000)
	for i := range samples {
		samples[i] = metric.Sample{Path: "voltha.internal.compose_voltha_" + string(rune('a'+i%26)) + ".rss-mb", Time: 1700000000, Value: float64(i)}
	}
	for _, d := range []Distribution{DistributeCarbonCH, DistributeFNV1aCH, DistributeJumpFNV1aCH} {
		b.Run(string(d), func(b *testing.B) {
			c, err := NewCluster(ClusterConfig{Destinations: dests, Distribution: d}, func(dst []byte, s []metric.Sample) ([]byte, int) {
				return AppendPickle(dst, s, 0)
			})
			require.NoError(b, err)
			defer c.Close()
			ctx := context.Background()
			connectAll(b, c)
			_, err = c.Write(ctx, samples) // size the buffers
			require.NoError(b, err)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(ctx, samples); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
