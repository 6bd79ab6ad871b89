package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

var statusAddrRE = regexp.MustCompile(`msg="status endpoints" address=(http://\S+)`)

func statusURL(t *testing.T, sh *shovelRun) string {
	var url string
	require.Eventually(t, func() bool {
		m := statusAddrRE.FindStringSubmatch(sh.logs.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}, 30*time.Second, 10*time.Millisecond)
	return url
}

func get(t *testing.T, url string) (int, string) {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the first sample line starting with series.
func metricValue(t *testing.T, body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			require.NoError(t, err)
			return v
		}
	}
	return -1
}

func TestStatusEndpoints(t *testing.T) {
	skipShort(t)
	const topic = "kpis.status"
	b := kafkatest.Start(t, 1, topic)
	pickle := carbontest.ListenPickle(t)
	pickleAddr := pickle.Addr()
	sh := startShovel(t, "route", "-K", b.Addr, "-t", topic, "-g", "it-status",
		"-H", "127.0.0.1", "-p", port(t, pickleAddr), "--line-port", deadPort(t))
	url := statusURL(t, sh)

	code, body := get(t, url+"/healthz")
	require.Equal(t, http.StatusOK, code, body)

	want := produceKPIs(t, b, topic, 1, sliceKPIs("status", 100, recent()))
	require.Eventually(t, func() bool { return pickle.Len() >= len(want) }, 60*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		code, _ := get(t, url+"/readyz")
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)

	_, body = get(t, url+"/metrics")
	require.EqualValues(t, 100, metricValue(t, body, "shovel_messages_total"))
	require.EqualValues(t, len(want), metricValue(t, body, `shovel_samples_decoded_total{decoder="slice"}`))
	require.EqualValues(t, len(want), metricValue(t, body, `shovel_output_samples_written_total{output="graphite",via="graphite"}`))
	require.Contains(t, body, "shovel_output_write_seconds_bucket")
	require.Contains(t, body, `shovel_output_queue_messages{output="graphite"}`)
	require.EqualValues(t, 0, metricValue(t, body, `shovel_output_reconnects_total{output="graphite"}`))
	require.Contains(t, body, "go_goroutines")

	// Carbon goes away while messages keep coming: not ready, naming the output.
	pickle.Close()
	more := produceKPIs(t, b, topic, 1, sliceKPIs("status.more", 20, recent()+1000))
	var rep struct {
		Ready    bool              `json:"ready"`
		NotReady map[string]string `json:"not_ready"`
	}
	require.Eventually(t, func() bool {
		code, body := get(t, url+"/readyz")
		require.NoError(t, json.Unmarshal([]byte(body), &rep))
		return code == http.StatusServiceUnavailable
	}, 60*time.Second, 50*time.Millisecond)
	require.False(t, rep.Ready)
	require.Contains(t, rep.NotReady, "output graphite")

	// Carbon returns: ready again, and the waiting samples arrive.
	back := carbontest.ListenPickleAt(t, pickleAddr)
	require.Eventually(t, func() bool { return back.Len() >= len(more) }, 60*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		code, _ := get(t, url+"/readyz")
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	_, body = get(t, url+"/metrics")
	require.GreaterOrEqual(t, metricValue(t, body, `shovel_output_reconnects_total{output="graphite"}`), 1.0)
	require.Equal(t, 0, sh.stop(t))
	require.Equal(t, sortSamples(more), distinct(back.Samples()))
}

func TestSelfMetricsGoToCarbon(t *testing.T) {
	skipShort(t)
	const topic = "kpis.self"
	b := kafkatest.Start(t, 1, topic)
	pickle := carbontest.ListenPickle(t)
	cfg := filepath.Join(t.TempDir(), "shovel.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
kafka: {brokers: "`+b.Addr+`", topics: [`+topic+`], group: it-self}
routes: [{match: {type: slice}, decoder: slice, outputs: [graphite]}]
outputs: {graphite: {kind: carbon-pickle, address: "`+pickle.Addr()+`"}}
self_metrics: {interval: 100ms, prefix: "relay.{host}", outputs: [graphite]}
`), 0o600))
	want := produceKPIs(t, b, topic, 1, sliceKPIs("self", 10, recent()))
	sh := startShovel(t, "route", "--config", cfg)
	host, err := os.Hostname()
	require.NoError(t, err)
	prefix := "relay." + strings.ReplaceAll(host, ".", "_") + "."
	// Eventually a report counts all 10 messages.
	require.Eventually(t, func() bool {
		for _, s := range pickle.Samples() {
			if s.Path == prefix+"messages" && s.Value == 10 {
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 0, sh.stop(t))
	var kpis []carbontest.Sample
	for _, s := range pickle.Samples() {
		if !strings.HasPrefix(s.Path, prefix) {
			kpis = append(kpis, s)
		}
		require.False(t, strings.HasPrefix(s.Path, prefix+"go_") || strings.HasPrefix(s.Path, prefix+"process_"),
			"no runtime series unless self_metrics.runtime: %s", s.Path)
	}
	require.Equal(t, sortSamples(want), sortSamples(kpis))
}
