package carbontest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const waitTimeout = 20 * time.Second

// recent is a whole second half a minute ago: inside every retention the
// tests use, and in the past, which whisper-fetch insists on.
func recent() int64 { return time.Now().Add(-30 * time.Second).Unix() }

func send(t *testing.T, addr string, payload []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	_, err = conn.Write(payload)
	require.NoError(t, err)
	require.NoError(t, conn.Close())
}

// pickleEntry is one (path, (timestamp, value)) tuple of a pickle frame.
type pickleEntry struct {
	path  string
	ts    float64
	intTS bool // pickle the timestamp as an int, as Python senders often do
	value float64
}

// pickleFrame builds carbon's pickle frame by hand: a 4-byte big-endian
// length, then [(path, (timestamp, value)), ...] in pickle protocol 2,
// opcode for opcode as Python writes it (less the memo puts, which
// pickletools.optimize drops). It is independent of shovel's encoder on
// purpose.
func pickleFrame(entries []pickleEntry) []byte {
	b := []byte{0x80, 2, ']', '('} // PROTO 2, EMPTY_LIST, MARK
	for _, e := range entries {
		b = append(b, 'X') // BINUNICODE: 4-byte little-endian length, UTF-8
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.path)))
		b = append(b, e.path...)
		if e.intTS {
			b = append(b, 'J') // BININT: 4-byte little-endian signed
			b = binary.LittleEndian.AppendUint32(b, uint32(int32(e.ts)))
		} else {
			b = append(b, 'G') // BINFLOAT: 8-byte big-endian double
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(e.ts))
		}
		b = append(b, 'G')
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(e.value))
		b = append(b, 0x86, 0x86) // TUPLE2 (timestamp, value), TUPLE2 (path, ...)
	}
	b = append(b, 'e', '.') // APPENDS, STOP
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

func TestPickleFrameMatchesPython(t *testing.T) {
	// /usr/bin/python3 -c "import pickle,pickletools,struct; p=pickletools.optimize(pickle.dumps(
	//   [('shovel.pickle.int', (1700000000, 1.25)), ('shovel.pickle.float', (1700000001.0, -3.5))],
	//   protocol=2)); print(struct.pack('!L', len(p))+p)"
	python := []byte("\x00\x00\x00X\x80\x02](X\x11\x00\x00\x00shovel.pickle.intJ\x00\xf1SeG?\xf4\x00\x00\x00\x00\x00\x00\x86\x86" +
		"X\x13\x00\x00\x00shovel.pickle.floatGA\xd9T\xfc@@\x00\x00G\xc0\x0c\x00\x00\x00\x00\x00\x00\x86\x86e.")
	got := pickleFrame([]pickleEntry{
		{path: "shovel.pickle.int", ts: 1700000000, intTS: true, value: 1.25},
		{path: "shovel.pickle.float", ts: 1700000001, value: -3.5},
	})
	require.Equal(t, python, got)
}

func TestLineAndPickle(t *testing.T) {
	c := Start(t)
	base := recent()

	send(t, c.LineAddr(), fmt.Appendf(nil,
		"shovel.carbontest.line.a 42 %d\nshovel.carbontest.line.a 43.25 %d\nshovel.carbontest.line.b -1.5 %d\n",
		base, base+1, base))
	send(t, c.PickleAddr(), pickleFrame([]pickleEntry{
		{path: "shovel.carbontest.pickle.int", ts: float64(base + 2), intTS: true, value: 1.25},
		// Whisper floors a fractional timestamp.
		{path: "shovel.carbontest.pickle.float", ts: float64(base+3) + 0.75, value: -3.5},
	}))

	require.Equal(t, []Point{{base, 42}, {base + 1, 43.25}}, c.WaitFor(t, "shovel.carbontest.line.a", 2, waitTimeout))
	require.Equal(t, []Point{{base, -1.5}}, c.WaitFor(t, "shovel.carbontest.line.b", 1, waitTimeout))
	require.Equal(t, []Point{{base + 2, 1.25}}, c.WaitFor(t, "shovel.carbontest.pickle.int", 1, waitTimeout))
	require.Equal(t, []Point{{base + 3, -3.5}}, c.WaitFor(t, "shovel.carbontest.pickle.float", 1, waitTimeout))

	t.Run("Fetch bounds are inclusive", func(t *testing.T) {
		got, err := c.Fetch("shovel.carbontest.line.a", time.Unix(base, 0), time.Unix(base, 0))
		require.NoError(t, err)
		require.Equal(t, []Point{{base, 42}}, got)
		got, err = c.Fetch("shovel.carbontest.line.a", time.Unix(base+1, 0), time.Unix(base+5, 0))
		require.NoError(t, err)
		require.Equal(t, []Point{{base + 1, 43.25}}, got)
		got, err = c.Fetch("shovel.carbontest.line.a", time.Unix(base-5, 0), time.Unix(base-1, 0))
		require.NoError(t, err)
		require.Empty(t, got)
	})
	t.Run("Fetch of a path carbon never wrote", func(t *testing.T) {
		_, err := c.Fetch("shovel.carbontest.never", time.Unix(base, 0), time.Now())
		require.ErrorIs(t, err, fs.ErrNotExist)
	})
}

