package ratelimit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(10 * time.Second)
	l.Now = func() time.Time { return now }
	_, ok := l.Allow("k")
	require.True(t, ok)
	for range 5 {
		_, ok = l.Allow("k")
		require.False(t, ok)
	}
	_, ok = l.Allow("other")
	require.True(t, ok, "keys are limited independently")
	now = now.Add(11 * time.Second)
	n, ok := l.Allow("k")
	require.True(t, ok)
	require.Equal(t, 5, n)
}
