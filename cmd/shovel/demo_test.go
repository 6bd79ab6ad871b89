package main

import (
	"context"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	routerkpi "github.com/shovel-metrics/shovel/router/kpi"
)

// demoRun is `shovel demo` running in-process, with stdout and stderr apart.
type demoRun struct {
	cancel         context.CancelFunc
	code           chan int
	stdout, stderr *syncBuffer
}

func startDemo(t *testing.T, args ...string) *demoRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &demoRun{cancel: cancel, code: make(chan int, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	go func() { d.code <- run(ctx, append([]string{"demo"}, args...), d.stdout, d.stderr) }()
	t.Cleanup(func() {
		cancel()
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", d.stdout, d.stderr)
		}
	})
	return d
}

func (d *demoRun) stop(t *testing.T) int {
	t.Helper()
	d.cancel()
	select {
	case c := <-d.code:
		return c
	case <-time.After(60 * time.Second):
		t.Fatal("shovel demo did not stop within 60s")
		return -1
	}
}

// demoLines parses the Carbon plaintext lines the demo printed under
// prefix, requiring every line to be one, under prefix or one of others,
// and returns the distinct timestamps seen per metric.
func demoLines(t *testing.T, out, prefix string, others ...string) map[string]map[float64]bool {
	t.Helper()
	got := map[string]map[float64]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		require.Len(t, f, 3, "a plaintext line: %q", line)
		name, ok := strings.CutPrefix(f[0], prefix+".")
		if !ok && slices.ContainsFunc(others, func(o string) bool { return strings.HasPrefix(f[0], o+".") }) {
			continue
		}
		require.True(t, ok, "published under the prefix: %q", line)
		_, err := strconv.ParseFloat(f[1], 64)
		require.NoError(t, err, line)
		ts, err := strconv.ParseFloat(f[2], 64)
		require.NoError(t, err, line)
		if got[name] == nil {
			got[name] = map[float64]bool{}
		}
		got[name][ts] = true
	}
	return got
}

// countLines counts the lines that start with prefix; safe to call from
// require.Eventually's goroutine.
func countLines(out, prefix string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

func TestDemoPrintsPublishedSamplesAndFeedsCarbon(t *testing.T) {
	skipShort(t)
	pickle := carbontest.ListenPickle(t)
	d := startDemo(t, "--interval", "200ms", "--prefix", "test.demo", "--device-id", "olt-demo",
		"-H", "127.0.0.1", "-p", port(t, pickle.Addr()), "--line-port", deadPort(t))
	// Several measurements of every metric reach stdout, in both formats...
	require.Eventually(t, func() bool {
		out := d.stdout.String()
		return countLines(out, "test.demo."+routerkpi.MetricGoroutines+" ") >= 3 &&
			countLines(out, "voltha.olt-demo.ProcessStats."+routerkpi.MetricGoroutines+" ") >= 3
	}, 60*time.Second, 50*time.Millisecond)
	// ...and Carbon.
	require.Eventually(t, func() bool { return pickle.Len() >= 6*len(routerkpi.ProcessMetrics()) }, 60*time.Second, 50*time.Millisecond)
	require.Equal(t, 0, d.stop(t))

	out := d.stdout.String()
	lines := demoLines(t, out, "test.demo", "voltha.olt-demo")
	events := demoLines(t, out, "voltha.olt-demo", "test.demo")
	for _, name := range routerkpi.ProcessMetrics() {
		require.NotEmpty(t, lines[name], "metric %s printed", name)
		require.NotEmpty(t, events["ProcessStats."+name], "metric %s printed from the protobuf events", name)
	}
	require.Len(t, lines, len(routerkpi.ProcessMetrics()), "nothing but the publisher's metrics")
	if runtime.GOOS == "linux" {
		require.NotEmpty(t, events["NNIStats.nni-lo.RxBytes"], "this host's interfaces as NNI ports")
	}
	for _, s := range pickle.Samples() {
		if name, ok := strings.CutPrefix(s.Path, "voltha.olt-demo."); ok {
			require.True(t, events[name][s.Time], "Carbon got what stdout showed: %v", s)
			continue
		}
		require.True(t, strings.HasPrefix(s.Path, "test.demo."), s.Path)
		require.True(t, lines[strings.TrimPrefix(s.Path, "test.demo.")][s.Time], "Carbon got what stdout showed: %v", s)
	}
	logs := d.stderr.String()
	require.Contains(t, logs, "shovel demo: embedded Kafka at 127.0.0.1:")
	require.NotContains(t, logs, "no Carbon is listening")
}

func TestDemoKeepsPrintingWithoutCarbon(t *testing.T) {
	skipShort(t)
	d := startDemo(t, "--interval", "10ms", "--prefix", "test.nocarbon", "--device-id", "olt-nocarbon",
		"-H", "127.0.0.1", "-p", deadPort(t), "--line-port", deadPort(t))
	// More messages than the Carbon output's queue holds (queue_size 1024):
	// had stdout shared the Carbon route, it would have stopped there.
	require.Eventually(t, func() bool {
		return countLines(d.stdout.String(), "test.nocarbon."+routerkpi.MetricRSSMB+" ") >= 1200
	}, 120*time.Second, 200*time.Millisecond)
	require.Equal(t, 0, d.stop(t))
	out := d.stdout.String()
	require.Len(t, demoLines(t, out, "test.nocarbon", "voltha.olt-nocarbon")[routerkpi.MetricRSSMB], countLines(out, "test.nocarbon.rss-mb "),
		"one line per measurement")
	logs := d.stderr.String()
	require.Equal(t, 1, strings.Count(logs, "no Carbon is listening at 127.0.0.1:"), "said once, clearly:\n%s", logs)
	require.NotContains(t, logs, "cannot connect to carbon", "the demo's notice replaces Carbon's own")
	require.Contains(t, logs, "shovel demo: stopped.")
}

func TestDemoUsageErrors(t *testing.T) {
	code, _, errOut := runCaptured(t, "demo", "--prefix", "a..b")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `--prefix: "a..b" is not a metric path`)
	code, _, errOut = runCaptured(t, "demo", "-p", "70000")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "-p/--port: port must be from 1 to 65535, got 70000")
}