func TestStopAndRestart(t *testing.T) {
	c := Start(t)
	const path = "shovel.carbontest.restart"
	base := recent()
	send(t, c.LineAddr(), fmt.Appendf(nil, "%s 1 %d\n", path, base))
	c.WaitFor(t, path, 1, waitTimeout)
	line, pickle := c.LineAddr(), c.PickleAddr()

	c.Stop()
	c.Stop() // twice is fine
	for _, addr := range []string{line, pickle} {
		_, err := net.DialTimeout("tcp", addr, time.Second)
		require.Error(t, err, "%s still accepts connections after Stop", addr)
	}

	c.Restart()
	require.Equal(t, line, c.LineAddr())
	require.Equal(t, pickle, c.PickleAddr())
	send(t, c.PickleAddr(), pickleFrame([]pickleEntry{{path: path, ts: float64(base + 1), value: 2}}))
	require.Equal(t, []Point{{base, 1}, {base + 1, 2}}, c.WaitFor(t, path, 2, waitTimeout),
		"the first point survives the restart")
}

func TestInstancesAreSeparate(t *testing.T) {
	a, b := Start(t), Start(t)
	addrs := map[string]bool{a.LineAddr(): true, a.PickleAddr(): true, b.LineAddr(): true, b.PickleAddr(): true}
	require.Len(t, addrs, 4, "every instance has its own ports")

	const path = "shovel.carbontest.separate"
	base := recent()
	send(t, a.LineAddr(), fmt.Appendf(nil, "%s 7 %d\n", path, base))
	require.Equal(t, []Point{{base, 7}}, a.WaitFor(t, path, 1, waitTimeout))
	_, err := b.Fetch(path, time.Unix(base, 0), time.Now())
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestOptions(t *testing.T) {
	c := Start(t, WithRetention("1s:10m,1m:1d"), WithSetting("max_cache_size", "100000"))
	conf, err := os.ReadFile(c.confFile)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(conf), "MAX_CACHE_SIZE"), string(conf))
	require.Contains(t, string(conf), "MAX_CACHE_SIZE = 100000\n")

	// WaitFor reads the 1s archive, not the 1m rollup.
	const path = "shovel.carbontest.options"
	base := recent()
	send(t, c.LineAddr(), fmt.Appendf(nil, "%s 1 %d\n%s 3 %d\n", path, base, path, base+1))
	require.Equal(t, []Point{{base, 1}, {base + 1, 3}}, c.WaitFor(t, path, 2, waitTimeout))
}

