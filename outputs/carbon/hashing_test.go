package carbon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// vectorPaths are the metric paths of every test vector below, one of
// them with non-ASCII UTF-8 (sign-extended bytes in carbon-c-relay's FNV-1a).
var vectorPaths = []string{
	"voltha.internal.abc.deferreds", "voltha.internal.abc.rss-mb", "carbon.agents.host1.cpuUsage",
	"a", "servers.web01.load.shortterm", "métrique.été", "x.y.z.0", "x.y.z.1", "x.y.z.2", "x.y.z.3",
}

type ringVector struct {
	path  string
	order []int // indexes into the ring's nodes, most preferred first
}

func requireOrders(t *testing.T, r ring, n int, want []ringVector) {
	t.Helper()
	require.Len(t, want, len(vectorPaths))
	for _, v := range want {
		require.Equal(t, v.order, r.appendOrder(nil, v.path, n), "order of %q", v.path)
		require.Equal(t, v.order[:1], r.appendOrder(nil, v.path, 1), "owner of %q", v.path)
	}
}

var (
	threeHosts = []RingNode{{Host: "10.0.0.1", Port: 2003}, {Host: "10.0.0.2", Port: 2003}, {Host: "10.0.0.3", Port: 2003}}
	oneHostABC = []RingNode{{Host: "127.0.0.1", Instance: "a"}, {Host: "127.0.0.1", Instance: "b"}, {Host: "127.0.0.1", Instance: "c"}}
)

// The carbon_ch vectors were computed with carbon's own code: Debian's
// graphite-carbon 1.1.7, lib/carbon/hashing.py ConsistentHashRing
// (get_nodes for the order; the ring's (position, node) list for the
// digest) and lib/carbon/routers.py ConsistentHashingRouter for
// replication. TestCarbonRingMatchesPython recomputes them when carbon
// is installed.
func TestCarbonRing(t *testing.T) {
	t.Run("three hosts without instances", func(t *testing.T) {
		r := newCarbonRing(threeHosts)
		// This ring has one position collision, which carbon resolves by
		// moving the later point up by one.
		require.Equal(t, "d18f769ec59b0418f1accbde52c7286a802b49c9a79a8cc1797e245b294638a7", carbonRingDigest(r))
		requireOrders(t, r, 3, []ringVector{
			{"voltha.internal.abc.deferreds", []int{1, 0, 2}},
			{"voltha.internal.abc.rss-mb", []int{2, 1, 0}},
			{"carbon.agents.host1.cpuUsage", []int{1, 0, 2}},
			{"a", []int{1, 2, 0}},
			{"servers.web01.load.shortterm", []int{1, 2, 0}},
			{"métrique.été", []int{1, 2, 0}},
			{"x.y.z.0", []int{1, 0, 2}},
			{"x.y.z.1", []int{2, 0, 1}},
			{"x.y.z.2", []int{1, 0, 2}},
			{"x.y.z.3", []int{1, 2, 0}},
		})
	})
	t.Run("one host, instances a b c", func(t *testing.T) {
		r := newCarbonRing(oneHostABC)
		require.Equal(t, "3be0e840da479260d8f2b0d82533701f425067e555d1981139b59844ff289da2", carbonRingDigest(r))
		requireOrders(t, r, 3, oneHostABCOrders)
	})
}

// oneHostABCOrders is carbon_ch over ('127.0.0.1', 'a'), ('127.0.0.1',
// 'b'), ('127.0.0.1', 'c') (carbon's get_nodes); the loopback tests use
// the same ring, since carbon_ch ignores ports.
var oneHostABCOrders = []ringVector{
	{"voltha.internal.abc.deferreds", []int{1, 0, 2}},
	{"voltha.internal.abc.rss-mb", []int{0, 1, 2}},
	{"carbon.agents.host1.cpuUsage", []int{0, 2, 1}},
	{"a", []int{0, 2, 1}},
	{"servers.web01.load.shortterm", []int{1, 0, 2}},
	{"métrique.été", []int{2, 0, 1}},
	{"x.y.z.0", []int{2, 1, 0}},
	{"x.y.z.1", []int{0, 2, 1}},
	{"x.y.z.2", []int{0, 2, 1}},
	{"x.y.z.3", []int{2, 0, 1}},
}

