package outputs

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon"
	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/metric"
)

// TestCarbonOutputsAgainstCarbonCache sends through both outputs to a real
// carbon-cache and reads back its whisper files. Skipped under -short and
// where graphite-carbon is not installed.
func TestCarbonOutputsAgainstCarbonCache(t *testing.T) {
	c := carbontest.Start(t)
	const waitTimeout = 30 * time.Second
	ctx := context.Background()

	// More than a megabyte of samples, so that the first frame is filled
	// up to Carbon's own limit: Carbon drops the connection on a frame
	// even one byte longer, and then nothing would arrive.
	pickle := newOutput(t, "carbon-pickle", map[string]any{"address": c.PickleAddr(), "max_frame_bytes": carbon.MaxPickleFrame}, metric.Env{})
	const paths, points = 4, 5000
	start := time.Now().Add(-100 * time.Minute).Unix() // inside the 2h retention
	var samples []metric.Sample
	want := map[string][]carbontest.Point{}
	for p := range paths {
		path := fmt.Sprintf("shovel.it.pickle.compose_voltha_%d.rss-mb", p)
		for i := range points {
			s := metric.Sample{Path: path, Time: float64(start + int64(i)), Value: float64(i)}
			if i%2 == 1 {
				s.Value = float64(i*7919%100000) / 1000
			}
			samples = append(samples, s)
			want[path] = append(want[path], carbontest.Point{Time: int64(s.Time), Value: s.Value})
		}
	}
	buf, _ := carbon.AppendPickle(nil, samples, carbon.MaxPickleFrame)
	require.Greater(t, len(buf), carbon.MaxPickleFrame, "the test needs more than one full frame")
	connect(t, pickle)
	require.NoError(t, pickle.Write(ctx, samples))

	plain := newOutput(t, "carbon-plaintext", map[string]any{"address": c.LineAddr()}, metric.Env{})
	connect(t, plain)
	recent := time.Now().Add(-time.Minute).Unix()
	require.NoError(t, plain.Write(ctx, []metric.Sample{
		{Path: "shovel.it.plain.a", Time: float64(recent), Value: 12},
		{Path: "shovel.it.plain.a", Time: float64(recent + 1), Value: 24.54},
		{Path: "shovel.it.plain.b", Time: float64(recent) + 0.5, Value: -3.25}, // whisper floors the timestamp
	}))

	for path, w := range want {
		require.Equal(t, w, c.WaitFor(t, path, points, waitTimeout), path)
	}
	require.Equal(t, []carbontest.Point{{Time: recent, Value: 12}, {Time: recent + 1, Value: 24.54}},
		c.WaitFor(t, "shovel.it.plain.a", 2, waitTimeout))
	require.Equal(t, []carbontest.Point{{Time: recent, Value: -3.25}}, c.WaitFor(t, "shovel.it.plain.b", 1, waitTimeout))

	// Carbon restarts: both outputs notice and deliver again without help.
	c.Restart()
	for name, out := range map[string]metric.Output{"pickle": pickle, "plain": plain} {
		path := "shovel.it.restart." + name
		after := []metric.Sample{{Path: path, Time: float64(recent + 2), Value: 7}}
		require.Eventually(t, func() bool {
			err := out.Write(ctx, after)
			if err != nil {
				require.ErrorIs(t, err, metric.ErrNotConnected)
			}
			return err == nil
		}, waitTimeout, 10*time.Millisecond)
		require.Equal(t, []carbontest.Point{{Time: recent + 2, Value: 7}}, c.WaitFor(t, path, 1, waitTimeout), name)
	}
}

// TestCarbonCHAgainstCarbonCaches is shovel taking over from carbon-relay
// in front of three real carbon-caches: every metric's whisper file is
// created on the cache carbon's own ring assigns it to, and on no other.
func TestCarbonCHAgainstCarbonCaches(t *testing.T) {
	caches := []*carbontest.Carbon{carbontest.Start(t), carbontest.Start(t), carbontest.Start(t)}
	var dests []any
	for i, c := range caches {
		dests = append(dests, fmt.Sprintf("%s:%c", c.PickleAddr(), 'a'+i)) // carbon's host:port:instance
	}
	out := newOutput(t, "carbon-pickle", map[string]any{"destinations": dests, "distribution": "carbon_ch"}, metric.Env{})
	recent := time.Now().Add(-time.Minute).Unix()
	paths := abcPaths()[:30] // abcOwners: carbon's own ring over ('127.0.0.1', 'a'|'b'|'c')
	var batch []metric.Sample
	for i, p := range paths {
		batch = append(batch, metric.Sample{Path: p, Time: float64(recent), Value: float64(i)})
	}
	connect(t, out)
	require.NoError(t, out.Write(context.Background(), batch))
	for i, s := range batch {
		owner := int(abcOwners[i] - '0')
		require.Equal(t, []carbontest.Point{{Time: recent, Value: float64(i)}}, caches[owner].WaitFor(t, s.Path, 1, 30*time.Second), s.Path)
		for j, c := range caches {
			if j != owner {
				require.NoFileExists(t, c.WhisperFile(s.Path), "%s on cache %c, owner %c", s.Path, 'a'+j, 'a'+owner)
			}
		}
	}
}

// TestCarbonStoresTheLongestValidPath: the longest name metric.ValidPath
// accepts, MaxNameLen bytes of MaxSegmentLen-byte segments, is one that a
// real carbon-cache stores (before, 252-255-byte leaves and 4096-byte
// paths were accepted and carbon failed on them: "File name too long").
func TestCarbonStoresTheLongestValidPath(t *testing.T) {
	c := carbontest.Start(t)
	seg := strings.Repeat("s", metric.MaxSegmentLen)
	last := strings.Repeat("t", metric.MaxNameLen-8*(len(seg)+1))
	longest := strings.Repeat(seg+".", 8) + last
	require.Len(t, longest, metric.MaxNameLen)
	require.True(t, metric.ValidPath(longest))
	leaf := "shovel.it.leaf." + strings.Repeat("l", metric.MaxSegmentLen)
	require.True(t, metric.ValidPath(leaf))
	for _, tooLong := range []string{longest + "x", leaf + "x"} {
		require.False(t, metric.ValidPath(tooLong))
		require.Equal(t, metric.ReasonPathTooLong, metric.PathReason(tooLong))
	}

	out := newOutput(t, "carbon-pickle", map[string]any{"address": c.PickleAddr()}, metric.Env{})
	connect(t, out)
	recent := time.Now().Add(-time.Minute).Unix()
	require.NoError(t, out.Write(context.Background(), []metric.Sample{
		{Path: longest, Time: float64(recent), Value: 1},
		{Path: leaf, Time: float64(recent), Value: 2},
	}))
	require.Equal(t, []carbontest.Point{{Time: recent, Value: 1}}, c.WaitFor(t, longest, 1, 30*time.Second))
	require.Equal(t, []carbontest.Point{{Time: recent, Value: 2}}, c.WaitFor(t, leaf, 1, 30*time.Second))
	require.FileExists(t, c.WhisperFile(longest))
	t.Logf("stored at %d bytes: %s", len(c.WhisperFile(longest)), c.WhisperFile(longest)[:60]+"...")
}
