package router

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		glob, path string
		want       bool
	}{
		{"voltha.*.cpu", "voltha.olt1.cpu", true},
		{"voltha.*.cpu", "voltha.olt1.port1.cpu", false}, // * stays in one segment
		{"voltha.*", "voltha.olt1", true},
		{"voltha.olt?", "voltha.olt7", true},
		{"voltha.{olt,onu}1.cpu", "voltha.onu1.cpu", true},
		{"voltha.{olt,onu}1.cpu", "voltha.xyz1.cpu", false},
		{"a.[0-9].b", "a.5.b", true},
		{"a.b+c", "a.b+c", true}, // regexp metacharacters are literal in a glob
		{"a.b+c", "a.bbc", false},
	}
	for _, tt := range tests {
		t.Run(tt.glob+" "+tt.path, func(t *testing.T) {
			re, err := compilePattern(tt.glob)
			require.NoError(t, err)
			require.Equal(t, tt.want, re.MatchString(tt.path))
		})
	}
}

func TestApplyRules(t *testing.T) {
	in := func() []metric.Sample {
		return []metric.Sample{
			{Path: "voltha.internal.abc.deferreds", Value: 1},
			{Path: "voltha.olt1.cpu", Value: 2},
			{Path: "voltha.olt1.debug.x", Value: 3},
			{Path: "other.thing", Value: 4},
		}
	}
	tests := []struct {
		name  string
		rules []Rule
		want  []string
	}{
		{"none", nil, []string{"voltha.internal.abc.deferreds", "voltha.olt1.cpu", "voltha.olt1.debug.x", "other.thing"}},
		{"keep glob", []Rule{{Keep: "voltha.*.cpu"}}, []string{"voltha.olt1.cpu"}},
		{"keep regexp", []Rule{{Keep: `^voltha\.`}}, []string{"voltha.internal.abc.deferreds", "voltha.olt1.cpu", "voltha.olt1.debug.x"}},
		{"drop", []Rule{{Drop: "*.*.debug.*"}}, []string{"voltha.internal.abc.deferreds", "voltha.olt1.cpu", "other.thing"}},
		{"rewrite", []Rule{{Keep: "voltha.olt1.*"}, {Rewrite: &Rewrite{Match: `^voltha\.(olt\d+)\.`, Replace: "pon.${1}."}}},
			[]string{"pon.olt1.cpu"}},
		{"strip then add prefix", []Rule{{StripPrefix: "voltha."}, {AddPrefix: "prod"}},
			[]string{"prod.internal.abc.deferreds", "prod.olt1.cpu", "prod.olt1.debug.x", "prod.other.thing"}},
		{"order matters: drop after rewrite sees the new path", []Rule{{StripPrefix: "voltha."}, {Drop: "olt1.*"}},
			[]string{"internal.abc.deferreds", "olt1.debug.x", "other.thing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := CompileRules(tt.rules)
			require.NoError(t, err)
			var got []string
			for _, s := range applied(rules, in()) {
				got = append(got, s.Path)
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestCompileRulesErrors(t *testing.T) {
	_, err := CompileRules([]Rule{{Keep: "a", Drop: "b"}})
	require.EqualError(t, err, "rules[0]: exactly one of keep, drop, rewrite, add_prefix, strip_prefix, keep_tag, drop_tag, add_tag, remove_tag, rename_tag, tag_to_path, path_to_tag must be set")
	_, err = CompileRules([]Rule{{}, {Keep: "^("}})
	require.ErrorContains(t, err, "rules[0]")
	_, err = CompileRules([]Rule{{Keep: "^("}})
	require.ErrorContains(t, err, "rules[0]: error parsing regexp")
}

// applied is applyRules without a budget.
func applied(rules []Rule, samples []metric.Sample) []metric.Sample {
	out, _ := applyRules(rules, samples, nil)
	return out
}
