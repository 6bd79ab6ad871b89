package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

// TestRouteFallbackNotDelayedByBlackHoledDials is issue 11's item 8: an
// @carbon output whose Consul answer is six addresses that drop every
// packet, with a healthy fallback. Before, start-up waited 6 ×
// connect_timeout, the fallback got its first sample after 65 s and then
// a burst every 30 s, one per dial the sink waited for. Now a dial tries
// the addresses together within one connect_timeout, in the background,
// and the batches go to the fallback meanwhile.
func TestRouteFallbackNotDelayedByBlackHoledDials(t *testing.T) {
	skipShort(t)
	const topic = "kpis.blackhole"
	b := kafkatest.Start(t, 1, topic)
	var holes []string
	for range 6 {
		holes = append(holes, carbontest.BlackHole(t))
	}
	consul := fakeConsul(t, map[string][]string{"carbon": holes})
	line := carbontest.ListenPlaintext(t)

	cfg := filepath.Join(t.TempDir(), "shovel.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
kafka: {brokers: "%s", topics: [%s], group: it-blackhole}
routes: [{match: {type: slice}, decoder: slice, outputs: [graphite]}]
outputs:
  graphite: {kind: carbon-pickle, address: "@carbon", fallback: line, connect_timeout: 5s}
  line: {kind: carbon-plaintext, address: "%s"}
`, b.Addr, topic, line.Addr())), 0o600))

	// One message every 100 ms for 15 s: three dial attempts' worth.
	kpis := sliceKPIs("hole", 150, recent())
	var want []carbontest.Sample
	for _, k := range kpis {
		want = append(want, k.want...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan error, 1)
	go func() {
		for _, k := range kpis {
			if err := b.ProduceContext(ctx, kafkatest.Record{Topic: topic, Value: k.value}); err != nil {
				produced <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		produced <- nil
	}()

	start := time.Now()
	sh := startShovel(t, "route", "--config", cfg, "-c", strings.TrimPrefix(consul.URL, "http://"))
	// Watch the fallback: when did it first get samples, and how long was
	// the longest wait between two deliveries while messages kept coming?
	var (
		first, last, maxGap time.Duration
		seen                int
		prodErr             error
		producing           = true
	)
	deadline := time.Now().Add(90 * time.Second)
	for (producing || seen < len(want)) && time.Now().Before(deadline) {
		select {
		case prodErr = <-produced:
			producing = false
		case <-time.After(10 * time.Millisecond):
		}
		if n := line.Len(); n > seen {
			at := time.Since(start)
			if seen == 0 {
				first = at
			} else if producing {
				maxGap = max(maxGap, at-last)
			}
			seen, last = n, at
		}
	}
	require.NoError(t, prodErr)
	require.Equal(t, 0, sh.stop(t))
	t.Logf("first sample on the fallback after %v; longest gap between deliveries %v", first, maxGap)
	require.Equal(t, sortSamples(want), distinct(line.Samples()), "every sample reached the fallback")
	require.NotZero(t, first)
	require.Less(t, first, 15*time.Second, "the fallback's first sample does not wait for the dials (was 65 s)")
	require.Less(t, maxGap, 2500*time.Millisecond,
		"no batch waited for a dial: a Write that waited would leave a gap of connect_timeout (5 s)")
	require.Contains(t, sh.logs.String(), "i/o timeout", "the dials did fail, each within connect_timeout")
}
