//go:build linux

package main

// Consumer groups on Apache Kafka: members killed, duplicate instance ids,
// and KIP-848's consumer protocol.

import (
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkabroker"
)

// ownedRE matches the consumer's assignment log lines.
var ownedRE = regexp.MustCompile(`partitions (assigned|revoked).*partitions=(\S*)`)

// hasAllPartitions reports whether a shovel's log, replayed (eager
// protocol: all revoked, all assigned; incremental: some at a time), ends
// with it owning all parts partitions of topic.
func hasAllPartitions(logs string, topic string, parts int) bool {
	owned := map[string]bool{}
	for _, m := range ownedRE.FindAllStringSubmatch(logs, -1) {
		for _, tp := range strings.Split(m[2], ",") {
			if strings.HasPrefix(tp, topic+"[") {
				owned[tp] = m[1] == "assigned"
			}
		}
	}
	n := 0
	for _, own := range owned {
		if own {
			n++
		}
	}
	return n == parts
}

// groupMembersKilled runs two shovels in one group, SIGKILLs one mid-stream
// and checks that the other takes over its partitions and nothing is lost.
func groupMemberKilled(t *testing.T, name, settings string) {
	c := sharedKafka(t)
	topic, group, parts := "kpis.real-pair-"+name, "real-pair-"+name, int32(4)
	c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: parts})
	pickle := carbontest.ListenPickle(t)
	cfg := writeConfig(t, pickleConfig(c.Addr(), topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t), settings))
	kpis := sliceKPIs("realpair", 4000, recent())
	want, produced := produceSteadily(t, c, topic, parts, kpis, 50, 100*time.Millisecond)
	first := startProcess(t, "route", "--config", cfg)
	second := startProcess(t, "route", "--config", cfg)
	eventually(t, func() bool {
		a, b := assignments(first.logs.String()), assignments(second.logs.String())
		return len(a) > 0 && len(b) > 0 && a[len(a)-1] != "" && b[len(b)-1] != "" && pickle.Len() > 0
	}, 90*time.Second, "both members have partitions", first, second)
	require.False(t, hasAllPartitions(second.logs.String(), topic, int(parts)), "the partitions are shared before the kill")
	_, code := first.signal(t, syscall.SIGKILL)
	require.Equal(t, -1, code)
	killed := time.Now()
	eventually(t, func() bool { return hasAllPartitions(second.logs.String(), topic, int(parts)) }, 60*time.Second,
		"the survivor is assigned every partition", second)
	t.Logf("the survivor had every partition %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	produced()
	requireAllArrive(t, want, 120*time.Second, pickle)
	require.Eventually(t, func() bool { return c.CommittedTotal(t, group, topic) == int64(len(kpis)) }, 30*time.Second, 50*time.Millisecond)
	_, code = second.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	t.Logf("%d samples received for %d distinct", pickle.Len(), len(want))
}

// Classic protocol, static members (the default ids -1 and -2 on this
// host): the group keeps the killed member's partitions for its session
// timeout (6 s here), then gives them to the survivor.
func TestRealKafkaGroupMemberKilled(t *testing.T) {
	groupMemberKilled(t, "classic", "{session.timeout.ms: 6000, heartbeat.interval.ms: 500}")
}

// The same under KIP-848's consumer protocol, where the broker's
// group.consumer.session.timeout.ms (6 s in these clusters) applies.
func TestRealKafkaConsumerProtocolGroupMemberKilled(t *testing.T) {
	groupMemberKilled(t, "consumer", "{group.protocol: consumer}")
}

