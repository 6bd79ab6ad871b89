//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
	"github.com/shovel-metrics/shovel/router/memory"
)

// TestSoak runs shovel as a process for SHOVEL_SOAK_DURATION (default 3m)
// under a steady flow with 1% bad messages while Carbon restarts every 30
// s, and reports samples in and out, RSS and goroutines over time. It fails
// on any lost sample, and when RSS or goroutines grow instead of staying
// flat. Only with SHOVEL_SOAK=1 (`make soak`).
//
// With SHOVEL_SOAK_HOSTILE=1 as well (`make soak-hostile`) the mix is
// hostile: besides the bad messages, 1 MB messages, records with 1 000
// headers, the output-amplification attacks of issue 11, a SIGHUP reload
// every 5 s, and Carbon away for 2 s every 10 s. It then also fails when
// the RSS passes the bound of docs/memory.md for the default budget.
func TestSoak(t *testing.T) {
	if os.Getenv("SHOVEL_SOAK") != "1" {
		t.Skip("soak test: set SHOVEL_SOAK=1 (make soak)")
	}
	hostile := os.Getenv("SHOVEL_SOAK_HOSTILE") == "1"
	duration := 3 * time.Minute
	if d := os.Getenv("SHOVEL_SOAK_DURATION"); d != "" {
		var err error
		duration, err = time.ParseDuration(d)
		require.NoError(t, err, "SHOVEL_SOAK_DURATION")
	}
	const (
		topic, group = "kpis.soak", "soak"
		parts        = 4
		perTick      = 50 // messages every 100 ms: 500 a second, 3000 samples
		tick         = 100 * time.Millisecond
		downFor      = 2 * time.Second
	)
	restartEvery := 30 * time.Second
	if hostile {
		restartEvery = 10 * time.Second
	}
	bad := [][]byte{
		[]byte(`{"type":"slice","ts":1,"data":{"a":{"b":1`),
		[]byte(`{"type":"slice","ts":"x","data":{"a":{"b":1}}}`),
		[]byte(`{"type":"slice","ts":1700000000,"data":{"soakbad":{"b":"twelve"}}}`),
		[]byte("\xff\xfe not json"),
		[]byte(`{"type":"nope"}`),
	}
	b := startBroker(t, parts, topic, false)
	pickle := carbontest.ListenPickle(t)
	listeners := []*carbontest.Listener{pickle}
	cfg := writeConfig(t, strings.Replace(pickleConfig(b.Addr, topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t), ""),
		"flush_interval: 200ms", "flush_interval: 1s", 1))
	sh := startProcess(t, "route", "--config", cfg)
	metricsURL := processStatusURL(t, sh) + "/metrics"
	var hostileMsgs [][]byte
	headers := map[string]string{}
	if hostile {
		for _, m := range amplifyingMessages(recentTS()) {
			hostileMsgs = append(hostileMsgs, m)
		}
		// 1 MB of good samples no route of the soak takes ("soakbig" is a
		// slice, so they are decoded and delivered, and must arrive).
		for i := range 1000 {
			headers[strconv.Itoa(i)] = "h"
		}
	}
	nextReload := time.Now().Add(5 * time.Second)
	reloads := 0

	// Timestamps a second apart from 300 days ago: inside the window for
	// any soak shorter than that many seconds / 500.
	ts0 := time.Now().Add(-300 * 24 * time.Hour).Unix()
	var want []carbontest.Sample
	produced, badProduced := 0, 0
	start := time.Now()
	nextRestart := start.Add(restartEvery)
	nextReport := start
	type point struct {
		at         time.Duration
		rss        float64
		goroutines float64
	}
	var points []point
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for time.Since(start) < duration {
		<-ticker.C
		chunk := produced / perTick
		kpis := sliceKPIs(fmt.Sprintf("soak.c%d", chunk), perTick, ts0+int64(produced))
		var recs []kafkatest.Record
		for i, k := range kpis {
			recs = append(recs, kafkatest.Record{Topic: topic, Partition: int32(produced+i) % parts, Value: k.value})
			want = append(want, k.want...)
			if (produced+i)%100 == 99 { // 1% bad
				recs = append(recs, kafkatest.Record{Topic: topic, Partition: int32(produced+i) % parts, Value: bad[badProduced%len(bad)]})
				badProduced++
			}
		}
		produced += len(kpis)
		if hostile {
			tickN := produced / perTick
			switch tickN % 10 {
			case 3: // a 1 MB message whose samples must all arrive
				big := bigSliceMessages(fmt.Sprintf("soakbig.t%d", tickN), 1, 1_000_000, ts0+int64(produced))
				recs = append(recs, kafkatest.Record{Topic: topic, Partition: int32(tickN) % parts, Value: big[0]})
				want = append(want, sliceSamples(t, big[0])...)
			case 6: // an amplification attack: rejected whole
				recs = append(recs, kafkatest.Record{Topic: topic, Partition: int32(tickN) % parts, Value: hostileMsgs[tickN%len(hostileMsgs)]})
				badProduced++
			case 8: // a good message with 1 000 headers
				k := sliceKPIs(fmt.Sprintf("soakhdr.t%d", tickN), 1, ts0+int64(produced))[0]
				recs = append(recs, kafkatest.Record{Topic: topic, Partition: int32(tickN) % parts, Value: k.value, Headers: headers})
				want = append(want, k.want...)
			}
			if time.Now().After(nextReload) {
				require.NoError(t, sh.cmd.Process.Signal(syscall.SIGHUP))
				reloads++
				nextReload = time.Now().Add(5 * time.Second)
			}
		}
		require.NoError(t, b.ProduceContext(t.Context(), recs...))
		require.True(t, sh.running(), "shovel exited: %v", sh.err)

		if time.Now().After(nextRestart) {
			cur := listeners[len(listeners)-1]
			closeBetweenFrames(t, cur)
			time.Sleep(downFor)
			listeners = append(listeners, carbontest.ListenPickleAt(t, cur.Addr()))
			nextRestart = time.Now().Add(restartEvery)
		}
		if time.Now().After(nextReport) {
			m := scrape(t, metricsURL)
			p := point{at: time.Since(start).Round(time.Second), rss: m["process_resident_memory_bytes"], goroutines: m["go_goroutines"]}
			points = append(points, p)
			t.Logf("%6v produced %d messages (%d bad), samples in %d, out %d; shovel RSS %.0f MiB, %v goroutines",
				p.at, produced+badProduced, badProduced, len(want), lenOf(listeners...), p.rss/(1<<20), p.goroutines)
			nextReport = time.Now().Add(10 * time.Second)
		}
	}
	requireAllArrive(t, want, 120*time.Second, listeners...)
	hwm := procStatus(t, sh.cmd.Process.Pid, "VmHWM")
	_, code := sh.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	t.Logf("soak done: %d samples in, %d written to Carbon (%d distinct, %d duplicates), %d Carbon restarts, %d reloads",
		len(want), lenOf(listeners...), len(distinct(samplesOf(listeners...))), lenOf(listeners...)-len(want), len(listeners)-1, reloads)
	if hostile {
		peak := float64(hwm)
		bound := float64(rssBound(memory.DefaultLimit, parts, 1_000_000))
		t.Logf("hostile: peak RSS sampled %.0f MiB, bound %.0f MiB", peak/(1<<20), bound/(1<<20))
		if !raceEnabled {
			require.LessOrEqual(t, peak, bound, "RSS within the memory budget's bound")
		}
	}

	// Flat: after a minute of warm-up, neither RSS nor goroutines keep growing.
	var warm *point
	for i := range points {
		if points[i].at >= time.Minute {
			warm = &points[i]
			break
		}
	}
	if warm == nil {
		t.Logf("too short to judge RSS and goroutines (less than a minute after warm-up)")
		return
	}
	last := points[len(points)-1]
	require.LessOrEqual(t, last.goroutines, warm.goroutines+20, "goroutines grow: %v at %v, %v at %v", warm.goroutines, warm.at, last.goroutines, last.at)
	require.LessOrEqual(t, last.rss, 1.5*warm.rss+64<<20, "RSS grows: %.0f MiB at %v, %.0f MiB at %v", warm.rss/(1<<20), warm.at, last.rss/(1<<20), last.at)
}

// processStatusURL waits for shovel to log where its status endpoints listen.
func processStatusURL(t *testing.T, p *shovelProc) string {
	var url string
	eventually(t, func() bool {
		if m := statusAddr.FindStringSubmatch(p.logs.String()); m != nil {
			url = m[1]
			return true
		}
		return false
	}, 30*time.Second, "status endpoints logged", p)
	return url
}

// scrape reads the unlabelled gauges of a Prometheus text exposition.
func scrape(t *testing.T, url string) map[string]float64 {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out
}