func TestParseRetentions(t *testing.T) {
	tests := []struct {
		in      string
		want    []archive
		wantErr bool
	}{
		{in: "1s:2h", want: []archive{{1, 7200}}},
		{in: "60:1440", want: []archive{{60, 1440}}},
		{in: "10s:1h, 1min:1d,1h:1y", want: []archive{{10, 360}, {60, 1440}, {3600, 8760}}},
		{in: "1s:1w", want: []archive{{1, 604800}}},
		{in: "1s", wantErr: true},
		{in: "0s:1h", wantErr: true},
		{in: "1x:1h", wantErr: true},
		{in: "1m:10s", wantErr: true}, // keeps no point
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseRetentions(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	a, err := parseRetentions(DefaultRetention)
	require.NoError(t, err)
	require.Equal(t, 2*time.Hour, a[0].span())
}

func TestParseFetch(t *testing.T) {
	// whisper-fetch --json prints a Python list: inf and nan unquoted.
	out := []byte(`{
    "start" : 1700000000,
    "end" : 1700000006,
    "step" : 1,
    "values" : [null, 42.0, -1.5e-05, inf, -inf, null]
  }
`)
	got, err := parseFetch(out)
	require.NoError(t, err)
	require.Equal(t, []Point{
		{1700000001, 42}, {1700000002, -1.5e-05}, {1700000003, math.Inf(1)}, {1700000004, math.Inf(-1)},
	}, got)

	_, err = parseFetch([]byte("No data in selected timerange"))
	require.Error(t, err)
}

func TestToolProblem(t *testing.T) {
	all := func(string) (string, error) { return "/usr/bin/x", nil }
	noCache := func(name string) (string, error) {
		if name == "carbon-cache" {
			return "", errors.New("not found")
		}
		return "/usr/bin/" + name, nil
	}
	tests := []struct {
		name      string
		ci        string
		lookPath  func(string) (string, error)
		wantMsg   string
		wantFatal bool
	}{
		{name: "tools present", ci: "true", lookPath: all},
		{name: "missing, developer machine", ci: "", lookPath: noCache,
			wantMsg: "carbontest: carbon-cache not on PATH (apt-get install graphite-carbon python3-whisper)"},
		{name: "missing, CI=false", ci: "false", lookPath: noCache,
			wantMsg: "carbontest: carbon-cache not on PATH (apt-get install graphite-carbon python3-whisper)"},
		{name: "missing in CI", ci: "true", lookPath: noCache, wantFatal: true,
			wantMsg: "carbontest: carbon-cache not on PATH (apt-get install graphite-carbon python3-whisper); CI must have them, see .ci/run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, fatal := toolProblem(tt.ci, tt.lookPath)
			require.Equal(t, tt.wantMsg, msg)
			require.Equal(t, tt.wantFatal, fatal)
		})
	}
}

// TestPortClash checks that start notices the bind races Start retries on.
func TestPortClash(t *testing.T) {
	a, b := Start(t), Start(t)
	b.Stop()
	ownPickle := b.picklePort

	t.Run("another carbon on the port", func(t *testing.T) {
		// Carbon binds with SO_REUSEPORT, so this start would succeed
		// and share a's connections if start did not look.
		b.picklePort = a.picklePort
		require.NoError(t, b.writeConf())
		require.ErrorIs(t, b.start(), errPortInUse)
	})
	t.Run("a plain listener on the port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		b.picklePort = ln.Addr().(*net.TCPAddr).Port
		require.NoError(t, b.writeConf())
		require.ErrorIs(t, b.start(), errPortInUse)
	})

	b.picklePort = ownPickle
	require.NoError(t, b.writeConf())
	b.Restart()
	send(t, b.PickleAddr(), pickleFrame([]pickleEntry{{path: "shovel.carbontest.clash", ts: float64(recent()), value: 1}}))
	b.WaitFor(t, "shovel.carbontest.clash", 1, waitTimeout)
	_, err := a.Fetch("shovel.carbontest.clash", time.Unix(recent()-60, 0), time.Now())
	require.ErrorIs(t, err, fs.ErrNotExist)
}

// TestWhisperFileOfTaggedNames: WhisperFile finds a tagged series where
// carbon's TaggedSeries.encode puts it (hash file names, carbon's
// default), for every name of router/metric's carbon vectors, whatever
// the order of its tags.
func TestWhisperFileOfTaggedNames(t *testing.T) {
	b, err := os.ReadFile("../../../router/metric/testdata/carbon_tags.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct{ In, Out, File, Error string }
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	c := &Carbon{whisperDir: "/w"}
	n := 0
	for _, v := range vs {
		if v.Error != "" || !strings.Contains(v.Out, ";") || strings.HasSuffix(v.In, `"}`) {
			continue
		}
		n++
		if got, want := c.WhisperFile(v.In), "/w/"+v.File+".wsp"; got != want {
			t.Errorf("WhisperFile(%q) = %s, carbon: %s", v.In, got, want)
		}
	}
	if n < 50 {
		t.Fatalf("only %d tagged vectors", n)
	}
}