// TestRealKafkaConsumerProtocolDrainAndRestart: under KIP-848, shovel's
// commit-after-delivery works with incremental assignment: an exact drain,
// a clean restart that repeats nothing, and a SIGKILL that repeats at most
// what was delivered but not committed.
func TestRealKafkaConsumerProtocolDrainAndRestart(t *testing.T) {
	c := sharedKafka(t)
	const topic, group, parts = "kpis.real-848", "real-848", 3
	c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: parts})
	pickle := carbontest.ListenPickle(t)
	cfg := writeConfig(t, pickleConfig(c.Addr(), topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t), "{group.protocol: consumer}"))
	kpis := sliceKPIs("real848", 6000, recent())
	want, produced := produceSteadily(t, c, topic, parts, kpis, 100, 100*time.Millisecond)

	sh := startProcess(t, "route", "--config", cfg)
	eventually(t, func() bool { return pickle.Len() >= len(want)/6 }, 90*time.Second, "a sixth delivered", sh)
	_, code := sh.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	require.NotContains(t, sh.logs.String(), "static group membership", "no default instance id under the consumer protocol")
	time.Sleep(200 * time.Millisecond)
	atStop := len(distinct(pickle.Samples()))
	require.Equal(t, atStop, pickle.Len(), "no duplicates so far")
	committed := c.Committed(t, group, topic)
	require.Equal(t, int64(atStop/6), committedMsgs(committed), "a clean stop commits exactly what was delivered")

	sh = startProcess(t, "route", "--config", cfg)
	eventually(t, func() bool { return pickle.Len() >= len(want)/2 }, 90*time.Second, "half delivered", sh)
	n, committed := killAt(t, c, sh, pickle, group, topic)
	requireCommittedDelivered(t, committed, parts, kpis, pickle.Samples())
	uncommitted := n - 6*int(committedMsgs(committed))

	before := pickle.Len()
	sh = startProcess(t, "route", "--config", cfg)
	resumed := waitGrowth(t, pickle, before, 60*time.Second, "delivery after the restart", sh)
	t.Logf("consumer protocol: delivery resumed %v after a SIGKILL and restart (the broker's session timeout is 6 s)",
		resumed.Round(time.Millisecond))
	produced()
	requireAllArrive(t, want, 120*time.Second, pickle)
	require.Eventually(t, func() bool { return c.CommittedTotal(t, group, topic) == int64(len(kpis)) }, 30*time.Second, 50*time.Millisecond)
	_, code = sh.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	dups := pickle.Len() - len(want)
	require.LessOrEqual(t, dups, uncommitted, "duplicates are at most what was delivered but not committed at the kill")
	t.Logf("%d duplicate samples (bound %d)", dups, uncommitted)
}

