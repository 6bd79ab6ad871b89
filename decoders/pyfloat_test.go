package decoders

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

// pyFloatVector is one line of testdata/pyfloat/vectors.jsonl: an input
// and what Python's float() returned for it (repr, "nan", or null when it
// raised ValueError).
type pyFloatVector struct {
	In    string  `json:"in"`
	Float *string `json:"float"`
}

func readPyFloatVectors(t testing.TB) []pyFloatVector {
	t.Helper()
	data, err := os.ReadFile("testdata/pyfloat/vectors.jsonl")
	require.NoError(t, err)
	var out []pyFloatVector
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var v pyFloatVector
		require.NoError(t, json.Unmarshal(sc.Bytes(), &v), "%s", sc.Text())
		out = append(out, v)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out)
	return out
}

// TestPyFloatVectorsArePython's: where python3 is installed, the vectors
// are what float() says now, not what someone wrote down.
func TestPyFloatVectorsArePythons(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is needed to check the float() vectors")
		}
		t.Skip("python3 not installed")
	}
	got, err := exec.Command(py, "testdata/pyfloat/gen.py").Output()
	require.NoError(t, err)
	want, err := os.ReadFile("testdata/pyfloat/vectors.jsonl")
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "regenerate: cd decoders/testdata/pyfloat && python3 gen.py > vectors.jsonl")
}

// TestNumberTextAgreesWithPython: every decoder's numbers (plaintext
// values and timestamps, numeric strings in JSON, slice and pickle, the
// pickle FLOAT opcode) are what Python's float() makes of them.
func TestNumberTextAgreesWithPython(t *testing.T) {
	for _, v := range readPyFloatVectors(t) {
		t.Run(strconv.QuoteToASCII(v.In), func(t *testing.T) {
			got, ok := parsePyFloat([]byte(v.In))
			val, reason := NumberText([]byte(v.In))
			if v.Float == nil {
				require.False(t, ok, "float() refuses it; parsed as %v", got)
				require.Equal(t, metric.ReasonNotANumber, reason)
				return
			}
			require.True(t, ok, "float() gives %s", *v.Float)
			var want float64
			switch *v.Float {
			case "nan":
				require.True(t, math.IsNaN(got), "got %v", got)
				require.Equal(t, metric.ReasonNotFinite, reason)
				return
			case "inf", "-inf":
				want = math.Inf(1)
				if *v.Float == "-inf" {
					want = math.Inf(-1)
				}
			default:
				var err error
				want, err = strconv.ParseFloat(*v.Float, 64)
				require.NoError(t, err)
			}
			require.Equal(t, math.Float64bits(want), math.Float64bits(got), "got %v, float() %s", got, *v.Float)
			if math.IsInf(want, 0) {
				require.Equal(t, metric.ReasonNotFinite, reason)
				return
			}
			require.Empty(t, reason)
			require.Equal(t, math.Float64bits(want), math.Float64bits(val))
		})
	}
}

// pyFloatGrammar is float()'s grammar for ASCII input, after the white
// space is trimmed: the rules the vectors show, written independently of
// parsePyFloat as a regular expression.
var pyFloatGrammar = regexp.MustCompile(`^[+-]?(?:(?i:inf|infinity|nan)|(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)(?:[eE][+-]?[0-9](?:_?[0-9])*)?)$`)

// pyFloatModel is what float() returns for an ASCII string, by the
// grammar: Go's ParseFloat agrees with it on what the grammar accepts,
// once the underscores are gone.
func pyFloatModel(s string) (float64, bool) {
	s = strings.Trim(s, " \t\n\v\f\r")
	if !pyFloatGrammar.MatchString(s) {
		return 0, false
	}
	if strings.EqualFold(strings.TrimLeft(s, "+-"), "nan") {
		return math.NaN(), true // Go's ParseFloat takes no sign on NaN
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil && !strings.Contains(err.Error(), "out of range") {
		panic(err)
	}
	return v, true
}

func TestPyFloatModelAgreesWithTheVectors(t *testing.T) {
	for _, v := range readPyFloatVectors(t) {
		ascii := true
		for i := 0; i < len(v.In); i++ {
			ascii = ascii && v.In[i] < 0x80 && (v.In[i] >= ' ' || strings.IndexByte(" \t\n\v\f\r", v.In[i]) >= 0)
		}
		if !ascii {
			continue
		}
		_, ok := pyFloatModel(v.In)
		require.Equal(t, v.Float != nil, ok, "%q", v.In)
	}
}

// FuzzNumberText holds NumberText to float()'s grammar on any ASCII input
// and to the same answer as for the ASCII equivalent of any other.
func FuzzNumberText(f *testing.F) {
	for _, v := range readPyFloatVectors(f) {
		f.Add(v.In)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parsePyFloat([]byte(s))
		_, reason := NumberText([]byte(s))
		if ok != (reason != metric.ReasonNotANumber) {
			t.Fatalf("%q: parsed %v, but NumberText says %q", s, ok, reason)
		}
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return // Unicode digits and spaces: the vectors cover them
			}
		}
		want, wantOK := pyFloatModel(s)
		if ok != wantOK {
			t.Fatalf("%q: parsed %v (%v), float() would %v", s, ok, got, wantOK)
		}
		if ok && math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("%q: %v, float() %v", s, got, want)
		}
	})
}

// TestPyFloatLeadingZeros: leading zeros, however many, are dropped as
// float() drops them.
func TestPyFloatLeadingZeros(t *testing.T) {
	zeros := strings.Repeat("0", 100_000)
	for in, want := range map[string]float64{
		zeros + "1": 1, "-" + zeros + "2.5": -2.5, zeros: 0, zeros + ".": 0, "+" + zeros + "e5": 0,
		"0_0_1": 1, zeros + "1_0": 10, "00.5": 0.5, "0": 0, "007e2": 700,
	} {
		got, ok := parsePyFloat([]byte(in))
		require.True(t, ok, "%.20q", in)
		require.Equal(t, want, got, "%.20q", in)
	}
}

// BenchmarkPyFloatLeadingZeros parses a number of a million leading
// zeros: 15 s when they were dropped one at a time, each moving the rest.
func BenchmarkPyFloatLeadingZeros(b *testing.B) {
	in := []byte(strings.Repeat("0", 1<<20) + "1")
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if v, ok := parsePyFloat(in); !ok || v != 1 {
			b.Fatal(v, ok)
		}
	}
}
