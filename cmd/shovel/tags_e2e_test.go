package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
	"github.com/shovel-metrics/shovel/router/metric"
)

// carbonNormalizedOwners asks carbon's own code where carbon-relay with
// TAG_RELAY_NORMALIZED and carbon_ch over ("127.0.0.1", "a"|"b"|"c") sends
// each name: TaggedSeries.parse(name).path, then ConsistentHashRing's
// get_node. It needs Debian's python3 with graphite-carbon, as the caches do.
func carbonNormalizedOwners(t *testing.T, names []string) map[string]string {
	t.Helper()
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import carbon.hashing, carbon.util").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no python3 that imports carbon")
		}
		t.Skip("no python3 that imports carbon (apt-get install graphite-carbon)")
	}
	in, err := json.Marshal(names)
	require.NoError(t, err)
	const script = `
import json, sys
from carbon.hashing import ConsistentHashRing
from carbon.util import TaggedSeries
r = ConsistentHashRing([])
for i in "abc":
    r.add_node(("127.0.0.1", i))
out = {}
for name in json.load(sys.stdin):
    out[name] = r.get_node(TaggedSeries.parse(name).path)[1]
print(json.dumps(out))
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	require.NoError(t, err)
	owners := map[string]string{}
	require.NoError(t, json.Unmarshal(out, &owners))
	return owners
}

// TestTaggedRouteIntoCarbonCHCluster is issue 13's whole picture: VOLTHA
// KPIs (slice_data) and Carbon plaintext lines with tags in any order go
// through Kafka (kfake) into shovel, whose slice decoder tags what it
// decodes and whose rules drop, rename and add tags, then out through
// carbon_ch to three real carbon-caches. Each cache ends up holding exactly
// the series carbon's own normalized ring gives it, each series in one
// whisper file whatever order its tags came in; untagged series share the
// route.
func TestTaggedRouteIntoCarbonCHCluster(t *testing.T) {
	skipShort(t)
	caches := map[string]*carbontest.Carbon{}
	for _, inst := range []string{"a", "b", "c"} {
		caches[inst] = carbontest.Start(t)
	}
	const kpiTopic, lineTopic = "kpis.tags", "carbon.lines"
	b := kafkatest.Start(t, 2, kpiTopic, lineTopic)
	ts := time.Now().Add(-10 * time.Minute).Unix() // inside carbon's 2h retention

	// want[series] are its points, by the final (normalized) name.
	want := map[string][]carbontest.Point{}
	var recs []kafkatest.Record
	for i := range 12 {
		at := ts + int64(i)
		entries := []map[string]any{}
		for olt := range 3 {
			dev := fmt.Sprintf("olt%d", olt)
			for _, port := range []string{"pon-0", "pon-1", "nni-65536"} {
				entries = append(entries, map[string]any{
					"metadata": map[string]any{"title": "PONStats", "ts": at, "device_id": dev, "serial_no": "",
						"context": map[string]any{"portlabel": port, "devicetype": "openolt"}},
					"metrics": map[string]any{"RxBytes": float64(i*100 + olt), "TxBytes": float64(i) + 0.5},
				})
				if strings.HasPrefix(port, "nni-") {
					continue // the rules drop the NNI ports
				}
				for m, v := range map[string]float64{"RxBytes": float64(i*100 + olt), "TxBytes": float64(i) + 0.5} {
					name := fmt.Sprintf("voltha.PONStats.%s;device=%s;port=%s", m, dev, port)
					want[name] = append(want[name], carbontest.Point{Time: at, Value: v})
				}
			}
		}
		v, err := json.Marshal(map[string]any{"type": "slice", "ts": at, "slice_data": entries})
		require.NoError(t, err)
		recs = append(recs, kafkatest.Record{Topic: kpiTopic, Partition: int32(i % 2), Value: v})

		// Untagged slices on the same route.
		v, err = json.Marshal(map[string]any{"type": "slice", "ts": at, "data": map[string]any{"voltha.internal.core": map[string]any{"rss-mb": 80 + i}}})
		require.NoError(t, err)
		recs = append(recs, kafkatest.Record{Topic: kpiTopic, Partition: int32(i % 2), Value: v})
		want["voltha.internal.core.rss-mb"] = append(want["voltha.internal.core.rss-mb"], carbontest.Point{Time: at, Value: float64(80 + i)})

		// Plaintext lines whose producers write the same series' tags in
		// different orders, one with a duplicate that carbon resolves to
		// the last value.
		line := []string{
			fmt.Sprintf("host.cpu;host=h1;dc=x %d %d", i, at),
			fmt.Sprintf("host.mem;dc=x;host=h%d;host=h2 %d %d", i, 2*i, at),
		}[i%2]
		if i%4 >= 2 {
			line = []string{
				fmt.Sprintf("host.cpu;dc=x;host=h1 %d %d", i, at),
				fmt.Sprintf("host.mem;host=h2;dc=x %d %d", 2*i, at),
			}[i%2]
		}
		recs = append(recs, kafkatest.Record{Topic: lineTopic, Partition: int32(i % 2), Value: []byte(line + "\n")})
		name, v2 := "host.cpu;dc=x;host=h1;src=lines", float64(i)
		if i%2 == 1 {
			name, v2 = "host.mem;dc=x;host=h2;src=lines", float64(2*i)
		}
		want[name] = append(want[name], carbontest.Point{Time: at, Value: v2})
	}
	b.Produce(t, recs...)

	cfg := filepath.Join(t.TempDir(), "shovel.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
kafka: {brokers: "%s", topics: [%s, %s], group: it-tags}
decoders:
  voltha-tagged:
    kind: slice
    slice_data_path: "voltha.{title}.{metric}"
    tags: {device_id: "{device_id}", serial_no: "{serial_no}", port: "{context.portlabel}", devicetype: "{context.devicetype}"}
routes:
  - match: {topic: %s}
    decoder: carbon-plaintext
    rules:
      - add_tag: "src=lines"
    outputs: [cluster]
  - match: {type: slice}
    decoder: voltha-tagged
    rules:
      - drop_tag: "port=~nni-"
      - rename_tag: {from: device_id, to: device}
      - remove_tag: devicetype
    outputs: [cluster]
outputs:
  cluster:
    kind: carbon-pickle
    destinations:
      - {address: "%s", instance: a}
      - {address: "%s", instance: b}
      - {address: "%s", instance: c}
    distribution: carbon_ch
`, b.Addr, kpiTopic, lineTopic, lineTopic, caches["a"].PickleAddr(), caches["b"].PickleAddr(), caches["c"].PickleAddr())), 0o600))

	names := make([]string, 0, len(want))
	for name := range want {
		require.True(t, metric.Normalized(name), name)
		names = append(names, name)
	}
	sort.Strings(names)
	owners := carbonNormalizedOwners(t, names)
	held := map[string]int{}
	for _, o := range owners {
		held[o]++
	}
	require.Len(t, held, 3, "the series spread over all three nodes: %v", held)

	sh := startShovel(t, "route", "--config", cfg)
	for _, name := range names {
		owner := owners[name]
		points := caches[owner].WaitFor(t, name, len(want[name]), 60*time.Second)
		sort.Slice(want[name], func(i, j int) bool { return want[name][i].Time < want[name][j].Time })
		require.Equal(t, want[name], points, "%s on node %s", name, owner)
	}
	require.Equal(t, 0, sh.stop(t))
	for inst, c := range caches {
		var mine []string
		for _, name := range names {
			if owners[name] == inst {
				mine = append(mine, c.WhisperFile(name))
			}
		}
		sort.Strings(mine)
		files, err := c.WhisperFiles()
		require.NoError(t, err)
		require.Equal(t, mine, files, "node %s holds exactly the series carbon's ring gives it", inst)
	}
	// The duplicate host tag was resolved as carbon resolves it, and counted.
	require.Contains(t, sh.logs.String(), "reason=tag_duplicate")
}
