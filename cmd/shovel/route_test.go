package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

// syncBuffer collects a run's log output for assertions and failure dumps.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shovelRun is `shovel <args>` running in-process until stop is called.
type shovelRun struct {
	cancel context.CancelFunc
	code   chan int
	logs   *syncBuffer
}

func startShovel(t *testing.T, args ...string) *shovelRun {
	t.Helper()
	if len(args) > 0 && args[0] == "route" && !slices.Contains(args, "--http") {
		// Tests run several routers; each takes a free port for its endpoints.
		args = append(args, "--http", "127.0.0.1:0")
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &shovelRun{cancel: cancel, code: make(chan int, 1), logs: &syncBuffer{}}
	go func() { r.code <- run(ctx, args, r.logs, r.logs) }()
	t.Cleanup(func() {
		cancel()
		if t.Failed() {
			t.Logf("shovel %s log:\n%s", strings.Join(args, " "), r.logs)
		}
	})
	return r
}

// stop sends the equivalent of SIGTERM and returns the exit code.
func (r *shovelRun) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	select {
	case c := <-r.code:
		return c
	case <-time.After(60 * time.Second):
		t.Fatalf("shovel did not stop within 60s; log:\n%s", r.logs)
		return -1
	}
}

// kpi is one slice message and the samples the original shovel made of it.
type kpi struct {
	value []byte
	want  []carbontest.Sample
}

// sliceKPIs builds n slice messages of 2 objects × 3 metrics, integer and
// fractional values, timestamps from ts0 on. The expected samples are
// written out independently of shovel's decoder.
func sliceKPIs(prefix string, n int, ts0 int64) []kpi {
	out := make([]kpi, n)
	for i := range out {
		ts := ts0 + int64(i)
		data := map[string]map[string]any{}
		var want []carbontest.Sample
		for o := 0; o < 2; o++ {
			obj := fmt.Sprintf("%s.obj%d", prefix, o)
			data[obj] = map[string]any{}
			for m, name := range []string{"deferreds", "rss-mb", "cpu_util"} {
				var v float64
				if m == 2 {
					v = float64(i%1000) + 0.125*float64(o+1) // exact in binary and in JSON
				} else {
					v = float64(i*10 + o*3 + m)
				}
				data[obj][name] = v
				want = append(want, carbontest.Sample{Path: obj + "." + name, Time: float64(ts), Value: v})
			}
		}
		b, _ := json.Marshal(map[string]any{"type": "slice", "ts": ts, "data": data})
		out[i] = kpi{value: b, want: want}
	}
	return out
}

// recent is a timestamp inside shovel's default window (one year back, ten
// minutes ahead) with room for a few thousand one-second steps.
func recent() int64 { return time.Now().Add(-3 * time.Hour).Unix() }

func produceKPIs(t *testing.T, b *kafkatest.Broker, topic string, partitions int32, kpis []kpi) []carbontest.Sample {
	recs := make([]kafkatest.Record, len(kpis))
	var want []carbontest.Sample
	for i, k := range kpis {
		recs[i] = kafkatest.Record{Topic: topic, Partition: int32(i) % partitions, Value: k.value}
		want = append(want, k.want...)
	}
	b.Produce(t, recs...)
	return want
}

func sortSamples(s []carbontest.Sample) []carbontest.Sample {
	s = append([]carbontest.Sample(nil), s...)
	sort.Slice(s, func(i, j int) bool {
		if s[i].Path != s[j].Path {
			return s[i].Path < s[j].Path
		}
		if s[i].Time != s[j].Time {
			return s[i].Time < s[j].Time
		}
		return s[i].Value < s[j].Value
	})
	return s
}

