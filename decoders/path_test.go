package decoders_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

func TestPathSanitizer(t *testing.T) {
	def := decoders.DefaultPathConfig()
	tests := []struct {
		name   string
		set    func(*decoders.PathConfig)
		in     string
		want   string
		reason string
	}{
		{name: "kept", in: "voltha.internal.abc.rss-mb", want: "voltha.internal.abc.rss-mb"},
		{name: "allowed punctuation", in: "a-b_c:d#e@f%g+h=i~j", want: "a-b_c:d#e@f%g+h=i~j"},
		{name: "space", in: "a b.c", want: "a_b.c"},
		{name: "newline injection", in: "a.b 1 2\nevil.path 3 4", want: "a.b_1_2_evil.path_3_4"},
		{name: "run of bad bytes is one replacement", in: "a \t\r\n\x00b", want: "a_b"},
		{name: "control and DEL", in: "a\x01b\x7fc", want: "a_b_c"},
		{name: "glob characters", in: "a*b?c[d]e{f}g(h),", want: "a_b_c_d_e_f_g_h_"},
		{name: "empty segments collapse", in: "..a..b...c..", want: "a.b.c"},
		{name: "utf8 kept", in: "café.😀", want: "café.😀"},
		{name: "invalid utf8", in: "a\xff\xfeb", want: "a_b"},
		{name: "unicode space", in: "a\u00a0b\u2028c", want: "a_b_c"},
		{name: "utf8 refused", set: func(c *decoders.PathConfig) { c.UTF8 = false }, in: "café", want: "caf_"},
		{name: "delete instead of replace", set: func(c *decoders.PathConfig) { c.Replacement = "" }, in: "a b.c\nd", want: "ab.cd"},
		{name: "other replacement", set: func(c *decoders.PathConfig) { c.Replacement = "x" }, in: "a b", want: "axb"},
		{name: "narrower allowed set", set: func(c *decoders.PathConfig) { c.Allowed = "_" }, in: "a-b:c", want: "a_b_c"},
		{name: "nothing left", in: " . .. ", want: "_._._"},
		{name: "nothing left when deleting", set: func(c *decoders.PathConfig) { c.Replacement = "" }, in: " . .. ", reason: metric.ReasonBadPath},
		{name: "empty", in: "", reason: metric.ReasonBadPath},
		{name: "only dots", in: "...", reason: metric.ReasonBadPath},
		{name: "longest name", in: strings.Repeat("abcdefgh.", 227) + "abcde", want: strings.Repeat("abcdefgh.", 227) + "abcde"},
		{name: "name too long for carbon", in: strings.Repeat("abcdefgh.", 227) + "abcdef", reason: decoders.ReasonPathTooLong},
		{name: "4096 bytes", in: strings.Repeat("abcdefgh.", 455) + "a", reason: decoders.ReasonPathTooLong},
		{name: "configured max length", set: func(c *decoders.PathConfig) { c.MaxLength = 3 }, in: "a.bc", reason: decoders.ReasonPathTooLong},
		{name: "leaf too long for carbon", in: "a." + strings.Repeat("x", 252), reason: decoders.ReasonPathTooLong},
		{name: "segment too long for carbon", in: strings.Repeat("x", 252) + ".a", reason: decoders.ReasonPathTooLong},
		{name: "255-byte leaf", in: "a." + strings.Repeat("x", 255), reason: decoders.ReasonPathTooLong},
		{name: "longest segment", in: "a." + strings.Repeat("x", 251), want: "a." + strings.Repeat("x", 251)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := def
			if tt.set != nil {
				tt.set(&c)
			}
			require.NoError(t, c.Validate())
			got, reason := decoders.NewPathSanitizer(c).Sanitize(tt.in)
			require.Equal(t, tt.reason, reason)
			require.Equal(t, tt.want, got)
			if reason == "" {
				require.True(t, metric.ValidPath(got))
			}
		})
	}
}