// TestDemoWithAConfigOfYourOwn: demo --config runs a user's routes against
// the embedded broker, whose topics (the dead-letter topic too) it
// creates; shovel send puts messages in; the samples print on stdout and
// reach the user's Carbon, and a bad message lands in the dead-letter topic.
func TestDemoWithAConfigOfYourOwn(t *testing.T) {
	skipShort(t)
	pickle := carbontest.ListenPickle(t)
	cfg := writeConfig(t, fmt.Sprintf(`
kafka: {brokers: "nowhere:9092", topics: [mine]}
routes:
  - {name: mine, match: {type: slice}, decoder: slice, rules: [{add_prefix: tried}], outputs: [graphite]}
outputs:
  graphite: {kind: carbon-pickle, address: %q}
dead_letter: {topic: mine.dead}
`, pickle.Addr()))
	d := startDemo(t, "--config", cfg, "--interval", "1h")
	var broker string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`shovel send -K (\S+) -t TOPIC FILE`).FindStringSubmatch(d.stderr.String())
		if m != nil {
			broker = m[1]
		}
		return m != nil
	}, 30*time.Second, 20*time.Millisecond, "demo prints how to send to its broker")
	require.Contains(t, d.stderr.String(), "topics voltha.kpis, voltha.events, mine, mine.dead")

	ts := time.Now().Unix()
	msgs := fmt.Sprintf(`{"type":"slice","ts":%d,"data":{"a":{"b":1}}}`+"\n"+`{"type":"slice","ts":`+"\n", ts)
	var out, errOut syncBuffer
	root := newRootCmd(&out, &errOut)
	root.SetIn(strings.NewReader(msgs))
	root.SetArgs([]string{"send", "-K", broker, "-t", "mine", "--split", "lines"})
	require.NoError(t, root.Execute(), errOut.String())

	want := fmt.Sprintf("tried.a.b 1 %d\n", ts)
	require.Eventually(t, func() bool { return d.stdout.String() == want }, 30*time.Second, 20*time.Millisecond, "the stdout side runs the file's route")
	require.Eventually(t, func() bool { return pickle.Len() == 1 }, 30*time.Second, 20*time.Millisecond, "the file's output gets it")
	require.Equal(t, "tried.a.b", pickle.Samples()[0].Path)

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics("mine.dead"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fs := cl.PollFetches(ctx)
	require.NoError(t, ctx.Err())
	recs := fs.Records()
	require.Len(t, recs, 1)
	require.Equal(t, `{"type":"slice","ts":`, string(recs[0].Value))
	require.Equal(t, 0, d.stop(t))
}
