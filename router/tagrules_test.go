package router

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

func TestTagRules(t *testing.T) {
	const (
		pon  = "voltha.PONStats.RxBytes;device_id=d1;devicetype=openolt;port=pon-0"
		nni  = "voltha.NNIStats.RxBytes;device_id=d1;port=nni-65536"
		flat = "voltha.internal.abc.rss-mb"
	)
	for _, tt := range []struct {
		name  string
		rules []Rule
		in    []string
		want  []string
	}{
		{"keep_tag equal", []Rule{{KeepTag: "devicetype=openolt"}}, []string{pon, nni, flat}, []string{pon}},
		{"keep_tag not equal holds without the tag", []Rule{{KeepTag: "devicetype!=openolt"}}, []string{pon, nni, flat}, []string{nni, flat}},
		{"drop_tag regexp anchored at the start", []Rule{{DropTag: "port=~nni-"}}, []string{pon, nni, flat}, []string{pon, flat}},
		{"drop_tag regexp not at the start", []Rule{{DropTag: "port=~65536"}}, []string{pon, nni}, []string{pon, nni}},
		{"keep_tag not regexp", []Rule{{KeepTag: "port!=~pon-"}}, []string{pon, nni, flat}, []string{nni, flat}},
		{"keep_tag on the name", []Rule{{KeepTag: "name=~voltha\\.NNI"}}, []string{pon, nni, flat}, []string{nni}},
		{"path globs see the name only", []Rule{{Keep: "voltha.*.RxBytes"}}, []string{pon, nni, flat}, []string{pon, nni}},
		{"rewrite keeps the tags", []Rule{{Rewrite: &Rewrite{Match: "^voltha\\.", Replace: "olt."}}}, []string{pon, flat},
			[]string{"olt.PONStats.RxBytes;device_id=d1;devicetype=openolt;port=pon-0", "olt.internal.abc.rss-mb"}},
		{"add_prefix", []Rule{{AddPrefix: "prod"}}, []string{pon}, []string{"prod." + pon}},
		{"add_tag sorted in, replacing", []Rule{{AddTag: "a-b=1"}, {AddTag: "port=x"}}, []string{pon, flat},
			[]string{"voltha.PONStats.RxBytes;a-b=1;device_id=d1;devicetype=openolt;port=x", "voltha.internal.abc.rss-mb;a-b=1;port=x"}},
		{"remove_tag", []Rule{{RemoveTag: "devicetype"}}, []string{pon, flat}, []string{"voltha.PONStats.RxBytes;device_id=d1;port=pon-0", flat}},
		{"remove every tag", []Rule{{RemoveTag: "*"}}, []string{pon, flat}, []string{"voltha.PONStats.RxBytes", flat}},
		{"rename_tag re-sorts", []Rule{{RenameTag: &RenameTag{From: "device_id", To: "z"}}}, []string{pon, flat},
			[]string{"voltha.PONStats.RxBytes;devicetype=openolt;port=pon-0;z=d1", flat}},
		{"rename_tag onto an existing key replaces it", []Rule{{RenameTag: &RenameTag{From: "device_id", To: "port"}}}, []string{pon},
			[]string{"voltha.PONStats.RxBytes;devicetype=openolt;port=d1"}},
		{"tag_to_path", []Rule{{TagToPath: &TagToPath{Tag: "device_id", Segment: 1}}, {TagToPath: &TagToPath{Tag: "port", Segment: -2}}},
			[]string{pon, flat}, []string{"voltha.d1.PONStats.pon-0.RxBytes;devicetype=openolt", flat}},
		{"flat site: every tag to a segment, the rest removed", []Rule{
			{TagToPath: &TagToPath{Tag: "device_id", Segment: 1}}, {TagToPath: &TagToPath{Tag: "port", Segment: -2}}, {RemoveTag: "*"}},
			[]string{pon, nni}, []string{"voltha.d1.PONStats.pon-0.RxBytes", "voltha.d1.NNIStats.nni-65536.RxBytes"}},
		{"tag_to_path: dots in a value stay in one segment", []Rule{{TagToPath: &TagToPath{Tag: "ip", Segment: -1}}},
			[]string{"m;ip=10.0.0.1"}, []string{"m.10_0_0_1"}},
		{"path_to_tag and back", []Rule{{PathToTag: &PathToTag{Segment: 1, Tag: "device_id"}}},
			[]string{"voltha.d2.PONStats.RxBytes;port=pon-1", "single"}, []string{"voltha.PONStats.RxBytes;device_id=d2;port=pon-1", "single"}},
		{"round trip", []Rule{{TagToPath: &TagToPath{Tag: "device_id", Segment: 1}}, {PathToTag: &PathToTag{Segment: 1, Tag: "device_id"}}},
			[]string{pon}, []string{pon}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := CompileRules(tt.rules)
			require.NoError(t, err)
			var samples []metric.Sample
			for _, p := range tt.in {
				samples = append(samples, metric.Sample{Path: p})
			}
			var got []string
			for _, s := range applied(rules, samples) {
				got = append(got, s.Path)
				require.True(t, metric.ValidPath(s.Path), s.Path)
				if metric.IsTagged(s.Path) {
					require.True(t, metric.Normalized(s.Path), s.Path)
				}
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestTagRuleErrors(t *testing.T) {
	for _, tt := range []struct {
		rule Rule
		err  string
	}{
		{Rule{KeepTag: "port"}, "rules[0]: keep_tag: tag expression \"port\""},
		{Rule{DropTag: "port=~("}, "rules[0]: drop_tag: tag expression \"port=~(\": error parsing regexp"},
		{Rule{AddTag: "a b=1"}, "rules[0]: add_tag: \"a b=1\""},
		{Rule{AddTag: "k=~v"}, "rules[0]: add_tag: \"k=~v\""},
		{Rule{AddTag: "name=v"}, "rules[0]: add_tag: \"name=v\""},
		{Rule{RemoveTag: "a;b"}, "rules[0]: remove_tag"},
		{Rule{RenameTag: &RenameTag{From: "a", To: ""}}, "rules[0]: rename_tag"},
		{Rule{TagToPath: &TagToPath{}}, "rules[0]: tag_to_path.tag"},
		{Rule{PathToTag: &PathToTag{Tag: "a!"}}, "rules[0]: path_to_tag.tag"},
		{Rule{KeepTag: "a=b", AddTag: "c=d"}, "rules[0]: exactly one of"},
	} {
		_, err := CompileRules([]Rule{tt.rule})
		require.ErrorContains(t, err, tt.err)
	}
}

// FuzzTagRules: whatever a tagged path and a tag value hold, the tag rules
// give valid paths in carbon's normalized form (or leave a path alone).
func FuzzTagRules(f *testing.F) {
	f.Add("voltha.PONStats.RxBytes;device_id=d1;port=pon-0", "x", 1)
	f.Add("a;b=c", "", -1)
	f.Fuzz(func(t *testing.T, p, v string, seg int) {
		if !metric.ValidPath(p) {
			return
		}
		in, err := metric.Normalize(p)
		if err != nil {
			return
		}
		add := "k=" + v
		rules := []Rule{{TagToPath: &TagToPath{Tag: "port", Segment: seg % 8}}, {PathToTag: &PathToTag{Segment: seg % 5, Tag: "seg"}},
			{RenameTag: &RenameTag{From: "device_id", To: "dev"}}}
		if _, err := CompileRules([]Rule{{AddTag: add}}); err == nil {
			rules = append(rules, Rule{AddTag: add})
		}
		compiled, err := CompileRules(rules)
		require.NoError(t, err)
		for _, s := range applied(compiled, []metric.Sample{{Path: in}}) {
			require.True(t, metric.ValidPath(s.Path), "%q -> %q", in, s.Path)
			if metric.IsTagged(s.Path) {
				require.True(t, metric.Normalized(s.Path), "%q -> %q", in, s.Path)
			}
		}
	})
}