// TestRealKafkaDuplicateInstanceID: two shovels given one kafka.instance_id.
// On one host the second refuses to start; on two hosts (two lock
// directories) the broker fences one of them, which exits with an error
// naming kafka.instance_id, and the other goes on. Neither comes back to
// fence the other.
func TestRealKafkaDuplicateInstanceID(t *testing.T) {
	c := sharedKafka(t)
	const topic, parts = "kpis.real-dup", 2
	c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: parts})
	for _, tt := range []struct {
		name, settings string
		// newcomerWins: classic fences the member already there; KIP-848
		// refuses the newcomer.
		newcomerWins bool
	}{
		{"classic", "{}", true},
		{"consumer", "{group.protocol: consumer}", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			group := "real-dup-" + tt.name
			pickle := carbontest.ListenPickle(t)
			cfg := writeConfig(t, withKafkaKey(pickleConfig(c.Addr(), topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t), tt.settings),
				"instance_id", "collector-a"))
			hostA := []string{"TMPDIR=" + t.TempDir()}
			first := startProcessEnv(t, hostA, "route", "--config", cfg)
			eventually(t, func() bool { return len(assignments(first.logs.String())) > 0 }, 60*time.Second, "first member joined", first)

			// Same host: refused before it reaches the broker.
			start := time.Now()
			same := startProcessEnv(t, hostA, "route", "--config", cfg)
			select {
			case <-same.done:
			case <-time.After(30 * time.Second):
				t.Fatal("a second shovel with the same kafka.instance_id on one host did not exit")
			}
			require.NotZero(t, same.cmd.ProcessState.ExitCode())
			require.Contains(t, same.logs.String(), `another shovel on this host consumes group "`+group+`" as "collector-a"`)
			require.Contains(t, same.logs.String(), "kafka.instance_id")
			t.Logf("same host: the second shovel exited in %v: %s", time.Since(start).Round(time.Millisecond), lastLine(same.logs.String()))

			// Another host.
			c.Produce(t, produceRecs(topic, parts, sliceKPIs("dup."+tt.name, 50, recent()))...)
			start = time.Now()
			other := startProcessEnv(t, []string{"TMPDIR=" + t.TempDir()}, "route", "--config", cfg)
			loser, winner := other, first
			if tt.newcomerWins {
				loser, winner = first, other
			}
			select {
			case <-loser.done:
			case <-time.After(60 * time.Second):
				t.Fatalf("neither shovel exited; first:\n%s\nsecond:\n%s", first.logs, other.logs)
			}
			took := time.Since(start)
			require.NotZero(t, loser.cmd.ProcessState.ExitCode())
			require.Contains(t, loser.logs.String(), "kafka.instance_id")
			require.Contains(t, loser.logs.String(), `"collector-a"`)
			t.Logf("two hosts: the %s exited after %v: %s", map[bool]string{true: "first", false: "newcomer"}[tt.newcomerWins],
				took.Round(time.Millisecond), lastLine(loser.logs.String()))
			// The winner goes on: it consumes what is produced next, and
			// stays up.
			n := pickle.Len()
			c.Produce(t, produceRecs(topic, parts, sliceKPIs("dup2."+tt.name, 50, recent()+100))...)
			eventually(t, func() bool { return pickle.Len() >= n+300 }, 60*time.Second, "the remaining member consumes", winner)
			time.Sleep(2 * time.Second)
			require.True(t, winner.running(), "the remaining member is not fenced in turn")
			_, code := winner.signal(t, syscall.SIGTERM)
			require.Equal(t, 0, code)
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestRealKafkaTwoQuickKillsDynamicMembership replays what issue #15 saw on
// kfake: without static membership, shovel SIGKILLed twice within two
// seconds and started a third time, on a one-partition topic with a
// backlog. On Apache Kafka the third instance may first be given an empty
// assignment — the group still lists the killed second instance, whose
// join was under way, and the leader's assignor gives it the only
// partition — but the broker expires that member after session.timeout.ms
// and rebalances, and the third instance then gets the partition. The stall
// is bounded by the session timeouts of the dead members: here 6 s each.
func TestRealKafkaTwoQuickKillsDynamicMembership(t *testing.T) {
	c := sharedKafka(t)
	const topic, group, parts = "kpis.real-quick", "real-quick", 1
	const session = 6 * time.Second
	c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: parts})
	kpis := sliceKPIs("realquick", 20000, recent()-20000)
	want := produceTo(t, c, topic, parts, kpis)
	pickle := carbontest.ListenPickle(t)
	cfg := writeConfig(t, withKafkaKey(pickleConfig(c.Addr(), topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t),
		fmt.Sprintf("{session.timeout.ms: %d, heartbeat.interval.ms: 500}", session.Milliseconds())), "instance_id", "none"))

	sh := startProcess(t, "route", "--config", cfg)
	eventually(t, func() bool { return pickle.Len() > 0 }, 60*time.Second, "first delivery", sh)
	killAt(t, c, sh, pickle, group, topic)
	second := startProcess(t, "route", "--config", cfg)
	time.Sleep(1500 * time.Millisecond)
	killAt(t, c, second, pickle, group, topic)
	t.Logf("second instance, killed 1.5 s after its start, had been assigned: %q", assignments(second.logs.String()))

	before := pickle.Len()
	third := startProcess(t, "route", "--config", cfg)
	resumed := waitGrowth(t, pickle, before, 3*session+20*time.Second, "delivery by the third instance", third)
	t.Logf("third instance: delivery resumed %v after its start; its assignments: %q", resumed.Round(100*time.Millisecond),
		assignments(third.logs.String()))
	require.Less(t, resumed, 3*session+10*time.Second, "bounded by the dead members' session timeouts")
	requireAllArrive(t, want, 120*time.Second, pickle)
	_, code := third.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	require.EqualValues(t, len(kpis), c.CommittedTotal(t, group, topic))
}