func distinct(s []carbontest.Sample) []carbontest.Sample {
	s = sortSamples(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func port(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return p
}

// deadPort returns a loopback port with nothing listening on it.
//
// The port is taken below the kernel's ephemeral range: a port from
// Listen(":0"), once closed, may be handed to the next Listen(":0") — the
// status endpoint of the very shovel under test — and a test that later
// starts its Carbon there would find it taken.
func deadPort(t *testing.T) string {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	for i := 0; i < 100; i++ {
		p := 10000 + rand.IntN(max(low-10000, 1))
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // in use: try another
		}
		ln.Close()
		return strconv.Itoa(p)
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs a Kafka-protocol broker")
	}
}

func TestRouteDrainsTopicIntoCarbonPickle(t *testing.T) {
	skipShort(t)
	const topic = "voltha.kpis"
	b := kafkatest.Start(t, 3, topic)
	kpis := sliceKPIs("voltha.internal", 600, recent())
	want := produceKPIs(t, b, topic, 3, kpis)
	// Bad input between good messages: each is rejected and counted, and
	// none holds back the messages behind it.
	bad := []string{
		`{"type":"slice","ts":1480000000,"data":{"ok":{"..":1}}}`,         // nothing left of the path
		`{"type":"slice","ts":1480000000,"data":{"ok":{"str":"twelve"}}}`, // not a number
		`{"type":"slice","ts":1480000000,"data":`,                         // truncated JSON
		`{"type":"slice","ts":1480000000,"data":{"ok":{"old":1}}}`,        // years before the window
		`not json at all`,
		`{"type":"unknown-type","ts":1}`,
		strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000), // deep nesting
	}
	for i, v := range bad {
		b.Produce(t, kafkatest.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(v)})
	}
	tail := sliceKPIs("voltha.tail", 30, recent()+1000)
	want = append(want, produceKPIs(t, b, topic, 3, tail)...)
	// A newline or space in a name is replaced, never passed on: it
	// cannot become a second Carbon line.
	ts := recent()
	b.Produce(t, kafkatest.Record{Topic: topic, Value: []byte(fmt.Sprintf(
		`{"type":"slice","ts":%d,"data":{"ok":{"evil\n1 2 3":1},"a b":{"x":2}}}`, ts))})
	want = append(want, carbontest.Sample{Path: "ok.evil_1_2_3", Time: float64(ts), Value: 1},
		carbontest.Sample{Path: "a_b.x", Time: float64(ts), Value: 2})
	const sanitised = 1 // messages

	pickle := carbontest.ListenPickle(t)
	line := carbontest.ListenPlaintext(t)
	sh := startShovel(t, "route", "-K", b.Addr, "-t", topic, "-g", "it-drain",
		"-H", "127.0.0.1", "-p", port(t, pickle.Addr()), "--line-port", port(t, line.Addr()))

	require.Eventually(t, func() bool { return pickle.Len() >= len(want) }, 60*time.Second, 10*time.Millisecond,
		"got %d of %d samples", pickle.Len(), len(want))
	require.Equal(t, 0, sh.stop(t))
	require.Empty(t, pickle.Errors())
	require.Equal(t, sortSamples(want), sortSamples(pickle.Samples()), "every sample exact, none missing, none extra")
	require.Zero(t, line.Len(), "the fallback is not used while the pickle receiver is up")

	// Every message, bad ones included, was committed.
	require.EqualValues(t, len(kpis)+len(bad)+len(tail)+sanitised, b.CommittedTotal(t, "it-drain", topic))
	logs := sh.logs.String()
	for _, reason := range []string{"bad_path", "not_a_number", "invalid_json", "no_route", "too_deep", "ts_out_of_window"} {
		require.Contains(t, logs, "reason="+reason)
	}
}

func TestRouteLosesNothingAcrossRestart(t *testing.T) {
	skipShort(t)
	const topic, group = "kpis.restart", "it-restart"
	b := kafkatest.Start(t, 2, topic)
	first := produceKPIs(t, b, topic, 2, sliceKPIs("restart.a", 4000, recent()))
	pickle := carbontest.ListenPickle(t)
	args := []string{"route", "-K", b.Addr, "-t", topic, "-g", group, "-H", "127.0.0.1", "-p", port(t, pickle.Addr()),
		"--line-port", deadPort(t)}

	// Stop the router half-way through the first batch of messages...
	sh := startShovel(t, args...)
	require.Eventually(t, func() bool { return pickle.Len() > 0 }, 60*time.Second, time.Millisecond)
	require.Equal(t, 0, sh.stop(t))
	seenBefore := pickle.Len()
	// ...publish more while it is down (the original shovel lost these)...
	second := produceKPIs(t, b, topic, 2, sliceKPIs("restart.b", 500, recent()+5000))
	// ...and start it again with the same group.
	sh = startShovel(t, args...)
	want := append(first, second...)
	require.Eventually(t, func() bool { return len(distinct(pickle.Samples())) >= len(want) }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 0, sh.stop(t))
	// Duplicates are allowed (Carbon overwrites by timestamp); loss is not.
	require.Equal(t, sortSamples(want), distinct(pickle.Samples()))
	t.Logf("first run delivered %d samples before stopping; %d duplicates after restart",
		seenBefore, pickle.Len()-len(want))
}

func TestRouteFallsBackToPlaintext(t *testing.T) {
	skipShort(t)
	const topic = "kpis.fallback"
	b := kafkatest.Start(t, 1, topic)
	want := produceKPIs(t, b, topic, 1, sliceKPIs("fb", 200, recent()))
	line := carbontest.ListenPlaintext(t)
	// Nothing listens on the pickle port: the plaintext output takes over.
	sh := startShovel(t, "route", "-K", b.Addr, "-t", topic, "-g", "it-fb",
		"-H", "127.0.0.1", "-p", deadPort(t), "--line-port", port(t, line.Addr()))
	require.Eventually(t, func() bool { return line.Len() >= len(want) }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 0, sh.stop(t))
	require.Equal(t, sortSamples(want), sortSamples(line.Samples()))
	require.Contains(t, sh.logs.String(), "output cannot deliver")
}

