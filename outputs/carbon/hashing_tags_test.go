package carbon

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

var updateTaggedVectors = flag.Bool("update-tagged-vectors", false, "rewrite testdata/carbon_ch_tagged.json with carbon's own output")

// taggedVector is one line of testdata/carbon_ch_tagged.json: a name, the
// key carbon-relay with TAG_RELAY_NORMALIZED hashes, and the carbon_ch
// node order of that key (testdata/carbon_ch_tagged.py).
type taggedVector struct {
	In    string `json:"in"`
	Key   string `json:"key"`
	Order []int  `json:"order"`
}

// taggedRingNodes are carbon_ch_tagged.py's NODES.
var taggedRingNodes = []RingNode{
	{Host: "10.0.0.1"}, {Host: "10.0.0.2"}, {Host: "10.0.0.3"},
	{Host: "127.0.0.1", Instance: "a"}, {Host: "127.0.0.1", Instance: "b"},
}

// taggedVectorNames: VOLTHA-like tagged series, each with its tags in
// several orders and with a duplicate, plus names carbon cannot normalize
// (hashed raw) and untagged ones.
func taggedVectorNames() []string {
	names := []string{"a", "~a", "~~voltha.x", "a;b", "a;b=~c", ";a=b", "a;name=x", "a;b=1;name=x"}
	rng := rand.New(rand.NewPCG(13, 2))
	titles := []string{"PONStats", "NNIStats", "ONUStats", "PON_Optical", "UNI_Status"}
	for i := range 60 {
		tags := []string{
			fmt.Sprintf("device_id=%08x", i*7919),
			fmt.Sprintf("portlabel=pon-%d", i%16),
			"devicetype=openolt",
			fmt.Sprintf("a-b=%d", i%3),
			fmt.Sprintf("a1=%d", i%5),
		}
		name := fmt.Sprintf("voltha.%s.%s", titles[i%len(titles)], []string{"RxBytes", "TxBytes", "BipErrors"}[i%3])
		names = append(names, name+";"+strings.Join(tags, ";"))
		rng.Shuffle(len(tags), func(a, b int) { tags[a], tags[b] = tags[b], tags[a] })
		names = append(names, name+";"+strings.Join(tags, ";"))
		names = append(names, name+";"+strings.Join(tags, ";")+";"+tags[0]) // a duplicate, same value
	}
	return names
}

func loadTaggedVectors(t *testing.T) []taggedVector {
	t.Helper()
	b, err := os.ReadFile("testdata/carbon_ch_tagged.json")
	require.NoError(t, err)
	var vs []taggedVector
	require.NoError(t, json.Unmarshal(b, &vs))
	require.NotEmpty(t, vs)
	return vs
}

// carbonPython is Debian's python3 when it can import carbon (a pyenv
// python3 earlier on PATH cannot), else "".
func carbonPython() string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import carbon.hashing, carbon.util").Run() == nil {
			return py
		}
	}
	return ""
}

// TestTaggedVectorsAreCarbons recomputes testdata/carbon_ch_tagged.json
// with carbon's own code where graphite-carbon is installed (CI installs it).
func TestTaggedVectorsAreCarbons(t *testing.T) {
	if testing.Short() {
		t.Skip("runs python3")
	}
	py := carbonPython()
	if py == "" {
		t.Skip("no python3 that imports carbon (apt-get install graphite-carbon)")
	}
	in, err := json.Marshal(taggedVectorNames())
	require.NoError(t, err)
	cmd := exec.Command(py, "testdata/carbon_ch_tagged.py")
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	require.NoError(t, err)
	if *updateTaggedVectors {
		require.NoError(t, os.WriteFile("testdata/carbon_ch_tagged.json", out, 0o644))
	}
	var want []taggedVector
	require.NoError(t, json.Unmarshal(out, &want))
	require.Equal(t, want, loadTaggedVectors(t), "run go test -run TestTaggedVectorsAreCarbons -update-tagged-vectors")
}

// TestRingsHashNormalizedNames: carbon_ch places every name where
// carbon-relay with TAG_RELAY_NORMALIZED does (carbon's own vectors); and
// every ring places a tagged name, whatever its tag order, duplicates or
// leading '~', where it places its normalized form, which is the key
// carbon computed.
func TestRingsHashNormalizedNames(t *testing.T) {
	vs := loadTaggedVectors(t)
	ch := newCarbonRing(taggedRingNodes)
	rings := map[string]ring{"carbon_ch": ch, "fnv1a_ch": newFNV1aRing(taggedRingNodes), "jump_fnv1a_ch": newJumpRing(taggedRingNodes)}
	orders := map[string]map[string][]int{} // ring -> key -> order
	for _, v := range vs {
		require.Equal(t, v.Order, ch.appendOrder(nil, v.In, len(taggedRingNodes)), "carbon_ch order of %q", v.In)
		if n, err := metric.Normalize(v.In); err == nil {
			require.Equal(t, v.Key, n, "carbon's key of %q", v.In)
		} else {
			require.Equal(t, v.In, v.Key, "carbon hashes %q raw", v.In)
		}
		for name, r := range rings {
			got := r.appendOrder(nil, v.In, len(taggedRingNodes))
			require.Equal(t, r.appendOrder(nil, v.Key, len(taggedRingNodes)), got, "%s: %q and its key %q", name, v.In, v.Key)
			if orders[name] == nil {
				orders[name] = map[string][]int{}
			}
			if prev, ok := orders[name][v.Key]; ok {
				require.Equal(t, prev, got, "%s: %q", name, v.In)
			}
			orders[name][v.Key] = got
		}
	}
	// The vectors hold each series in several tag orders.
	require.Less(t, len(orders["carbon_ch"]), len(vs)/2)
}

func TestRingKeyDoesNotAllocate(t *testing.T) {
	r := newCarbonRing(taggedRingNodes)
	j := newJumpRing(taggedRingNodes)
	dst := make([]int, 0, 8)
	for _, p := range []string{"voltha.internal.compose_voltha_7.rss-mb", "voltha.PONStats.RxBytes;portlabel=pon-0;devicetype=openolt;device_id=0001c5f1"} {
		r.appendOrder(dst[:0], p, 2) // grows the key buffers once
		j.appendOrder(dst[:0], p, 2)
		require.Zero(t, testing.AllocsPerRun(100, func() {
			dst = r.appendOrder(dst[:0], p, 2)
			dst = j.appendOrder(dst[:0], p, 2)
		}), p)
	}
}
