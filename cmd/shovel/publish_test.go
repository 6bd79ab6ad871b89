package main

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
	routerkpi "github.com/shovel-metrics/shovel/router/kpi"
	"github.com/shovel-metrics/shovel/router/metric"
)

// decodeSlice runs shovel's slice decoder over one message.
func decodeSlice(t *testing.T, value []byte) []metric.Sample {
	t.Helper()
	f, err := decoders.Lookup("slice")
	require.NoError(t, err)
	d, err := f(nil, metric.Env{})
	require.NoError(t, err)
	var res metric.Result
	require.NoError(t, d.Decode(&metric.Message{Value: value}, &res))
	require.Empty(t, res.Rejected)
	return res.Samples
}

// readRecords reads at least n records of topic from its start, with a
// client independent of the producer under test.
func readRecords(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "got %d of %d records", len(out), n)
		out = append(out, fs.Records()...)
	}
	return out
}

func TestPublishSendsProcessKPIs(t *testing.T) {
	skipShort(t)
	const topic = "kpis.publish"
	b := kafkatest.Start(t, 1, topic)
	sh := startShovel(t, "publish", "-K", b.Addr, "-t", topic, "--interval", "100ms", "--prefix", "test.pub.host1")
	recs := readRecords(t, b.Addr, topic, 3)
	require.Equal(t, 0, sh.stop(t))

	var prevTS float64
	for i, r := range recs {
		require.Equal(t, "test.pub.host1", string(r.Key), "keyed by object path")
		samples := decodeSlice(t, r.Value)
		var names []string
		for _, s := range samples {
			name, ok := strings.CutPrefix(s.Path, "test.pub.host1.")
			require.True(t, ok, s.Path)
			names = append(names, name)
			require.InDelta(t, float64(time.Now().Unix()), s.Time, 120, "ts is now")
			require.Equal(t, samples[0].Time, s.Time, "one ts per message")
		}
		require.Equal(t, routerkpi.ProcessMetrics(), names, "message %d", i)
		require.Greater(t, samples[0].Time, prevTS, "a new measurement each interval")
		prevTS = samples[0].Time
	}
	require.Contains(t, sh.logs.String(), "publishing KPIs")
}

func TestPublishUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"publish", "--prefix", "has space"}, `--prefix: "has space" is not a metric path`},
		{[]string{"publish", "--interval", "1ns"}, "--interval: must be at least 10ms, got 1ns"},
		{[]string{"publish", "-K", ""}, "-K/--kafka: must name at least one broker"},
		{[]string{"publish", "-t", "^re.*"}, `-t/--topic: must be a topic name, got "^re.*"`},
		{[]string{"publish", "--log-level", "loud"}, `--log-level: must be debug, info, warn or error, got "loud"`},
		{[]string{"publish", "extra"}, `unknown command "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := runCaptured(t, tt.args...)
			require.Equal(t, exitUsage, code, errOut)
			require.Contains(t, errOut, tt.want)
		})
	}
}

// shovel publish --format voltha-event publishes as the openolt adapter
// does: protobuf KPI events on voltha.events, keyed by raise time, which
// shovel's voltha-event decoder reads back under the device id.
func TestPublishVolthaEvents(t *testing.T) {
	skipShort(t)
	b := kafkatest.Start(t, 1, routerkpi.VolthaTopic)
	sh := startShovel(t, "publish", "-K", b.Addr, "--format", "voltha-event", "--interval", "100ms", "--device-id", "olt-test")
	recs := readRecords(t, b.Addr, routerkpi.VolthaTopic, 6)
	require.Equal(t, 0, sh.stop(t))

	f, err := decoders.Lookup("voltha-event")
	require.NoError(t, err)
	dec, err := f(nil, metric.Env{})
	require.NoError(t, err)
	titles := map[string]bool{}
	for _, r := range recs {
		var res metric.Result
		require.NoError(t, dec.Decode(&metric.Message{Value: r.Value}, &res))
		require.Empty(t, res.Rejected)
		require.NotEmpty(t, res.Samples)
		for _, s := range res.Samples {
			require.True(t, strings.HasPrefix(s.Path, "voltha.olt-test."), s.Path)
			titles[strings.Split(s.Path, ".")[2]] = true
			require.Equal(t, string(r.Key), strconv.FormatInt(int64(s.Time), 10), "keyed by raise time in seconds")
		}
	}
	require.True(t, titles["ProcessStats"], "titles %v", titles)
	if runtime.GOOS == "linux" {
		require.True(t, titles["NNIStats"], "every interface an NNI port: titles %v", titles)
	}
}
