package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStopWithCarbonDownExitsOne: on SIGTERM with no output able to
// deliver, shovel waits at most shutdown_timeout, says what it left behind
// and exits 1; nothing it could not deliver is committed, so the messages
// are read again on the next start (docs/operations.md, "Stopping").
func TestStopWithCarbonDownExitsOne(t *testing.T) {
	skipShort(t)
	const topic, group = "kpis.down", "it-down"
	b := startBroker(t, 1, topic, false)
	b.produceKPIs(t, topic, 1, sliceKPIs("down", 5, recentTS()))
	cfg := strings.Replace(pickleConfig(b.Addr, topic, group, "127.0.0.1:"+deadPort(t), "127.0.0.1:"+deadPort(t), ""),
		"shutdown_timeout: 20s", "shutdown_timeout: 1s", 1)
	sh := startShovel(t, "route", "--config", writeConfig(t, cfg))
	require.Eventually(t, func() bool {
		m := statusAddr.FindStringSubmatch(sh.logs.String())
		if m == nil {
			return false
		}
		n := 0.0
		for _, c := range scrapeCounters(t, m[1]+"/metrics", "shovel_messages_total") {
			n += c.value
		}
		return n == 5
	}, 30*time.Second, 50*time.Millisecond, "shovel takes the messages")
	start := time.Now()
	code := sh.stop(t)
	took := time.Since(start)
	require.Equal(t, exitRuntime, code)
	require.Less(t, took, 10*time.Second, "shutdown_timeout bounds the wait")
	require.Contains(t, sh.logs.String(), "shovel: router: shutdown deadline reached with undelivered batches")
	require.Zero(t, b.CommittedTotal(t, group, topic), "nothing undelivered is committed")
}
