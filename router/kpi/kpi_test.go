package kpi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/kpi"
	"github.com/shovel-metrics/shovel/router/metric"
)

// decode runs shovel's own slice decoder over a message.
func decode(t *testing.T, value []byte) []metric.Sample {
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

func TestSliceRoundTripsThroughTheSliceDecoder(t *testing.T) {
	tests := []struct {
		name string
		msg  *kpi.Slice
		json string
	}{
		{
			name: "original example",
			msg:  kpi.NewSlice(time.Unix(1480000000, 0)).Add("voltha.internal.abc", "deferreds", 12).Add("voltha.internal.abc", "rss-mb", 80),
			json: `{"type":"slice","ts":1480000000,"data":{"voltha.internal.abc":{"deferreds":12,"rss-mb":80}}}`,
		},
		{
			name: "two objects, fractional values and ts, replaced value",
			msg: kpi.NewSlice(time.UnixMilli(1480000000125)).Add("a.b", "x", 0.5).Add("c", "y", -3).
				Add("a.b", "z", 1e-7).Add("a.b", "x", 2.25),
			json: `{"type":"slice","ts":1480000000.125,"data":{"a.b":{"x":2.25,"z":1e-07},"c":{"y":-3}}}`,
		},
		{
			name: "quotes, backslashes and UTF-8 escaped as JSON",
			msg:  kpi.NewSlice(time.Unix(1, 0)).Add(`we"ird\obj`, "größe", 1),
			json: `{"type":"slice","ts":1,"data":{"we\"ird\\obj":{"größe":1}}}`,
		},
		{
			name: "large integer",
			msg:  kpi.NewSlice(time.Unix(1, 0)).Add("a", "big", 1<<60),
			json: `{"type":"slice","ts":1,"data":{"a":{"big":1152921504606847000}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.msg.MarshalJSON()
			require.NoError(t, err)
			require.Equal(t, tt.json, string(b))
			// encoding/json reads back the same names and numbers...
			var back struct {
				Type string                        `json:"type"`
				TS   float64                       `json:"ts"`
				Data map[string]map[string]float64 `json:"data"`
			}
			require.NoError(t, json.Unmarshal(b, &back))
			var fromJSON []metric.Sample
			for obj, ms := range back.Data {
				for name, v := range ms {
					fromJSON = append(fromJSON, metric.Sample{Path: obj + "." + name, Time: back.TS, Value: v})
				}
			}
			require.Equal(t, "slice", back.Type)
			require.ElementsMatch(t, tt.msg.Samples(), fromJSON)
			// ...and so does shovel's slice decoder, for names it passes as they are.
			if !strings.ContainsAny(string(b), `\`) {
				require.Equal(t, tt.msg.Samples(), decode(t, b))
			}
			require.Equal(t, len(tt.msg.Samples()), tt.msg.Len())
		})
	}
}

func TestSliceRefusesWhatShovelWouldDrop(t *testing.T) {
	ts := time.Unix(1480000000, 0)
	tests := []struct {
		name string
		msg  *kpi.Slice
		want string
	}{
		{"space", kpi.NewSlice(ts).Add("a b", "x", 1), `"a b.x" is not a valid metric path`},
		{"newline", kpi.NewSlice(ts).Add("a", "x\n1 2", 1), `is not a valid metric path`},
		{"empty segment", kpi.NewSlice(ts).Add("a..b", "x", 1), `"a..b.x" is not a valid metric path`},
		{"empty metric", kpi.NewSlice(ts).Add("a", "", 1), `"a." is not a valid metric path`},
		{"empty object", kpi.NewSlice(ts).Add("", "x", 1), `".x" is not a valid metric path`},
		{"NaN", kpi.NewSlice(ts).Add("a", "x", math.NaN()), "a.x: value NaN is not a finite number"},
		{"Inf", kpi.NewSlice(ts).Add("a", "x", math.Inf(-1)), "a.x: value -Inf is not a finite number"},
		{"no metrics", kpi.NewSlice(ts), "message has no metrics"},
		{"zero time", kpi.NewSlice(time.Time{}).Add("a", "x", 1), "is not a time after 1970"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.msg.AppendJSON([]byte("keep"))
			require.ErrorContains(t, err, tt.want)
			require.Equal(t, "keep", string(b), "nothing appended on error")
		})
	}
}

func TestSliceResetReusesMemory(t *testing.T) {
	s := kpi.NewSlice(time.Unix(1, 0)).Add("a", "x", 1).Add("b", "y", 2)
	s.Reset(time.Unix(2, 0))
	require.Zero(t, s.Len())
	s.Add("c", "z", 3)
	require.Equal(t, []metric.Sample{{Path: "c.z", Time: 2, Value: 3}}, s.Samples())
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		s.Reset(time.Unix(3, 0))
		s.Add("c", "z", 3).Add("c", "w", 4)
		buf, _ = s.AppendJSON(buf[:0])
	})
	require.Zero(t, allocs, "a reused message and buffer encode without allocating")
}

func TestSegment(t *testing.T) {
	for in, want := range map[string]string{
		"host1":           "host1",
		"db1.example.com": "db1_example_com",
		"a b\tc":          "a_b_c",
		"":                "_",
		"bad\xffutf8":     "bad_utf8",
	} {
		require.Equal(t, want, kpi.Segment(in), "Segment(%q)", in)
	}
	p := kpi.DefaultPrefix()
	require.True(t, strings.HasPrefix(p, "shovel."), p)
	require.Len(t, strings.Split(p, "."), 2, "the host name is one segment: %s", p)
	require.True(t, metric.ValidPath(p))
}

func TestProcessCollectsEveryMetric(t *testing.T) {
	s := kpi.NewSlice(time.Now())
	require.NoError(t, kpi.Process{}.Collect(s, "test.proc"))
	got := map[string]float64{}
	for _, smp := range s.Samples() {
		name, ok := strings.CutPrefix(smp.Path, "test.proc.")
		require.True(t, ok, smp.Path)
		got[name] = smp.Value
	}
	want := kpi.ProcessMetrics()
	if runtime.GOOS != "linux" {
		want = slicesWithout(want, kpi.MetricOpenFDs)
	}
	require.ElementsMatch(t, want, keys(got))
	require.Greater(t, got[kpi.MetricGoroutines], 1.0)
	require.Equal(t, got[kpi.MetricGoroutines], got[kpi.MetricDeferreds])
	require.Greater(t, got[kpi.MetricRSSMB], 1.0, "a Go test binary uses more than 1 MiB")
	require.Less(t, got[kpi.MetricRSSMB], 64*1024.0)
	require.Greater(t, got[kpi.MetricCPUSeconds], 0.0)
	if runtime.GOOS == "linux" {
		require.GreaterOrEqual(t, got[kpi.MetricOpenFDs], 3.0, "stdin, stdout, stderr")
	}
	runtime.GC()
	s.Reset(time.Now())
	require.NoError(t, kpi.Process{}.Collect(s, "test.proc"))
	for _, smp := range s.Samples() {
		if strings.HasSuffix(smp.Path, ".gc-pause-total-ms") {
			require.Greater(t, smp.Value, 0.0, "after a GC there was a pause")
		}
	}
	_, err := s.MarshalJSON()
	require.NoError(t, err)
}

func keys(m map[string]float64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func slicesWithout(s []string, drop string) []string {
	var out []string
	for _, x := range s {
		if x != drop {
			out = append(out, x)
		}
	}
	return out
}

// recordSender keeps what it was given and fails while fail is set.
type recordSender struct {
	mu   sync.Mutex
	sent []sent
	fail error
}

type sent struct{ topic, key, value string }

func (r *recordSender) Send(_ context.Context, topic string, key, value []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.sent = append(r.sent, sent{topic, string(key), string(value)})
	return nil
}

func (r *recordSender) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent)
}

func (r *recordSender) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestPublisherRunPublishesEveryIntervalAndSurvivesFailures(t *testing.T) {
	snd := &recordSender{}
	var logs syncBuf
	p := &kpi.Publisher{
		Sender:   snd,
		Object:   "test.pub",
		Interval: 10 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	require.Eventually(t, func() bool { return snd.count() >= 3 }, 10*time.Second, time.Millisecond)

	snd.setFail(errors.New("broker down"))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "cannot publish KPIs") }, 10*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // several failing rounds
	require.Equal(t, 1, strings.Count(logs.String(), "cannot publish KPIs"), "an outage is logged once")
	n := snd.count()
	snd.setFail(nil)
	require.Eventually(t, func() bool { return snd.count() > n }, 10*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "publishing KPIs again") }, 10*time.Second, time.Millisecond)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	snd.mu.Lock()
	defer snd.mu.Unlock()
	for _, m := range snd.sent {
		require.Equal(t, kpi.DefaultTopic, m.topic)
		require.Equal(t, "test.pub", m.key)
		names := map[string]bool{}
		for _, s := range decode(t, []byte(m.value)) {
			names[strings.TrimPrefix(s.Path, "test.pub.")] = true
		}
		require.True(t, names[kpi.MetricRSSMB] && names[kpi.MetricDeferreds], "the original's two metrics: %v", names)
	}
}

func TestPublisherReportsBadMessages(t *testing.T) {
	p := &kpi.Publisher{Sender: &recordSender{}, Object: "bad path"}
	require.ErrorContains(t, p.Publish(context.Background()), `"bad path.deferreds" is not a valid metric path`)
	p = &kpi.Publisher{}
	require.ErrorContains(t, p.Publish(context.Background()), "no Sender")
	p = &kpi.Publisher{Sender: &recordSender{}, Source: kpi.SourceFunc(func(*kpi.Slice, string) error { return errors.New("boom") })}
	require.ErrorContains(t, p.Publish(context.Background()), "kpi: collect: boom")
}