// carbonRingDigest is the SHA-256 of "position node\n" for each point, in
// ring order, as the Python side prints it.
func carbonRingDigest(r *pointRing) string {
	h := sha256.New()
	for _, e := range r.entries {
		fmt.Fprintf(h, "%d %d\n", e.pos, e.node)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// replicationNodes mixes two instances on one host with plain hosts:
// carbon's DESTINATIONS 10.0.0.1:2004:a, 10.0.0.1:2104:b, 10.0.0.2:2004:a,
// 10.0.0.3:2004.
var replicationNodes = []Destination{
	{Address: "10.0.0.1:2004", Instance: "a"}, {Address: "10.0.0.1:2104", Instance: "b"},
	{Address: "10.0.0.2:2004", Instance: "a"}, {Address: "10.0.0.3:2004"},
}

// TestCarbonReplication checks replication_factor 2 against carbon's
// ConsistentHashingRouter.getDestinations with REPLICATION_FACTOR = 2 and
// DIVERSE_REPLICAS True (carbon's default) and False.
func TestCarbonReplication(t *testing.T) {
	for _, tt := range []struct {
		diverse bool
		want    []ringVector
	}{
		{true, []ringVector{
			{"voltha.internal.abc.deferreds", []int{0, 2}},
			{"voltha.internal.abc.rss-mb", []int{3, 0}},
			{"carbon.agents.host1.cpuUsage", []int{1, 3}},
			{"a", []int{1, 2}},
			{"servers.web01.load.shortterm", []int{2, 0}},
			{"métrique.été", []int{3, 0}},
			{"x.y.z.0", []int{0, 3}},
			{"x.y.z.1", []int{1, 3}},
			{"x.y.z.2", []int{2, 1}},
			{"x.y.z.3", []int{3, 2}},
		}},
		{false, []ringVector{
			{"voltha.internal.abc.deferreds", []int{0, 1}},
			{"voltha.internal.abc.rss-mb", []int{3, 0}},
			{"carbon.agents.host1.cpuUsage", []int{1, 3}},
			{"a", []int{1, 2}},
			{"servers.web01.load.shortterm", []int{2, 0}},
			{"métrique.été", []int{3, 0}},
			{"x.y.z.0", []int{0, 3}},
			{"x.y.z.1", []int{1, 3}},
			{"x.y.z.2", []int{2, 1}},
			{"x.y.z.3", []int{3, 2}},
		}},
	} {
		t.Run(fmt.Sprintf("diverse %v", tt.diverse), func(t *testing.T) {
			c := testCluster(t, ClusterConfig{
				Destinations: replicationNodes, Distribution: DistributeCarbonCH,
				ReplicationFactor: 2, DiverseReplicas: &tt.diverse,
			})
			for _, v := range tt.want {
				require.Equal(t, v.order, c.placement(v.path), "replicas of %q", v.path)
			}
		})
	}
}

// The fnv1a_ch and jump_fnv1a_ch vectors were computed by a C program
// that transcribes carbon-c-relay's consistent-hash.c (fnv1a_hashpos,
// entrycmp_fnv1a, entrycmp_jump_fnv1a, jump_bucketpos, ch_addnode,
// ch_get_nodes with its binary search) and fnv1a.h (fnv1a_32, fnv1a_64),
// compiled with gcc on x86-64, where char is signed. The digest is the
// 64-bit FNV-1a of "position node\n" for each point in ring order.
func TestFNV1aRing(t *testing.T) {
	for _, tt := range []struct {
		name   string
		nodes  []RingNode
		digest uint64
		want   []ringVector
	}{
		{"three hosts", threeHosts, 467971749845052157, []ringVector{
			{"voltha.internal.abc.deferreds", []int{2, 0, 1}},
			{"voltha.internal.abc.rss-mb", []int{1, 2, 0}},
			{"carbon.agents.host1.cpuUsage", []int{0, 1, 2}},
			{"a", []int{2, 0, 1}},
			{"servers.web01.load.shortterm", []int{0, 2, 1}},
			{"métrique.été", []int{0, 1, 2}},
			{"x.y.z.0", []int{1, 2, 0}},
			{"x.y.z.1", []int{0, 1, 2}},
			{"x.y.z.2", []int{2, 0, 1}},
			{"x.y.z.3", []int{2, 0, 1}},
		}},
		{"one host, four ports", []RingNode{
			{Host: "127.0.0.1", Port: 2103}, {Host: "127.0.0.1", Port: 2203}, {Host: "127.0.0.1", Port: 2303}, {Host: "127.0.0.1", Port: 2403},
		}, 9397486714716453152, []ringVector{
			{"voltha.internal.abc.deferreds", []int{1, 0, 2, 3}},
			{"voltha.internal.abc.rss-mb", []int{1, 0, 3, 2}},
			{"carbon.agents.host1.cpuUsage", []int{0, 1, 2, 3}},
			{"a", []int{2, 1, 0, 3}},
			{"servers.web01.load.shortterm", []int{2, 0, 1, 3}},
			{"métrique.été", []int{0, 3, 1, 2}},
			{"x.y.z.0", []int{0, 1, 3, 2}},
			{"x.y.z.1", []int{3, 1, 2, 0}},
			{"x.y.z.2", []int{3, 1, 0, 2}},
			{"x.y.z.3", []int{1, 0, 2, 3}},
		}},
		{"instances replace host and port", instanceNodes, 7203803387187017342, []ringVector{
			{"voltha.internal.abc.deferreds", []int{3, 4, 1, 0, 2}},
			{"voltha.internal.abc.rss-mb", []int{2, 4, 0, 1, 3}},
			{"carbon.agents.host1.cpuUsage", []int{4, 2, 3, 0, 1}},
			{"a", []int{4, 1, 3, 0, 2}},
			{"servers.web01.load.shortterm", []int{2, 4, 3, 0, 1}},
			{"métrique.été", []int{3, 4, 1, 0, 2}},
			{"x.y.z.0", []int{1, 4, 3, 2, 0}},
			{"x.y.z.1", []int{4, 1, 0, 3, 2}},
			{"x.y.z.2", []int{3, 4, 1, 0, 2}},
			{"x.y.z.3", []int{3, 4, 1, 0, 2}},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newFNV1aRing(tt.nodes)
			var lines []byte
			for _, e := range r.entries {
				lines = fmt.Appendf(lines, "%d %d\n", e.pos, e.node)
			}
			d := uint64(14695981039346656037)
			for _, c := range lines {
				d = (d ^ uint64(c)) * 1099511628211
			}
			require.Equal(t, tt.digest, d, "ring digest")
			requireOrders(t, r, len(tt.nodes), tt.want)
		})
	}
}

// instanceNodes gives jump_fnv1a_ch's bucket order something to sort:
// instances "c", "10" and "9" (numeric ones compare as numbers), and two
// nodes without an instance, which go last in configured order.
var instanceNodes = []RingNode{
	{Host: "10.0.0.1", Port: 2003, Instance: "c"}, {Host: "10.0.0.2", Port: 2003},
	{Host: "10.0.0.3", Port: 2003, Instance: "10"}, {Host: "10.0.0.4", Port: 2003, Instance: "9"},
	{Host: "10.0.0.5", Port: 2003},
}

// See TestFNV1aRing for where these vectors come from.
func TestJumpRing(t *testing.T) {
	for _, tt := range []struct {
		name  string
		nodes []RingNode
		want  []ringVector
	}{
		{"three hosts", threeHosts, []ringVector{
			{"voltha.internal.abc.deferreds", []int{1, 0, 2}},
			{"voltha.internal.abc.rss-mb", []int{1, 0, 2}},
			{"carbon.agents.host1.cpuUsage", []int{0, 2, 1}},
			{"a", []int{2, 0, 1}},
			{"servers.web01.load.shortterm", []int{0, 2, 1}},
			{"métrique.été", []int{2, 1, 0}},
			{"x.y.z.0", []int{0, 2, 1}},
			{"x.y.z.1", []int{2, 0, 1}},
			{"x.y.z.2", []int{1, 0, 2}},
			{"x.y.z.3", []int{2, 0, 1}},
		}},
		{"instances sort first", instanceNodes, []ringVector{
			{"voltha.internal.abc.deferreds", []int{2, 0, 1, 4, 3}},
			{"voltha.internal.abc.rss-mb", []int{1, 0, 3, 4, 2}},
			{"carbon.agents.host1.cpuUsage", []int{3, 4, 1, 2, 0}},
			{"a", []int{0, 1, 4, 2, 3}},
			{"servers.web01.load.shortterm", []int{1, 4, 2, 3, 0}},
			{"métrique.été", []int{0, 2, 1, 4, 3}},
			{"x.y.z.0", []int{3, 0, 1, 2, 4}},
			{"x.y.z.1", []int{0, 3, 2, 4, 1}},
			{"x.y.z.2", []int{1, 3, 0, 4, 2}},
			{"x.y.z.3", []int{1, 3, 4, 0, 2}},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			requireOrders(t, newJumpRing(tt.nodes), len(tt.nodes), tt.want)
		})
	}
}

// TestJumpBucketPaper checks jumpBucket against the reference
// implementation's published behaviour: key 0 always lands in bucket 0,
// and growing from n to n+1 buckets moves a key only into the new bucket.
func TestJumpBucketPaper(t *testing.T) {
	for n := 1; n < 50; n++ {
		require.Zero(t, jumpBucket(0, n))
	}
	for k := uint64(1); k < 2000; k++ {
		key := k * 0x9e3779b97f4a7c15
		prev := jumpBucket(key, 1)
		for n := 2; n <= 20; n++ {
			b := jumpBucket(key, n)
			require.True(t, b == prev || b == n-1, "key %d moved from %d to %d at %d buckets", key, prev, b, n)
			prev = b
		}
	}
}

// TestCarbonRingMatchesPython recomputes the carbon_ch placement with
// carbon's own ConsistentHashRing when it is installed (Debian's
// graphite-carbon, which make test's CI installs), for many more paths
// than the literal vectors.
func TestCarbonRingMatchesPython(t *testing.T) {
	if testing.Short() {
		t.Skip("runs python3")
	}
	py := carbonPython()
	if py == "" {
		t.Skip("no python3 that imports carbon.hashing (apt-get install graphite-carbon)")
	}
	paths := append([]string(nil), vectorPaths...)
	for i := range 500 {
		paths = append(paths, fmt.Sprintf("voltha.internal.compose_voltha_%d.metric_%d", i%37, i))
	}
	in, err := json.Marshal(paths)
	require.NoError(t, err)
	const script = `
import json, sys
from carbon.hashing import ConsistentHashRing
nodes = [("10.0.0.1", None), ("10.0.0.2", None), ("10.0.0.3", None), ("127.0.0.1", "a"), ("127.0.0.1", "b")]
r = ConsistentHashRing(nodes)
print(json.dumps([[nodes.index(n) for n in r.get_nodes(p)] for p in json.load(sys.stdin)]))
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	require.NoError(t, err)
	var want [][]int
	require.NoError(t, json.Unmarshal(out, &want))
	r := newCarbonRing([]RingNode{
		{Host: "10.0.0.1"}, {Host: "10.0.0.2"}, {Host: "10.0.0.3"},
		{Host: "127.0.0.1", Instance: "a"}, {Host: "127.0.0.1", Instance: "b"},
	})
	for i, p := range paths {
		require.Equal(t, want[i], r.appendOrder(nil, p, 5), "order of %q", p)
	}
}

// FuzzRings checks what every ring promises for any path: the order holds
// distinct nodes, as many as asked (up to the node count), and its head
// does not depend on how many were asked for.
func FuzzRings(f *testing.F) {
	for _, p := range vectorPaths {
		f.Add(p, uint8(2))
	}
	rings := map[string]ring{
		"carbon_ch":     newCarbonRing(replicationRingNodes()),
		"fnv1a_ch":      newFNV1aRing(instanceNodes),
		"jump_fnv1a_ch": newJumpRing(instanceNodes),
	}
	f.Fuzz(func(t *testing.T, path string, count uint8) {
		n := int(count%6) + 1
		for name, r := range rings {
			all := r.appendOrder(nil, path, 10)
			got := r.appendOrder(nil, path, n)
			nodes := len(all)
			if name == "carbon_ch" {
				require.Equal(t, 4, nodes, name)
			} else {
				require.Equal(t, len(instanceNodes), nodes, name)
			}
			require.Len(t, got, min(n, nodes), name)
			require.Equal(t, all[:len(got)], got, name)
			seen := map[int]bool{}
			for _, node := range all {
				require.False(t, seen[node], "%s: node %d twice", name, node)
				seen[node] = true
			}
		}
	})
}

func replicationRingNodes() []RingNode {
	out := make([]RingNode, len(replicationNodes))
	for i, d := range replicationNodes {
		out[i] = ringNode(d)
	}
	return out
}

func BenchmarkRings(b *testing.B) {
	nodes := make([]RingNode, 12)
	for i := range nodes {
		nodes[i] = RingNode{Host: fmt.Sprintf("10.0.0.%d", i+1), Port: 2004}
	}
	paths := make([]string, 1024)
	for i := range paths {
		paths[i] = fmt.Sprintf("voltha.internal.compose_voltha_%d.%s", i%40, []string{"rss-mb", "cpu-pct", "deferreds"}[i%3])
	}
	for _, bb := range []struct {
		name string
		r    ring
	}{
		{"carbon_ch", newCarbonRing(nodes)},
		{"fnv1a_ch", newFNV1aRing(nodes)},
		{"jump_fnv1a_ch", newJumpRing(nodes)},
	} {
		for _, replicas := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/replicas=%d", bb.name, replicas), func(b *testing.B) {
				dst := make([]int, 0, len(nodes))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					dst = bb.r.appendOrder(dst[:0], paths[i%len(paths)], replicas)
					i++
				}
			})
		}
	}
}