// fakeConsul answers GET /v1/health/service/<name> as Consul's health API
// does (the documented response shape and headers). No Consul server can be
// installed on the build machines, so this in-test server stands in for it.
func fakeConsul(t *testing.T, services map[string][]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/v1/health/service/")
		if !ok || r.URL.Query().Get("passing") == "" {
			http.Error(w, "unexpected request "+r.URL.String(), http.StatusBadRequest)
			return
		}
		entries := []map[string]any{}
		for i, addr := range services[name] {
			host, p, _ := net.SplitHostPort(addr)
			pn, _ := strconv.Atoi(p)
			entries = append(entries, map[string]any{
				"Node": map[string]any{"ID": fmt.Sprintf("node-%d", i), "Node": fmt.Sprintf("n%d", i), "Address": host, "Datacenter": "dc1"},
				"Service": map[string]any{"ID": fmt.Sprintf("%s-%d", name, i), "Service": name, "Tags": []string{},
					"Address": host, "Port": pn},
				"Checks": []map[string]any{{"Node": fmt.Sprintf("n%d", i), "CheckID": "serfHealth", "Status": "passing"}},
			})
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Consul-Index", "42")
		w.Header().Set("X-Consul-Knownleader", "true")
		w.Header().Set("X-Consul-Lastcontact", "0")
		_ = json.NewEncoder(w).Encode(entries)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRouteResolvesKafkaAndCarbonInConsul(t *testing.T) {
	skipShort(t)
	const topic = "kpis.consul"
	b := kafkatest.Start(t, 1, topic)
	want := produceKPIs(t, b, topic, 1, sliceKPIs("consul", 50, recent()))
	pickle := carbontest.ListenPickle(t)
	consul := fakeConsul(t, map[string][]string{"kafka": {b.Addr}, "carbon-pickle": {pickle.Addr()}})

	cfg := filepath.Join(t.TempDir(), "shovel.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
kafka: {brokers: "@kafka", topics: [`+topic+`], group: it-consul}
routes: [{match: {type: slice}, decoder: slice, outputs: [graphite]}]
outputs:
  graphite: {kind: carbon-pickle, address: "@carbon-pickle"}
`), 0o600))
	sh := startShovel(t, "route", "--config", cfg, "-c", strings.TrimPrefix(consul.URL, "http://"))
	require.Eventually(t, func() bool { return pickle.Len() >= len(want) }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 0, sh.stop(t))
	require.Equal(t, sortSamples(want), sortSamples(pickle.Samples()))
}

func TestRouteConsulUnreachableIsAClearError(t *testing.T) {
	skipShort(t)
	dead := "127.0.0.1:" + deadPort(t)
	sh := startShovel(t, "route", "-K", "@kafka", "-c", dead)
	select {
	case code := <-sh.code:
		require.Equal(t, exitRuntime, code)
	case <-time.After(30 * time.Second):
		t.Fatal("shovel kept running without Kafka brokers")
	}
	require.Contains(t, sh.logs.String(), dead)
}

func TestRouteIntoRealCarbonCache(t *testing.T) {
	skipShort(t)
	carbon := carbontest.Start(t) // skips where graphite-carbon is not installed, except in CI
	const topic = "kpis.carbon"
	b := kafkatest.Start(t, 2, topic)
	// Recent timestamps: carbon-cache keeps points only inside its retention.
	ts0 := time.Now().Add(-10 * time.Minute).Unix()
	kpis := sliceKPIs("e2e.voltha", 120, ts0)
	want := produceKPIs(t, b, topic, 2, kpis)

	sh := startShovel(t, "route", "-K", b.Addr, "-t", topic, "-g", "it-carbon",
		"-H", "127.0.0.1", "-p", port(t, carbon.PickleAddr()), "--line-port", port(t, carbon.LineAddr()))
	byPath := map[string][]carbontest.Sample{}
	for _, s := range want {
		byPath[s.Path] = append(byPath[s.Path], s)
	}
	for path, samples := range byPath {
		points := carbon.WaitFor(t, path, len(samples), 60*time.Second)
		got := map[int64]float64{}
		for _, p := range points {
			got[p.Time] = p.Value
		}
		for _, s := range samples {
			v, ok := got[int64(s.Time)]
			require.True(t, ok, "%s has no point at %d", path, int64(s.Time))
			require.Equal(t, s.Value, v, "%s at %d", path, int64(s.Time))
		}
	}
	require.Equal(t, 0, sh.stop(t))
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"route", "--config", "/does/not/exist.yaml"}, "shovel: config: stat /does/not/exist.yaml: no such file or directory\n"},
		{[]string{"route", "-p", "0x"}, `invalid argument "0x" for "-p, --port" flag`},
		{[]string{"route", "-K", "nohostport"}, `shovel: kafka.brokers: "nohostport" is not host:port` + "\n"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), tt.args, &out, &out)
			require.Equal(t, exitUsage, code)
			require.Contains(t, out.String(), tt.want)
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"version"}, &out, &out))
	require.Regexp(t, `^shovel \S+ \(commit \S+\)\n$`, out.String())
}
