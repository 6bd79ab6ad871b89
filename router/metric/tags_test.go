package metric

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var updateCarbonVectors = flag.Bool("update-carbon-vectors", false, "rewrite testdata/carbon_tags.json with carbon's own output")

// carbonVector is one line of testdata/carbon_tags.json: a name and what
// Debian's carbon (testdata/carbon_tags.py) made of it.
type carbonVector struct {
	In    string `json:"in"`
	Out   string `json:"out,omitempty"`
	File  string `json:"file,omitempty"`
	Error string `json:"error,omitempty"`
}

// vectorNames are the names of the carbon vectors: the cases carbon's
// TaggedSeries treats specially, then generated ones over an alphabet of
// the characters that matter.
func vectorNames() []string {
	names := []string{
		"cpu.load", "~cpu.load", "~~~a.b", "~", "cpu.load;host=a;dc=x", "cpu.load;dc=x;host=a",
		"a;b=c;a=1", "x.y;a-b=1;a=2;a1=3", "x;a=1;a.b=2;a_b=3;a-b=4;A=5;a~=6", "a;b=c;b=d", "a;b=d;b=c",
		"a;name=z", "a;name=z;b=1", "~a;b=1", "~;a=b", ";a=b", "a;", "a;;b=1", "a;b", "a;=b", "a;b=",
		"a;b!=1", "a;b^=1", "a;b=~1", "a;b=1~", "a;b=c=d", "a;b=value.2;c=x y", "a;é=1;z=2;Z=3",
		"métrique.été;hôte=ñ", "a.b;k=v;k=v", "a b;c=d", "a;b=c{\"}", "a{b=\"c\"}",
		"voltha.PONStats.RxBytes;device_id=0001c5f1;devicetype=openolt;portlabel=pon-0",
	}
	rng := rand.New(rand.NewPCG(13, 1))
	pieces := []string{"a", "b", "A", "z", "-", "1", "_", ".", "~", "!", "^", "=", "é", "name", "x.y", " "}
	word := func() string {
		var b strings.Builder
		for range rng.IntN(3) + 1 {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	for range 400 {
		n := word()
		for range rng.IntN(5) {
			n += ";" + word() + "=" + word()
		}
		names = append(names, n)
	}
	return names
}

func loadCarbonVectors(t *testing.T) []carbonVector {
	t.Helper()
	b, err := os.ReadFile("testdata/carbon_tags.json")
	require.NoError(t, err)
	var vs []carbonVector
	require.NoError(t, json.Unmarshal(b, &vs))
	require.NotEmpty(t, vs)
	return vs
}

// carbonPython is Debian's python3 when it can import carbon (a pyenv
// python3 earlier on PATH cannot), else "".
func carbonPython() string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import carbon.util").Run() == nil {
			return py
		}
	}
	return ""
}

// TestCarbonVectorsAreCarbons recomputes testdata/carbon_tags.json with
// carbon's own TaggedSeries where graphite-carbon is installed (CI
// installs it), so the vectors cannot drift from carbon.
func TestCarbonVectorsAreCarbons(t *testing.T) {
	if testing.Short() {
		t.Skip("runs python3")
	}
	py := carbonPython()
	if py == "" {
		t.Skip("no python3 that imports carbon.util (apt-get install graphite-carbon)")
	}
	in, err := json.Marshal(vectorNames())
	require.NoError(t, err)
	cmd := exec.Command(py, "testdata/carbon_tags.py")
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	require.NoError(t, err)
	if *updateCarbonVectors {
		require.NoError(t, os.WriteFile("testdata/carbon_tags.json", out, 0o644))
	}
	var want []carbonVector
	require.NoError(t, json.Unmarshal(out, &want))
	require.Equal(t, want, loadCarbonVectors(t), "testdata/carbon_tags.json is not what carbon computes: run go test -run TestCarbonVectorsAreCarbons -update-carbon-vectors")
}

// TestNormalizeMatchesCarbon: AppendNormalized, Normalize and Normalized
// agree with carbon on every vector, except that shovel does not read the
// OpenMetrics form (ValidPath refuses it, so it never reaches an output).
func TestNormalizeMatchesCarbon(t *testing.T) {
	for _, v := range loadCarbonVectors(t) {
		got, err := AppendNormalized(nil, v.In)
		switch {
		case openMetricsLike(v.In):
			require.Error(t, err, v.In)
			require.False(t, ValidPath(v.In), v.In)
		case v.Error != "":
			require.Error(t, err, "%q: carbon says %s", v.In, v.Error)
			_, err = Normalize(v.In)
			require.Error(t, err, v.In)
			require.False(t, Normalized(v.In), v.In)
		default:
			require.NoError(t, err, v.In)
			require.Equal(t, v.Out, string(got), v.In)
			n, err := Normalize(v.In)
			require.NoError(t, err, v.In)
			require.Equal(t, v.Out, n, v.In)
			require.Equal(t, v.In == v.Out, Normalized(v.In), "Normalized(%q)", v.In)
			require.True(t, Normalized(v.Out), "Normalized(%q)", v.Out)
		}
	}
}

