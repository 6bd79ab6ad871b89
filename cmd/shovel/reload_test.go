package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

func TestReloadOnSIGHUPLosesNothing(t *testing.T) {
	skipShort(t)
	const topic = "kpis.reload"
	b := kafkatest.Start(t, 2, topic)
	before, after := carbontest.ListenPickle(t), carbontest.ListenPickle(t)
	cfgPath := filepath.Join(t.TempDir(), "shovel.yaml")
	writeCfg := func(route string) {
		require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
kafka: {brokers: "%s", topics: [%s], group: it-reload}
routes:
  - %s
outputs:
  before: {kind: carbon-pickle, address: "%s"}
  after:  {kind: carbon-pickle, address: "%s"}
`, b.Addr, topic, route, before.Addr(), after.Addr())), 0o600))
	}
	writeCfg(`{match: {type: slice}, decoder: slice, outputs: [before]}`)
	sh := startShovel(t, "route", "--config", cfgPath)
	require.Eventually(t, func() bool { return strings.Contains(sh.logs.String(), "partitions assigned") },
		30*time.Second, 10*time.Millisecond)

	// Messages flow the whole time: 40 rounds of 50, with the reload in the middle.
	var want []carbontest.Sample
	ts := recent()
	for round := 0; round < 40; round++ {
		want = append(want, produceKPIs(t, b, topic, 2, sliceKPIs(fmt.Sprintf("reload.r%d", round), 50, ts))...)
		ts += 50
		switch round {
		case 15:
			writeCfg(`{match: {type: slice}, decoder: slice, outputs: [after], rules: [{add_prefix: v2}]}`)
			require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
		case 25:
			writeCfg(`{match: {type: slice}, decoder: nope, outputs: [after]}`) // refused: the running config stays
			require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Every sample arrives, before the reload as it was, after it with the new rule.
	got := func() []carbontest.Sample {
		all := before.Samples()
		for _, s := range after.Samples() {
			require.True(t, strings.HasPrefix(s.Path, "v2."), s.Path)
			s.Path = strings.TrimPrefix(s.Path, "v2.")
			all = append(all, s)
		}
		return distinct(all)
	}
	require.Eventually(t, func() bool { return len(got()) >= len(want) }, 60*time.Second, 20*time.Millisecond)
	// The reloads are counted, and the last one's refusal shows.
	m := statusAddr.FindStringSubmatch(sh.logs.String())
	require.NotNil(t, m)
	var body []byte
	require.Eventually(t, func() bool {
		resp, err := http.Get(m[1] + "/metrics")
		require.NoError(t, err)
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		return metricValue(t, string(body), `shovel_route_messages_total{route="routes[0]"}`) == 40*50
	}, 10*time.Second, 20*time.Millisecond, "every message, counted per route, across the reloads")
	require.EqualValues(t, 1, metricValue(t, string(body), `shovel_config_reloads_total{result="success"}`))
	require.EqualValues(t, 1, metricValue(t, string(body), `shovel_config_reloads_total{result="failure"}`))
	require.EqualValues(t, 0, metricValue(t, string(body), `shovel_config_last_reload_success`))
	require.InDelta(t, float64(time.Now().Unix()), metricValue(t, string(body), `shovel_config_last_reload_timestamp_seconds`), 120)
	require.Contains(t, string(body), `shovel_build_info{commit=`)
	require.EqualValues(t, 40*50*6, metricValue(t, string(body), `shovel_route_samples_total{route="routes[0]"}`))
	require.Equal(t, 0, sh.stop(t))
	require.Equal(t, sortSamples(want), got())
	require.NotZero(t, before.Len())
	require.NotZero(t, after.Len())
	logs := sh.logs.String()
	require.Contains(t, logs, "config reloaded")
	require.Contains(t, logs, "config reload refused")
	require.Contains(t, logs, `unknown decoder \"nope\"`)
}
