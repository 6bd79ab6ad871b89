package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

func TestSend(t *testing.T) {
	skipShort(t)
	b := kafkatest.Start(t, 2, "sent0", "sent1", "sent2", "sent3")
	dir := t.TempDir()
	pretty := filepath.Join(dir, "two.json")
	require.NoError(t, os.WriteFile(pretty, []byte("{\n  \"type\": \"slice\",\n  \"ts\": 1\n}\n{\"type\":\"slice\",\"ts\":2}\n"), 0o600))
	binary := filepath.Join(dir, "frame.bin")
	require.NoError(t, os.WriteFile(binary, []byte{0x80, 2, ']', 0, '.', '\n', 'x'}, 0o600))
	var delimited []byte
	for _, m := range []string{"first", "second message"} {
		delimited = protowire.AppendVarint(delimited, uint64(len(m)))
		delimited = append(delimited, m...)
	}
	lengths := filepath.Join(dir, "stream.bin")
	require.NoError(t, os.WriteFile(lengths, delimited, 0o600))

	tests := []struct {
		name  string
		args  []string
		stdin string
		want  []string // values, in order
		line  string   // what send says at the end
	}{
		{"pretty-printed JSON documents, to a partition, with key and headers",
			[]string{"--key", "k1", "--header", "source=pon", "--header", "x=1", "--partition", "1", pretty}, "",
			[]string{"{\n  \"type\": \"slice\",\n  \"ts\": 1\n}", `{"type":"slice","ts":2}`}, "2 messages to sent0 at %s (partition 1, offsets 0 to 1)"},
		{"stdin lines", []string{"--partition", "0", "--split", "lines"}, "a.b 1 2\n\nc.d 3 4\n",
			[]string{"a.b 1 2", "c.d 3 4"}, "2 messages to sent1 at %s (partition 0, offsets 0 to 1)"},
		{"binary input is one message", []string{"--partition", "0", binary}, "",
			[]string{"\x80\x02]\x00.\nx"}, "1 messages to sent2 at %s (partition 0, offsets 0 to 0)"},
		{"a delimited stream", []string{"--partition", "0", "--split", "delimited", lengths}, "",
			[]string{"first", "second message"}, "2 messages to sent3 at %s (partition 0, offsets 0 to 1)"},
	}
	for i, tt := range tests {
		topic := fmt.Sprintf("sent%d", i)
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			root := newRootCmd(&stdout, &stderr)
			root.SetIn(strings.NewReader(tt.stdin))
			root.SetArgs(append([]string{"send", "-K", b.Addr, "-t", topic}, tt.args...))
			require.NoError(t, root.Execute(), stderr.String())
			require.Equal(t, "shovel send: "+strings.Replace(tt.line, "%s", b.Addr, 1)+"\n", stderr.String())
			got := b.Consume(t, topic, len(tt.want))
			if i == 0 {
				for _, r := range got {
					require.Equal(t, "k1", string(r.Key))
					require.EqualValues(t, 1, r.Partition)
					require.Len(t, r.Headers, 2)
					require.Equal(t, "source", r.Headers[0].Key)
					require.Equal(t, "pon", string(r.Headers[0].Value))
				}
			}
			var values []string
			for _, r := range got {
				values = append(values, string(r.Value))
			}
			require.Equal(t, tt.want, values, "in order: one partition")
		})
	}
}

func TestSendUsageErrors(t *testing.T) {
	code, _, errOut := runCaptured(t, "send", "-t", "x", "--split", "chunks", "/dev/null")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `--split "chunks": use auto, lines, json, whole or delimited`)
	code, _, errOut = runCaptured(t, "send", "x.json")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `required flag(s) "topic" not set`)
}