// TestTagSetMatchesCarbon: a TagSet's output is a fixed point of carbon's
// normalization for every vector carbon accepts, and ValidPath accepts
// it wherever shovel's stricter rules (no space) let the name through.
func TestTagSetMatchesCarbon(t *testing.T) {
	var s TagSet
	for _, v := range loadCarbonVectors(t) {
		name, tags := SplitTagged(v.In)
		if v.Error != "" || tags == "" || openMetricsLike(v.In) {
			continue
		}
		s.Reset()
		s.Parse(tags)
		got := string(s.AppendTo([]byte(strings.TrimLeft(name, "~"))))
		// Shovel repairs what carbon lets through and a line cannot carry.
		if !strings.Contains(v.In, " ") {
			require.Equal(t, v.Out, got, v.In)
		}
		if ValidPath(strings.TrimLeft(name, "~")) {
			require.True(t, ValidPath(got), "%q from %q", got, v.In)
		}
	}
}

func TestTagSet(t *testing.T) {
	for _, tt := range []struct {
		name    string
		add     [][2]string
		parse   string
		want    string
		repairs []string
	}{
		{name: "sorted as carbon sorts", add: [][2]string{{"a", "1"}, {"a1", "2"}, {"a-b", "3"}, {"B", "4"}}, want: ";B=4;a-b=3;a1=2;a=1"},
		{name: "last value wins", parse: "host=a;dc=x;host=b", want: ";dc=x;host=b", repairs: []string{ReasonTagDuplicate}},
		{name: "empty value dropped", add: [][2]string{{"serial_no", ""}, {"device_id", "d1"}}, want: ";device_id=d1", repairs: []string{ReasonTagEmpty}},
		{name: "empty key dropped", parse: "=1;b=2", want: ";b=2", repairs: []string{ReasonTagMalformed}},
		{name: "no equals dropped", parse: "bare;b=2", want: ";b=2", repairs: []string{ReasonTagMalformed}},
		{name: "name is reserved", parse: "name=x;b=2", want: ";b=2", repairs: []string{ReasonTagReserved}},
		{name: "key chars repaired", add: [][2]string{{"a!b^c d", "1"}}, want: ";a_b_c_d=1", repairs: []string{ReasonTagRepaired}},
		{name: "value tilde stripped", add: [][2]string{{"k", "~~v"}}, want: ";k=v", repairs: []string{ReasonTagRepaired}},
		{name: "value of tildes only dropped", add: [][2]string{{"k", "~~"}}, want: "", repairs: []string{ReasonTagRepaired, ReasonTagEmpty}},
		{name: "newline cannot start a line", add: [][2]string{{"k", "v\nevil.path 1 2"}}, want: ";k=v_evil.path_1_2", repairs: []string{ReasonTagRepaired}},
		{name: "semicolon in a value", add: [][2]string{{"k", "a;b=c"}}, want: ";k=a_b=c", repairs: []string{ReasonTagRepaired}},
		{name: "invalid utf8", add: [][2]string{{"k\xff", "v\xfe\xfd"}}, want: ";k_=v_", repairs: []string{ReasonTagRepaired, ReasonTagRepaired}},
		{name: "utf8 kept", add: [][2]string{{"hôte", "été"}}, want: ";hôte=été"},
		{name: "dots and equals in values kept", parse: "k=a.b=c", want: ";k=a.b=c"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s TagSet
			s.Reset()
			for _, kv := range tt.add {
				s.Add(kv[0], kv[1])
			}
			if tt.parse != "" {
				s.Parse(tt.parse)
			}
			got := string(s.AppendTo(nil))
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.repairs, slices.Clip(s.Repairs()))
			if got != "" {
				require.True(t, ValidPath("m"+got), "m%s", got)
				require.True(t, Normalized("m"+got), "m%s", got)
			}
		})
	}
}

func TestValidPathTagged(t *testing.T) {
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"cpu.load;host=a;dc=x", true}, // any order: carbon normalizes
		{"cpu.load;dc=x;host=a", true},
		{"a;b=c.d.", true},
		{"a;b=c;b=d", true},
		{"a.;b=c", false},
		{";b=c", false},
		{"~a;b=c", false},
		{"a;b", false},
		{"a;b=", false},
		{"a;=c", false},
		{"a;", false},
		{"a;b=c;", false},
		{"a;name=x", false},
		{"a;b=~c", false},
		{"a;b!=c", false},
		{"a;b=c d", false},
		{"a;b=c\n", false},
		{"a;b=c{\"}", false},
		{"a{b=\"c\"}", false},
		{"a..b;c=d", false},
		{"a\xff;c=d", false},
		{"a;c=\xff", false},
		{"é;c=ü", true},
	} {
		require.Equal(t, tt.want, ValidPath(tt.path), "ValidPath(%q)", tt.path)
	}
}