func TestPathConfigValidate(t *testing.T) {
	for name, c := range map[string]decoders.PathConfig{
		"replacement not allowed": {Replacement: "*", Allowed: "-", MaxLength: 10},
		"replacement too long":    {Replacement: "__", Allowed: "_", MaxLength: 10},
		"dot allowed":             {Replacement: "_", Allowed: "_.", MaxLength: 10},
		"space allowed":           {Replacement: "_", Allowed: "_ ", MaxLength: 10},
		"max_length 0":            {Replacement: "_", Allowed: "_"},
		"max_length too big":      {Replacement: "_", Allowed: "_", MaxLength: metric.MaxPathLen + 1},
	} {
		t.Run(name, func(t *testing.T) { require.Error(t, c.Validate()) })
	}
	require.NoError(t, decoders.DefaultPathConfig().Validate())
}

// FuzzPathSanitizer: whatever goes in, what comes out is a path Carbon
// takes as one metric, and sanitising it again changes nothing.
func FuzzPathSanitizer(f *testing.F) {
	for _, s := range []string{"a.b", "a b", "a\nb 1 2", "..", "\xff", "café", "a..b.", strings.Repeat("x", 300)} {
		f.Add(s, "_", false)
	}
	f.Add("a b", "", true)
	f.Fuzz(func(t *testing.T, in, repl string, noUTF8 bool) {
		c := decoders.DefaultPathConfig()
		c.Replacement, c.UTF8 = repl, !noUTF8
		if c.Validate() != nil {
			return
		}
		s := decoders.NewPathSanitizer(c)
		got, reason := s.Sanitize(in)
		if reason != "" {
			require.Empty(t, got)
			return
		}
		require.True(t, metric.ValidPath(got), "%q -> %q", in, got)
		require.False(t, strings.ContainsAny(got, " \t\r\n\x00*?[]{}(),"), "%q -> %q", in, got)
		require.True(t, utf8.ValidString(got))
		again, reason := s.Sanitize(got)
		require.Empty(t, reason)
		require.Equal(t, got, again, "sanitising is idempotent")

		// WriteAllowed, when it takes a piece, does what Write does, with
		// the same effect on what follows (separators, segment lengths).
		for _, prefix := range []string{"", "a.b", "a_", "a."} {
			var buf1, buf2 [64]byte
			w := s.Builder(buf1[:0]).WriteString(prefix).Dot()
			a, ok := s.Builder(buf2[:0]).WriteString(prefix).Dot().WriteAllowed([]byte(in))
			if !ok {
				continue
			}
			w = w.Write([]byte(in))
			require.Equal(t, string(w.Bytes()), string(a.Bytes()), "prefix %q, %q", prefix, in)
			require.Equal(t, w.Check(), a.Check())
			w, a = w.WriteString("x y").Dot().WriteString(in), a.WriteString("x y").Dot().WriteString(in)
			require.Equal(t, string(w.Bytes()), string(a.Bytes()), "prefix %q, %q", prefix, in)
			require.Equal(t, w.Check(), a.Check())
		}
	})
}

// FuzzSanitizeName: any input name, tagged or not, comes out of the Carbon
// decoders' name sanitiser as one name Carbon accepts (a tagged one in
// carbon's normalized form, which sanitising again leaves alone) or is
// rejected with a reason.
func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"a.b", "cpu;host=a;dc=x", "~a;name=b;c=~d", "a;b", ";a=b", "a b;c=d e\n", "a;b=c{\"}", strings.Repeat("x;", 200)} {
		f.Add(s)
	}
	s := decoders.NewPathSanitizer(decoders.DefaultPathConfig())
	f.Fuzz(func(t *testing.T, in string) {
		got, reason := s.SanitizeName(in)
		if reason != "" {
			require.Empty(t, got)
			require.Contains(t, []string{metric.ReasonBadPath, decoders.ReasonPathTooLong}, reason, "%q", in)
			return
		}
		require.True(t, metric.ValidPath(got), "%q -> %q", in, got)
		require.False(t, strings.ContainsAny(got, " \t\r\n\x00"), "%q -> %q", in, got)
		if metric.IsTagged(got) {
			require.True(t, metric.Normalized(got), "%q -> %q", in, got)
		}
		again, reason := s.SanitizeName(got)
		require.Empty(t, reason, "%q -> %q", in, got)
		require.Equal(t, got, again, "sanitising is idempotent: %q", in)
	})
}
