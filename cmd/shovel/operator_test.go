package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
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

// TestJSONLogsAreJSONToTheEnd: with log.format json every line is a JSON
// object — the final error included — and durations read as in the config.
func TestJSONLogsAreJSONToTheEnd(t *testing.T) {
	skipShort(t)
	const topic, group = "kpis.json", "it-json"
	b := startBroker(t, 1, topic, false)
	cfg := strings.Replace(pickleConfig(b.Addr, topic, group, "127.0.0.1:"+deadPort(t), "127.0.0.1:"+deadPort(t), ""),
		"shutdown_timeout: 20s", "shutdown_timeout: 1s", 1)
	b.produceKPIs(t, topic, 1, sliceKPIs("json", 3, recentTS()))
	sh := startShovel(t, "route", "--config", writeConfig(t, cfg), "--log-format", "json")
	jsonAddr := regexp.MustCompile(`"msg":"status endpoints","address":"(http://[^"]+)"`)
	require.Eventually(t, func() bool {
		m := jsonAddr.FindStringSubmatch(sh.logs.String())
		if m == nil {
			return false
		}
		n := 0.0
		for _, c := range scrapeCounters(t, m[1]+"/metrics", "shovel_messages_total") {
			n += c.value
		}
		return n == 3
	}, 30*time.Second, 20*time.Millisecond, "the messages reach the router")
	require.Equal(t, exitRuntime, sh.stop(t))
	lines := strings.Split(strings.TrimSuffix(sh.logs.String(), "\n"), "\n")
	for _, line := range lines {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "a JSON log line: %s", line)
		if rec["msg"] == "shutting down: flushing outputs" {
			require.Equal(t, "1s", rec["deadline"], "a duration as the config writes it")
		}
	}
	var last map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
	require.Equal(t, "ERROR", last["level"])
	require.Equal(t, "shovel stopped with an error", last["msg"])
	require.Contains(t, last["err"], "shutdown deadline reached with undelivered batches")
	require.NotContains(t, sh.logs.String(), "Telemetry client instance id changed", "at debug only")
}

// TestConfigCheckConnect tries the services a config names: a broker that
// answers, a topic that exists and one that does not, a pattern, a missing
// dead-letter topic, a Carbon that listens and one that does not.
func TestConfigCheckConnect(t *testing.T) {
	skipShort(t)
	b := startBroker(t, 1, "kpis.here", false)
	pickle := carbontest.ListenPickle(t)
	down := "127.0.0.1:" + deadPort(t)
	archive := filepath.Join(t.TempDir(), "archive.txt")
	require.NoError(t, os.WriteFile(archive, []byte("kept\n"), 0o600))
	cfg := writeConfig(t, fmt.Sprintf(`
kafka: {brokers: %q, topics: [kpis.here, kpis.missing, "^kpis\\..*"]}
routes: [{match: {type: slice}, decoder: slice, outputs: [graphite, archive]}]
outputs:
  graphite: {kind: carbon-pickle, address: %q, fallback: line}
  line: {kind: carbon-plaintext, address: %q, connect_timeout: 1s}
  archive: {kind: file, path: %q, append: false}
dead_letter: {topic: shovel.dead}
`, b.Addr, pickle.Addr(), down, archive))
	code, out, errOut := runCaptured(t, "config", "check", "--connect", cfg)
	require.Equal(t, exitRuntime, code, errOut)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 8, out)
	require.Regexp(t, `^FAIL outputs.line: carbon-plaintext "line": not connected, next attempt in \S+ \(last error: dial `+
		regexp.QuoteMeta(down)+`: connection refused\)$`, lines[7])
	require.Equal(t, strings.Join([]string{
		fmt.Sprintf("ok   kafka.brokers: %s answered; the cluster advertises %s", b.Addr, b.Addr),
		"ok   kafka.topics[0] kpis.here: exists",
		"FAIL kafka.topics[1] kpis.missing: no such topic",
		`ok   kafka.topics[2] ^kpis\..*: matches kpis.here`,
		"FAIL dead_letter.topic shovel.dead: no such topic (create it: shovel route refuses to start without it)",
		"--   outputs.archive: not tried (file outputs are opened only by shovel route)",
		"ok   outputs.graphite: connected",
	}, "\n"), strings.Join(lines[:7], "\n"))
	kept, err := os.ReadFile(archive)
	require.NoError(t, err)
	require.Equal(t, "kept\n", string(kept), "checking writes nothing, truncates nothing")
	require.Contains(t, errOut, "shovel: config check --connect: 3 of 7 checks failed")
}

// TestReadyzSaysTheBrokersAreDown: with no broker listening, /readyz says
// that it cannot reach them, not only that the group is not joined yet.
func TestReadyzSaysTheBrokersAreDown(t *testing.T) {
	skipShort(t)
	brokers := "127.0.0.1:" + deadPort(t)
	pickle := carbontest.ListenPickle(t)
	cfg := writeConfig(t, fmt.Sprintf(`
kafka: {brokers: %q, topics: [kpis.nobroker]}
routes: [{match: {type: slice}, decoder: slice, outputs: [graphite]}]
outputs: {graphite: {kind: carbon-pickle, address: %q}}
`, brokers, pickle.Addr()))
	sh := startShovel(t, "route", "--config", cfg)
	var body string
	require.Eventually(t, func() bool {
		m := statusAddr.FindStringSubmatch(sh.logs.String())
		if m == nil {
			return false
		}
		resp, err := http.Get(m[1] + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, "cannot reach the Kafka brokers "+brokers)
	}, 30*time.Second, 50*time.Millisecond, "readyz: %s", body)
	require.Equal(t, 0, sh.stop(t))
}
