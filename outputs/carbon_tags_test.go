package outputs

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/metric"
)

// TestTaggedSeriesAgainstCarbonCache sends Graphite tagged series to a real
// carbon-cache with tags on, over pickle and over plaintext, with their
// tags in different orders: carbon stores each series in one whisper file
// under _tagged/ (its TaggedSeries.encode, hashed file names), holding
// the points of every order, and hands its tag database the normalized
// name. Untagged series go on beside them as before.
func TestTaggedSeriesAgainstCarbonCache(t *testing.T) {
	c := carbontest.Start(t, carbontest.WithTagDB())
	ctx := context.Background()
	pickle := newOutput(t, "carbon-pickle", map[string]any{"address": c.PickleAddr()}, metric.Env{})
	plain := newOutput(t, "carbon-plaintext", map[string]any{"address": c.LineAddr()}, metric.Env{})
	connect(t, pickle)
	connect(t, plain)

	const (
		pon    = "shovel.it.tags.PONStats.RxBytes;device_id=0001c5f1;devicetype=openolt;portlabel=pon-0"
		nni    = "shovel.it.tags.NNIStats.TxBytes;device_id=0001c5f1;devicetype=openolt;portlabel=nni-65536"
		plain1 = "shovel.it.tags.untagged.rx"
	)
	recent := time.Now().Add(-time.Minute).Unix()
	require.NoError(t, pickle.Write(ctx, []metric.Sample{
		{Path: pon, Time: float64(recent), Value: 1},
		{Path: "shovel.it.tags.NNIStats.TxBytes;portlabel=nni-65536;device_id=0001c5f1;devicetype=openolt", Time: float64(recent), Value: 10},
		{Path: plain1, Time: float64(recent), Value: 5},
	}))
	require.NoError(t, plain.Write(ctx, []metric.Sample{
		{Path: "shovel.it.tags.PONStats.RxBytes;portlabel=pon-0;devicetype=openolt;device_id=0001c5f1", Time: float64(recent + 1), Value: 2},
		{Path: "shovel.it.tags.NNIStats.TxBytes;devicetype=openolt;portlabel=nni-65536;device_id=0001c5f1", Time: float64(recent + 1), Value: 20},
		{Path: plain1, Time: float64(recent + 1), Value: 6},
	}))

	const wait = 30 * time.Second
	require.Equal(t, []carbontest.Point{{Time: recent, Value: 1}, {Time: recent + 1, Value: 2}}, c.WaitFor(t, pon, 2, wait))
	require.Equal(t, []carbontest.Point{{Time: recent, Value: 10}, {Time: recent + 1, Value: 20}}, c.WaitFor(t, nni, 2, wait))
	require.Equal(t, []carbontest.Point{{Time: recent, Value: 5}, {Time: recent + 1, Value: 6}}, c.WaitFor(t, plain1, 2, wait))

	// One file per tagged series, where carbon's encoding puts it.
	var files []string
	root := filepath.Dir(filepath.Dir(filepath.Dir(c.WhisperFile(pon)))) // _tagged/abc/def/<sha256>.wsp
	require.Equal(t, "_tagged", filepath.Base(root))
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	}))
	require.ElementsMatch(t, []string{c.WhisperFile(pon), c.WhisperFile(nni)}, files)

	// The tag database gets the normalized names (and the plain one).
	require.Eventually(t, func() bool {
		got := c.TagDB()
		return len(got) == 3
	}, wait, 100*time.Millisecond, "tag database: %v", c.TagDB())
	require.Equal(t, []string{nni, pon, plain1}, c.TagDB())
	for _, s := range c.TagDB() {
		require.True(t, metric.Normalized(s), s)
		require.False(t, strings.Contains(s, " "), s)
	}
}
