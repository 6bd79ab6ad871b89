package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

// carbonCHPlacement is where graphite carbon's own ConsistentHashRing puts
// these paths on nodes ("127.0.0.1", "a"|"b"|"c"), computed with Debian's
// graphite-carbon 1.1.7:
//
//	r = carbon.hashing.ConsistentHashRing([])
//	for i in "abc": r.add_node(("127.0.0.1", i))
//	r.get_node(path)[1]
//
// Carbon's ring keys nodes by (host, instance), not port, so the placement
// holds whatever ports the test's listeners get.
var carbonCHPlacement = map[string]string{
	"pon.obj0.deferreds": "a", "pon.obj0.rss-mb": "c", "pon.obj0.cpu_util": "b",
	"pon.obj1.deferreds": "b", "pon.obj1.rss-mb": "c", "pon.obj1.cpu_util": "c",
	"pon.obj2.deferreds": "c", "pon.obj2.rss-mb": "a", "pon.obj2.cpu_util": "a",
	"pon.obj3.deferreds": "c", "pon.obj3.rss-mb": "c", "pon.obj3.cpu_util": "c",
}

// TestClusterOverTLSWithRulesAndDeadLetters is issue #4's whole picture:
// route rules, three consistent-hashed Carbon nodes behind mutual TLS, and
// a dead-letter topic, end to end.
func TestClusterOverTLSWithRulesAndDeadLetters(t *testing.T) {
	skipShort(t)
	const topic, dlTopic = "kpis.cluster", "kpis.cluster.dead"
	b := kafkatest.Start(t, 2, topic, dlTopic)

	ca := carbontest.NewCA(t)
	nodes := map[string]*carbontest.Listener{}
	for _, inst := range []string{"a", "b", "c"} {
		nodes[inst] = carbontest.ListenPickleTLS(t, ca.ServerConfig(true))
	}
	client := ca.Client("shovel")

	// 40 messages of 4 objects × (3 metrics + a debug metric the rules drop).
	var recs []kafkatest.Record
	want := map[string][]carbontest.Sample{}
	ts := recent()
	for i := 0; i < 40; i++ {
		data := map[string]map[string]float64{}
		for o := 0; o < 4; o++ {
			obj := fmt.Sprintf("obj%d", o)
			data["voltha."+obj] = map[string]float64{"deferreds": float64(i), "rss-mb": float64(80 + o), "cpu_util": 0.5 * float64(i), "debug": 1}
			for _, m := range []string{"deferreds", "rss-mb", "cpu_util"} {
				path := "pon." + obj + "." + m
				node := carbonCHPlacement[path]
				want[node] = append(want[node], carbontest.Sample{Path: path, Time: float64(ts + int64(i)), Value: data["voltha."+obj][m]})
			}
		}
		v, err := json.Marshal(map[string]any{"type": "slice", "ts": ts + int64(i), "data": data})
		require.NoError(t, err)
		recs = append(recs, kafkatest.Record{Topic: topic, Partition: int32(i % 2), Value: v})
	}
	bad := map[string]string{
		`{"type":"slice","ts":1,"data":`: "invalid_json",
		`{"type":"kpi-v9","ts":1}`:       "no_route",
	}
	for v := range bad {
		recs = append(recs, kafkatest.Record{Topic: topic, Partition: 0, Value: []byte(v)})
	}
	b.Produce(t, recs...)

	cfg := filepath.Join(t.TempDir(), "shovel.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
kafka: {brokers: "%s", topics: [%s], group: it-cluster}
routes:
  - match: {type: slice}
    decoder: slice
    rules:
      - drop: "voltha.*.debug"
      - rewrite: {match: "^voltha\\.", replace: "pon."}
    outputs: [cluster]
outputs:
  cluster:
    kind: carbon-pickle
    destinations:
      - {address: "%s", instance: a}
      - {address: "%s", instance: b}
      - {address: "%s", instance: c}
    distribution: carbon_ch
    tls: {enabled: true, ca: "%s", cert: "%s", key: "%s"}
dead_letter: {topic: %s}
`, b.Addr, topic, nodes["a"].Addr(), nodes["b"].Addr(), nodes["c"].Addr(),
		ca.CertFile, client.CertFile, client.KeyFile, dlTopic)), 0o600))

	sh := startShovel(t, "route", "--config", cfg)
	total := 0
	for _, s := range want {
		total += len(s)
	}
	require.Eventually(t, func() bool {
		return nodes["a"].Len()+nodes["b"].Len()+nodes["c"].Len() >= total
	}, 60*time.Second, 10*time.Millisecond)

	dead := b.Consume(t, dlTopic, len(bad))
	require.Equal(t, 0, sh.stop(t))
	for inst, l := range nodes {
		require.Empty(t, l.Errors(), "node %s", inst)
		require.Equal(t, sortSamples(want[inst]), sortSamples(l.Samples()), "node %s holds exactly its share", inst)
	}
	require.Len(t, dead, len(bad))
	for _, r := range dead {
		var reason string
		for _, h := range r.Headers {
			if h.Key == kafka.HeaderReason {
				reason = string(h.Value)
			}
		}
		require.Equal(t, bad[string(r.Value)], reason, "dead letter %s", r.Value)
	}
}
