package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDeadLetterTopicTheConsumerReads: a dead-letter topic that kafka.topics
// names or matches would feed shovel its own dead letters, forever.
func TestDeadLetterTopicTheConsumerReads(t *testing.T) {
	tests := []struct {
		name    string
		topics  []string
		dead    string
		wantErr string // "" for none
	}{
		{"by name", []string{"kpis", "hostile"}, "hostile",
			`dead_letter.topic: "hostile" is read by kafka.topics[1] "hostile": shovel would consume its own dead letters (choose a topic that kafka.topics neither names nor matches)`},
		{"by regex", []string{"^hostile.*"}, "hostile",
			`dead_letter.topic: "hostile" is read by kafka.topics[0] "^hostile.*": shovel would consume its own dead letters (choose a topic that kafka.topics neither names nor matches)`},
		{"by an unanchored-end regex", []string{"kpis", `^kpi`}, "kpis.dead",
			`dead_letter.topic: "kpis.dead" is read by kafka.topics[1] "^kpi": shovel would consume its own dead letters (choose a topic that kafka.topics neither names nor matches)`},
		{"a regex that does not match", []string{`^kpis\.[0-9]+$`}, "kpis.dead", ""},
		{"a name that only shares a prefix", []string{"kpis"}, "kpis.dead", ""},
		{"no dead-letter topic", []string{"^.*"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load("")
			require.NoError(t, err)
			c.Kafka.Topics = tt.topics
			c.DeadLetter.Topic = tt.dead
			err = c.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.wantErr)
		})
	}
}

func TestLargestMessage(t *testing.T) {
	c, err := Load("")
	require.NoError(t, err)
	n, err := c.LargestMessage()
	require.NoError(t, err)
	require.Equal(t, 1<<20, n, "the slice decoder's default max_message_bytes")

	c.Decoders = map[string]Decoder{
		"small": {Kind: "slice", Options: map[string]any{"max_message_bytes": 4096}},
		"big":   {Kind: "carbon-plaintext", Options: map[string]any{"max_message_bytes": 3 << 20}},
	}
	c.Routes = append(c.Routes[:1:1], Route{Decoder: "small", Outputs: c.Routes[0].Outputs})
	n, err = c.LargestMessage()
	require.NoError(t, err)
	require.Equal(t, 1<<20, n, "decoders no route uses do not count")
	c.Routes = append(c.Routes, Route{Decoder: "big", Outputs: c.Routes[0].Outputs})
	n, err = c.LargestMessage()
	require.NoError(t, err)
	require.Equal(t, 3<<20, n)
}
