//go:build linux

package main

// The guarantees on Apache Kafka itself (issue #15): the same router, as a
// process or in-process, against KRaft clusters that router/kafka/kafkabroker
// runs from Kafka's jars. Without Java or the jars these tests skip (fail
// under CI=true).

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkabroker"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

// shared is the Apache Kafka node that most real-broker tests share: each
// uses topics and groups of its own, and none stops or reconfigures it (the
// tests that restart brokers or need TLS start clusters of their own). One
// JVM start instead of one per test keeps the suite short.
var shared struct {
	once sync.Once
	c    *kafkabroker.Cluster
	dir  string
	err  error
}

func sharedKafka(t *testing.T) *kafkabroker.Cluster {
	t.Helper()
	kafkabroker.Require(t)
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "shovel-test-kafka-")
		if shared.err == nil {
			shared.c, shared.err = kafkabroker.Launch(kafkabroker.Options{}, shared.dir)
		}
	})
	if shared.err != nil {
		t.Fatalf("kafkabroker: %v", shared.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shared kafka node log (tail):\n%s", shared.c.Nodes[0].LogTail(60))
		}
	})
	return shared.c
}

// stopSharedKafka stops the shared node, if a test started it; TestMain
// calls it after the tests.
func stopSharedKafka() {
	if shared.c != nil {
		shared.c.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
}

// produceTo is produceKPIs on any broker.
func produceTo(t *testing.T, b interface {
	Produce(testing.TB, ...kafkatest.Record)
}, topic string, partitions int32, kpis []kpi) []carbontest.Sample {
	recs := make([]kafkatest.Record, len(kpis))
	var want []carbontest.Sample
	for i, k := range kpis {
		recs[i] = kafkatest.Record{Topic: topic, Partition: int32(i) % partitions, Value: k.value}
		want = append(want, k.want...)
	}
	b.Produce(t, recs...)
	return want
}

// produceRecs spreads kpis over the partitions as produceKPIs does.
func produceRecs(topic string, partitions int32, kpis []kpi) []kafkatest.Record {
	recs := make([]kafkatest.Record, len(kpis))
	for i, k := range kpis {
		recs[i] = kafkatest.Record{Topic: topic, Partition: int32(i) % partitions, Value: k.value}
	}
	return recs
}

// withKafkaKey adds key: value to a config's kafka section.
func withKafkaKey(cfg, key, value string) string {
	return strings.Replace(cfg, "\nkafka:\n", fmt.Sprintf("\nkafka:\n  %s: %s\n", key, value), 1)
}

// committedMsgs is the number of messages a group has committed on topic.
func committedMsgs(committed map[int32]int64) int64 {
	var n int64
	for _, off := range committed {
		n += off
	}
	return n
}

// waitGrowth waits until l holds more than n samples and returns how long
// that took.
func waitGrowth(t *testing.T, l *carbontest.Listener, n int, timeout time.Duration, msg string, procs ...*shovelProc) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, func() bool { return l.Len() > n }, timeout, msg, procs...)
	return time.Since(start)
}

func TestRealKafkaDrainsTopicAndResumesAfterRestart(t *testing.T) {
	c := sharedKafka(t)
	const topic, group = "kpis.real-drain", "real-drain"
	c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: 3})
	first := produceTo(t, c, topic, 3, sliceKPIs("real.a", 3000, recent()))
	bad := []string{`{"type":"slice","ts":1480000000,"data":`, `not json at all`, `{"type":"unknown-type","ts":1}`}
	for i, v := range bad {
		c.Produce(t, kafkatest.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(v)})
	}
	pickle := carbontest.ListenPickle(t)
	line := carbontest.ListenPlaintext(t)
	args := []string{"route", "-K", c.Addr(), "-t", topic, "-g", group, "-H", "127.0.0.1", "-p", port(t, pickle.Addr()),
		"--line-port", port(t, line.Addr())}

	// Stop it part-way through...
	sh := startShovel(t, args...)
	require.Eventually(t, func() bool { return pickle.Len() > 0 }, 60*time.Second, time.Millisecond)
	require.Equal(t, 0, sh.stop(t))
	require.Contains(t, sh.logs.String(), "static group membership")
	seenBefore := pickle.Len()
	committedAtStop := c.CommittedTotal(t, group, topic)
	// ...publish more while it is down, and start it again.
	second := produceTo(t, c, topic, 3, sliceKPIs("real.b", 600, recent()+5000))
	sh = startShovel(t, args...)
	want := append(first, second...)
	require.Eventually(t, func() bool { return len(distinct(pickle.Samples())) >= len(want) }, 90*time.Second, 10*time.Millisecond,
		"got %d of %d distinct samples", len(distinct(pickle.Samples())), len(want))
	// Let the last offsets be committed (every 200 ms).
	total := int64(3000 + len(bad) + 600)
	require.Eventually(t, func() bool { return c.CommittedTotal(t, group, topic) == total }, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, 0, sh.stop(t))
	require.Empty(t, pickle.Errors())
	require.Equal(t, sortSamples(want), distinct(pickle.Samples()), "every sample exact, none missing, none extra")
	require.Zero(t, line.Len(), "the fallback is not used while the pickle receiver is up")
	require.Equal(t, c.EndOffsets(t, topic, 3), c.Committed(t, group, topic), "every message committed, bad ones included")
	dups := pickle.Len() - len(want)
	// A clean stop flushes the outputs and then commits what they took:
	// the restart repeats nothing.
	require.Zero(t, dups, "no duplicates after a clean stop")
	t.Logf("first run: %d samples delivered, %d messages committed at stop; %d duplicate samples after the restart",
		seenBefore, committedAtStop, dups)
}

