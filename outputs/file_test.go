package outputs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

func newFileOutput(t *testing.T, cfg map[string]any) metric.Output {
	t.Helper()
	factory, err := Lookup("file")
	require.NoError(t, err)
	out, err := factory(decodeMap(cfg), metric.Env{Name: "archive"})
	require.NoError(t, err)
	t.Cleanup(func() { out.Close() })
	return out
}

func TestFileConfig(t *testing.T) {
	require.Equal(t, FileConfig{Append: true}, NewFileConfig())
	require.NotEmpty(t, Description("file"))
	tests := []struct {
		name string
		cfg  map[string]any
		want string
	}{
		{"file", map[string]any{"path": "/tmp/x.txt"}, ""},
		{"stdout dash", map[string]any{"path": "-"}, ""},
		{"stdout word", map[string]any{"path": "stdout"}, ""},
		{"truncate", map[string]any{"path": "/tmp/x.txt", "append": false}, ""},
		{"no path", map[string]any{}, `file: path: must name a file, or "-" for stdout`},
		{"unknown key", map[string]any{"path": "-", "address": "h:1"}, `file: unknown key "address"`},
	}
	factory, err := Lookup("file")
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := factory(decodeMap(tt.cfg), metric.Env{})
			requireError(t, tt.want, err)
			if err == nil {
				require.NoError(t, out.Close())
			}
		})
	}
}

func TestFileBuildsWithoutIO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "never.txt")
	out := newFileOutput(t, map[string]any{"path": path})
	require.NoError(t, out.Close())
	require.NoFileExists(t, path, "the factory and Close create nothing; Connect does")
}

func TestFileAppendsPlaintextLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kpis.txt")
	require.NoError(t, os.WriteFile(path, []byte("earlier 1 2\n"), 0o600))
	out := newFileOutput(t, map[string]any{"path": path})
	ctx := context.Background()
	require.NoError(t, out.Connect(ctx))
	require.NoError(t, out.Write(ctx, []metric.Sample{
		{Path: "voltha.abc.deferreds", Time: 1480000000, Value: 12},
		{Path: "voltha.abc.rss-mb", Time: 1480000000.5, Value: 80.25},
	}))
	require.NoError(t, out.Write(ctx, []metric.Sample{
		{Path: "bad path", Time: 1, Value: 1}, // would split the line: left out
		{Path: "voltha.abc.deferreds", Time: 1480000001, Value: -3},
	}))
	require.NoError(t, out.Write(ctx, nil))
	require.NoError(t, out.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "earlier 1 2\n"+
		"voltha.abc.deferreds 12 1480000000\n"+
		"voltha.abc.rss-mb 80.25 1480000000.5\n"+
		"voltha.abc.deferreds -3 1480000001\n", string(b))
}

func TestFileTruncatesOnceWhenNotAppending(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kpis.txt")
	require.NoError(t, os.WriteFile(path, []byte("from the last run 1 2\n"), 0o600))
	out := newFileOutput(t, map[string]any{"path": path, "append": false})
	ctx := context.Background()
	require.NoError(t, out.Write(ctx, []metric.Sample{{Path: "a", Time: 1, Value: 1}}))
	// A reopen (as after a failed write) must not lose this run's lines.
	require.NoError(t, out.Close())
	require.NoError(t, out.Write(ctx, []metric.Sample{{Path: "b", Time: 2, Value: 2}}))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "a 1 1\nb 2 2\n", string(b))
}

func TestFileUnopenableIsNotConnectedUntilFixed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	path := filepath.Join(dir, "kpis.txt")
	out := newFileOutput(t, map[string]any{"path": path})
	ctx := context.Background()
	err := out.Connect(ctx)
	require.ErrorIs(t, err, metric.ErrNotConnected)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "file: open "+path)
	samples := []metric.Sample{{Path: "a", Time: 1, Value: 1}}
	require.ErrorIs(t, out.Write(ctx, samples), metric.ErrNotConnected, "the router falls back and retries")

	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, out.Write(ctx, samples))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "a 1 1\n", string(b))
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestStreamOutput(t *testing.T) {
	var buf bytes.Buffer
	out := NewStreamOutput(&buf, nil)
	ctx := context.Background()
	require.NoError(t, out.Connect(ctx))
	samples := kpiSamples(300)
	require.NoError(t, out.Write(ctx, samples))
	require.NoError(t, out.Close())
	require.NoError(t, out.Write(ctx, samples[:1]), "Close leaves the caller's stream alone")

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	require.Len(t, lines, len(samples)+1)
	require.Equal(t, "voltha.internal.compose_voltha_0.rss-mb 0 1700000000.5", lines[0])
	require.Equal(t, lines[0], lines[len(lines)-1])

	err := NewStreamOutput(failWriter{}, nil).Write(ctx, samples[:1])
	require.ErrorContains(t, err, "file: write -: broken pipe")
}
