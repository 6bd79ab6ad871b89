package kafka

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPartTracker(t *testing.T) {
	tests := []struct {
		name  string
		added []int64
		acked []int64
		want  int64 // -1: nothing to store
	}{
		{"nothing acknowledged", []int64{5, 6, 7}, nil, -1},
		{"in order", []int64{5, 6, 7}, []int64{5, 6}, 7},
		{"gap holds the position", []int64{5, 6, 7}, []int64{5, 7}, 6},
		{"gap filled", []int64{5, 6, 7}, []int64{7, 6, 5}, 8},
		{"offsets with holes (compaction)", []int64{10, 13, 20}, []int64{10, 13}, 14},
		{"unknown offset ignored", []int64{1, 2}, []int64{99, 1}, 2},
		{"double ack harmless", []int64{1, 2}, []int64{1, 1}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newPartTracker("t", 0)
			for _, o := range tt.added {
				tr.add(o)
			}
			for _, o := range tt.acked {
				tr.markDone(o)
			}
			got, ok := tr.take()
			if tt.want == -1 {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, tt.want, got)
			_, again := tr.take()
			require.False(t, again, "take reports a position once")
		})
	}
}

func TestPartTrackerRandomOrderAndCompaction(t *testing.T) {
	tr := newPartTracker("t", 0)
	const n = 10000
	rng := rand.New(rand.NewSource(1))
	for window := 0; window < n; window += 500 {
		offs := make([]int64, 500)
		for i := range offs {
			offs[i] = int64(window + i)
			tr.add(offs[i])
		}
		rng.Shuffle(len(offs), func(i, j int) { offs[i], offs[j] = offs[j], offs[i] })
		for _, o := range offs {
			tr.markDone(o)
		}
	}
	got, ok := tr.take()
	require.True(t, ok)
	require.EqualValues(t, n, got)
	require.Zero(t, tr.inFlight())
	require.Less(t, cap(tr.offsets), n, "delivered offsets are compacted away")
}