func TestNormalizeDoesNotAllocate(t *testing.T) {
	dst := make([]byte, 0, 256)
	p := "voltha.PONStats.RxBytes;portlabel=pon-0;devicetype=openolt;device_id=0001c5f1"
	want := "voltha.PONStats.RxBytes;device_id=0001c5f1;devicetype=openolt;portlabel=pon-0"
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		dst, err = AppendNormalized(dst[:0], p)
		if err != nil || len(dst) != len(p) || !Normalized(want) {
			t.Fatal("not normalized")
		}
	})
	require.Zero(t, allocs)
	require.Equal(t, want, string(dst))
}

// FuzzTaggedName: any input name comes out of the tag path (the name's
// leading '~'s and its tags repaired by a TagSet) either as one name that
// ValidPath accepts, in carbon's normalized form, or rejected (the name
// part is not a valid path: decoders sanitize it first). AppendNormalized
// agrees with Normalized, and is idempotent.
func FuzzTaggedName(f *testing.F) {
	for _, n := range []string{"a;b=c", "a;b=c;a=1", "~a;name=b;c=~d", "a;b", "a;b=c{\"}", "a b;c=d e\n"} {
		f.Add(n)
	}
	var s TagSet
	f.Fuzz(func(t *testing.T, in string) {
		name, tags := SplitTagged(in)
		name = strings.TrimLeft(name, "~")
		s.Reset()
		if tags != "" {
			s.Parse(tags)
		}
		out := string(s.AppendTo([]byte(name)))
		if !ValidPath(name) || strings.HasSuffix(name, `"}`) {
			return // rejected: the decoder's path sanitizer owns the name
		}
		if !ValidPath(out) {
			t.Fatalf("%q -> %q: not a valid path", in, out)
		}
		if !Normalized(out) {
			t.Fatalf("%q -> %q: not normalized", in, out)
		}
		if strings.Count(out, "\n") != 0 || strings.ContainsAny(out, " \t\r") {
			t.Fatalf("%q -> %q: breaks a line", in, out)
		}
		if n, err := AppendNormalized(nil, in); err == nil {
			again, err := AppendNormalized(nil, string(n))
			if err != nil || string(again) != string(n) || !Normalized(string(n)) {
				t.Fatalf("%q -> %q: not idempotent (%q, %v)", in, n, again, err)
			}
		} else if Normalized(in) {
			t.Fatalf("%q: Normalized but %v", in, err)
		}
	})
}

func BenchmarkValidPath(b *testing.B) {
	for _, p := range []string{"voltha.internal.compose_voltha_7.rss-mb", "voltha.PONStats.RxBytes;device_id=0001c5f1;devicetype=openolt;portlabel=pon-0"} {
		b.Run(map[bool]string{false: "untagged", true: "tagged"}[IsTagged(p)], func(b *testing.B) {
			for b.Loop() {
				if !ValidPath(p) {
					b.Fatal(p)
				}
			}
		})
	}
}

// insertionSortModel is sortTags as it was before it sorted many tags in
// O(n log n): carbon's order (stable), then the last of each key.
func insertionSortModel(tags []Tag) []Tag {
	tags = slices.Clone(tags)
	for i := 1; i < len(tags); i++ {
		for j := i; j > 0 && compareTagKeys(tags[j-1].Key, tags[j].Key) > 0; j-- {
			tags[j], tags[j-1] = tags[j-1], tags[j]
		}
	}
	var out []Tag
	for i, t := range tags {
		if i+1 < len(tags) && tags[i+1].Key == t.Key {
			continue
		}
		out = append(out, t)
	}
	return out
}

// TestSortTagsMany: past insertionSortTags, sortTags orders and dedupes
// exactly as the insertion sort does (keys that sort around '=' and
// duplicates whose last value must win included).
func TestSortTagsMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "a-b", "a1", "a~", "b", "ab", "a.b", "z", "é", "A"}
	for _, n := range []int{insertionSortTags, insertionSortTags + 1, 100, 1000, 5000} {
		tags := make([]Tag, n)
		for i := range tags {
			k := keys[rng.IntN(len(keys))]
			if rng.IntN(2) == 0 {
				k += strconv.Itoa(rng.IntN(n))
			}
			tags[i] = Tag{k, strconv.Itoa(i)}
		}
		want := insertionSortModel(tags)
		require.Equal(t, want, sortTags(slices.Clone(tags)), "%d tags", n)
		var s TagSet
		for _, tg := range tags {
			s.Add(tg.Key, tg.Value)
		}
		require.Equal(t, want, s.Tags(), "%d tags", n)
	}
}

// BenchmarkSortTagsHostile sorts the tags of a 1 MB name of 100 000
// distinct keys given in reverse order: insertion sort's worst case,
// quadratic (tens of seconds) before sortTags switched to O(n log n).
func BenchmarkSortTagsHostile(b *testing.B) {
	tags := make([]Tag, 100_000)
	for i := range tags {
		tags[i] = Tag{fmt.Sprintf("t%06d", len(tags)-i), "v"}
	}
	work := make([]Tag, len(tags))
	b.ReportAllocs()
	for b.Loop() {
		copy(work, tags)
		if got := sortTags(work); len(got) != len(tags) {
			b.Fatal(len(got))
		}
	}
}
