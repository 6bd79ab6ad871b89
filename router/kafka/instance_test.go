package kafka

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClaimInstance(t *testing.T) {
	dir := t.TempDir()
	host, err := os.Hostname()
	require.NoError(t, err)

	first, err := claimInstance("", "g", dir)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(first.id, "shovel-"), first.id)
	require.True(t, strings.HasSuffix(first.id, "-1"), "the first shovel of a group on a host is -1: %s", first.id)
	require.Contains(t, first.id, strings.SplitN(host, ".", 2)[0])

	second, err := claimInstance("", "g", dir)
	require.NoError(t, err)
	require.Equal(t, strings.TrimSuffix(first.id, "-1")+"-2", second.id, "a second shovel of the group gets an id of its own")

	other, err := claimInstance("", "another group", dir)
	require.NoError(t, err)
	require.Equal(t, first.id, other.id, "ids are per group")

	// A restart (the lock is released when the process dies) takes the
	// same id back.
	first.release()
	again, err := claimInstance("", "g", dir)
	require.NoError(t, err)
	require.Equal(t, first.id, again.id)

	mine, err := claimInstance("collector-a", "g", dir)
	require.NoError(t, err)
	require.Equal(t, "collector-a", mine.id)
	_, err = claimInstance("collector-a", "g", dir)
	require.ErrorIs(t, err, ErrInstanceInUse)
	require.ErrorContains(t, err, "kafka.instance_id")
	require.ErrorContains(t, err, `"collector-a"`)
	mine.release()
	_, err = claimInstance("collector-a", "g", dir)
	require.NoError(t, err, "free again once its holder is gone")

	none, err := claimInstance(InstanceNone, "g", dir)
	require.NoError(t, err)
	require.Nil(t, none, "none: dynamic membership")

	_, err = claimInstance("a b", "g", dir)
	require.ErrorContains(t, err, "kafka.instance_id")
	for _, c := range []*instanceClaim{second, other, again} {
		c.release()
	}
}