// killAt SIGKILLs p and returns, 200 ms later (samples in flight on
// loopback land), how many samples l holds and the group's committed
// offsets.
func killAt(t *testing.T, c *kafkabroker.Cluster, p *shovelProc, l *carbontest.Listener, group, topic string) (distinctSamples int, committed map[int32]int64) {
	t.Helper()
	_, code := p.signal(t, syscall.SIGKILL)
	require.Equal(t, -1, code, "killed by the signal")
	time.Sleep(200 * time.Millisecond)
	return len(distinct(l.Samples())), c.Committed(t, group, topic)
}

// assignedRE matches the consumer's "partitions assigned" log line.
var assignedRE = regexp.MustCompile(`partitions assigned.*partitions=(\S*)`)

// assignments returns the partitions of each "partitions assigned" line.
func assignments(logs string) []string {
	var out []string
	for _, m := range assignedRE.FindAllStringSubmatch(logs, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestRealKafkaSIGKILLTwiceThenRestart kills shovel twice within two
// seconds while a producer keeps writing, then starts it a third time.
// With static membership (the default kafka.instance_id) and the default
// 30 s session timeout, each restart must get its partitions back at once.
func TestRealKafkaSIGKILLTwiceThenRestart(t *testing.T) {
	c := sharedKafka(t)
	const topic, group, parts = "kpis.real-kill", "real-kill", 2
	c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: parts})
	pickle := carbontest.ListenPickle(t)
	cfg := writeConfig(t, pickleConfig(c.Addr(), topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t), ""))
	kpis := sliceKPIs("realkill", 6000, recent())
	want, produced := produceSteadily(t, c, topic, parts, kpis, 100, 100*time.Millisecond)

	var uncommitted int // samples delivered but not committed, summed over the kills
	sh := startProcess(t, "route", "--config", cfg)
	eventually(t, func() bool { return pickle.Len() >= len(want)/6 }, 90*time.Second, "a sixth delivered", sh)
	n, committed := killAt(t, c, sh, pickle, group, topic)
	requireCommittedDelivered(t, committed, parts, kpis, pickle.Samples())
	uncommitted += n - 6*int(committedMsgs(committed))

	start := time.Now()
	sh = startProcess(t, "route", "--config", cfg)
	took := waitGrowth(t, pickle, pickle.Len(), 30*time.Second, "delivery after the first restart", sh)
	t.Logf("first restart: delivery resumed %v after the process started", took.Round(time.Millisecond))
	// Killed again within two seconds of its start.
	time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))
	n, committed = killAt(t, c, sh, pickle, group, topic)
	requireCommittedDelivered(t, committed, parts, kpis, pickle.Samples())
	uncommitted += n - 6*int(committedMsgs(committed))

	before := pickle.Len()
	sh = startProcess(t, "route", "--config", cfg)
	resumed := waitGrowth(t, pickle, before, 60*time.Second, "delivery after the second restart", sh)
	require.Less(t, resumed, 5*time.Second, "delivery resumes within 5 s of the restart, not after a session timeout")
	produced()
	requireAllArrive(t, want, 120*time.Second, pickle)
	require.Eventually(t, func() bool { return c.CommittedTotal(t, group, topic) == int64(len(kpis)) }, 30*time.Second, 50*time.Millisecond)
	logs := sh.logs.String()
	_, code := sh.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	for _, a := range assignments(logs) {
		require.NotEmpty(t, a, "the third instance is never given an empty assignment:\n%s", logs)
	}
	require.NotEmpty(t, assignments(logs), "the third instance was assigned partitions")
	dups := pickle.Len() - len(want)
	require.LessOrEqual(t, dups, uncommitted, "duplicates are at most what was delivered but not committed at the kills")
	t.Logf("second restart: delivery resumed %v after the process started; %d duplicate samples (bound: %d delivered but uncommitted at the kills)",
		resumed.Round(time.Millisecond), dups, uncommitted)
}
