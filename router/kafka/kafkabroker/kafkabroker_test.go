package kafkabroker

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPomPinsVersion(t *testing.T) {
	pom, err := os.ReadFile("pom.xml")
	require.NoError(t, err)
	m := regexp.MustCompile(`<kafka.version>([^<]+)</kafka.version>`).FindSubmatch(pom)
	require.NotNil(t, m, "pom.xml has a kafka.version property")
	require.Equal(t, Version, string(m[1]), "pom.xml and Version name the same Kafka release")
}

// A node killed with SIGKILL and started again keeps what it had acknowledged.
func TestNodeKeepsDataAcrossKill(t *testing.T) {
	c := Start(t, Options{})
	c.CreateTopic(t, Topic{Name: "kb.data", Partitions: 2})
	var recs []Record
	for i := range 100 {
		recs = append(recs, Record{Topic: "kb.data", Partition: int32(i % 2), Value: []byte(strconv.Itoa(i))})
	}
	c.Produce(t, recs...)
	require.Equal(t, map[int32]int64{0: 50, 1: 50}, c.EndOffsets(t, "kb.data", 2))
	require.Empty(t, c.Committed(t, "nobody", "kb.data"))

	c.Nodes[0].Kill()
	require.False(t, c.Nodes[0].Running())
	c.Nodes[0].Start(t)
	require.Equal(t, map[int32]int64{0: 50, 1: 50}, c.EndOffsets(t, "kb.data", 2))
	c.Produce(t, recs[:10]...)
	require.Equal(t, map[int32]int64{0: 55, 1: 55}, c.EndOffsets(t, "kb.data", 2))
}
