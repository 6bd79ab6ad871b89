//go:build linux

package main

// Brokers failing under shovel, and what real producers write: a partition
// leader killed in a three-node cluster, a single broker restarted, batches
// in every compression codec, aborted transactions.

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkabroker"
)

// TestRealKafkaLeaderKilled: three nodes, replication factor 3 and
// min.insync.replicas 2. The leader of the partitions shovel reads (and,
// with it, maybe the group coordinator or the active controller) is
// SIGKILLed mid-stream: the producer goes on with acks=all on the two
// replicas left, shovel follows the new leaders, nothing is lost; then the
// node comes back and catches up.
func TestRealKafkaLeaderKilled(t *testing.T) {
	c := kafkabroker.Start(t, kafkabroker.Options{Nodes: 3})
	const topic, group, parts = "kpis.real-leader", "real-leader", 3
	c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: parts, Replicas: 3,
		Configs: map[string]string{"min.insync.replicas": "2"}})
	pickle := carbontest.ListenPickle(t)
	cfg := writeConfig(t, pickleConfig(c.Addr(), topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t), ""))
	kpis := sliceKPIs("realleader", 6000, recent())
	want, produced := produceSteadily(t, c, topic, parts, kpis, 100, 100*time.Millisecond)
	sh := startProcess(t, "route", "--config", cfg)
	eventually(t, func() bool { return pickle.Len() >= len(want)/5 }, 90*time.Second, "a fifth delivered", sh)

	leader := c.Leader(t, topic, 0)
	leader.Kill()
	killed := time.Now()
	n := pickle.Len()
	waitGrowth(t, pickle, n, 60*time.Second, "delivery after the leader was killed", sh)
	// Growth may be samples fetched before the kill: wait for new leaders.
	require.Eventually(t, func() bool { return c.Leader(t, topic, 0).ID != leader.ID }, 30*time.Second, 100*time.Millisecond)
	t.Logf("node %d (leader of %s[0]) killed; new leader %d after %v", leader.ID, topic, c.Leader(t, topic, 0).ID,
		time.Since(killed).Round(100*time.Millisecond))
	mid := pickle.Len()
	waitGrowth(t, pickle, mid, 60*time.Second, "delivery from the new leaders", sh)

	leader.Start(t)
	produced()
	requireAllArrive(t, want, 120*time.Second, pickle)
	require.Eventually(t, func() bool { return c.CommittedTotal(t, group, topic) == int64(len(kpis)) }, 60*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return len(c.ISR(t, topic, 0)) == 3 }, 60*time.Second, 200*time.Millisecond,
		"the node back in sync")
	require.True(t, sh.running())
	_, code := sh.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	t.Logf("%d samples for %d distinct: %d duplicates", pickle.Len(), len(want), pickle.Len()-len(want))
}

// TestRealKafkaBrokerRestarted: the only broker is restarted (SIGKILL, its
// data kept) while shovel runs; shovel reconnects and goes on from its
// committed offsets: nothing lost, and nothing repeated that had been
// committed.
func TestRealKafkaBrokerRestarted(t *testing.T) {
	c := kafkabroker.Start(t, kafkabroker.Options{})
	const topic, group, parts = "kpis.real-restart", "real-restart", 2
	c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: parts})
	pickle := carbontest.ListenPickle(t)
	cfg := writeConfig(t, pickleConfig(c.Addr(), topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t), ""))
	first := sliceKPIs("realbroker.a", 3000, recent())
	want := produceTo(t, c, topic, parts, first)
	sh := startProcess(t, "route", "--config", cfg)
	eventually(t, func() bool { return len(distinct(pickle.Samples())) >= len(want) }, 90*time.Second, "the first batch delivered", sh)
	require.Eventually(t, func() bool { return c.CommittedTotal(t, group, topic) == int64(len(first)) }, 30*time.Second, 50*time.Millisecond)
	before := pickle.Len()

	node := c.Nodes[0]
	node.Kill()
	down := time.Now()
	time.Sleep(3 * time.Second) // shovel sees the broker gone
	node.Start(t)
	t.Logf("broker down for %v", time.Since(down).Round(100*time.Millisecond))
	require.Equal(t, map[int32]int64{0: 1500, 1: 1500}, c.Committed(t, group, topic), "committed offsets survive the restart")
	second := sliceKPIs("realbroker.b", 1000, recent()+4000)
	want = append(want, produceTo(t, c, topic, parts, second)...)
	back := time.Now()
	requireAllArrive(t, want, 120*time.Second, pickle)
	t.Logf("the second batch delivered %v after it was produced", time.Since(back).Round(100*time.Millisecond))
	require.Eventually(t, func() bool { return c.CommittedTotal(t, group, topic) == int64(len(first)+len(second)) }, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, before+len(second)*6, pickle.Len(), "nothing committed was delivered again")
	require.True(t, sh.running())
	_, code := sh.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
}

// TestRealKafkaCompressionAndTransactions: batches a real client
// compressed with gzip, snappy, lz4 and zstd arrive exact; records of an
// aborted transaction never reach Carbon (librdkafka's default
// isolation.level is read_committed), those of a committed one do, and the
// group's offsets end past the transaction markers.
func TestRealKafkaCompressionAndTransactions(t *testing.T) {
	c := sharedKafka(t)
	const topic, group, parts = "kpis.real-codecs", "real-codecs", 2
	c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: parts})
	var want []carbontest.Sample
	ts := recent()
	for _, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
		kpis := sliceKPIs("codec."+codec, 500, ts)
		ts += 500
		c.ProduceCompressed(t, codec, produceRecs(topic, parts, kpis)...)
		for _, k := range kpis {
			want = append(want, k.want...)
		}
	}
	aborted := sliceKPIs("txn.aborted", 200, ts)
	c.ProduceTransaction(t, false, produceRecs(topic, parts, aborted)...)
	committedTxn := sliceKPIs("txn.committed", 200, ts+200)
	c.ProduceTransaction(t, true, produceRecs(topic, parts, committedTxn)...)
	for _, k := range committedTxn {
		want = append(want, k.want...)
	}
	tail := sliceKPIs("txn.after", 100, ts+400)
	c.ProduceCompressed(t, "zstd", produceRecs(topic, parts, tail)...)
	for _, k := range tail {
		want = append(want, k.want...)
	}

	pickle := carbontest.ListenPickle(t)
	cfg := writeConfig(t, pickleConfig(c.Addr(), topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t), ""))
	sh := startShovel(t, "route", "--config", cfg)
	require.Eventually(t, func() bool { return pickle.Len() >= len(want) }, 60*time.Second, 10*time.Millisecond,
		"got %d of %d samples", pickle.Len(), len(want))
	end := c.EndOffsets(t, topic, parts)
	require.Eventually(t, func() bool {
		got := c.Committed(t, group, topic)
		return got[0] == end[0] && got[1] == end[1]
	}, 30*time.Second, 50*time.Millisecond, "committed up to the end, markers included")
	require.Equal(t, 0, sh.stop(t))
	require.Equal(t, sortSamples(want), sortSamples(pickle.Samples()), "every sample exact, none from the aborted transaction")
	// 2000 compressed + 200 aborted + 200 committed + 100 after, and one
	// marker per partition per transaction.
	require.EqualValues(t, 2000+200+200+100+2*parts, end[0]+end[1])
}
