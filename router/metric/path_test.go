package metric

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// longestName is MaxNameLen bytes of MaxSegmentLen-byte segments.
var longestName = strings.Repeat(strings.Repeat("s", MaxSegmentLen)+".", 8) + strings.Repeat("t", MaxNameLen-8*(MaxSegmentLen+1))

func TestValidPath(t *testing.T) {
	tests := []struct {
		name string
		path string
		want bool
	}{
		{"simple", "voltha.internal.abc.deferreds", true},
		{"dash and underscore", "a-b.c_d.rss-mb", true},
		{"utf8", "héllo.wörld", true},
		{"empty", "", false},
		{"space", "a b.c", false},
		{"newline injection", "a.b 1 2\nevil.path", false},
		{"tab", "a\tb", false},
		{"del", "a\x7fb", false},
		{"leading dot", ".a.b", false},
		{"trailing dot", "a.b.", false},
		{"double dot", "a..b", false},
		{"invalid utf8", "a.\xff\xfe", false},
		{"4096-byte name", strings.Repeat("abcdefgh.", 455) + "a", false},
		{"too long with tags", "a;k=" + strings.Repeat("v", MaxPathLen), false},
		{"longest name", longestName, true},
		{"longest name with tags", longestName + ";k=" + strings.Repeat("v", MaxPathLen-len(longestName)-3), true},
		{"name too long", longestName + "x", false},
		{"name too long with tags", longestName + "x;k=v", false},
		{"longest segment", "a." + strings.Repeat("x", MaxSegmentLen) + ".b", true},
		{"segment too long", "a." + strings.Repeat("x", MaxSegmentLen+1) + ".b", false},
		{"leaf of 255 bytes", "a." + strings.Repeat("x", 255), false},
		{"first segment too long", strings.Repeat("x", MaxSegmentLen+1) + ".b", false},
		{"long tag value", "a;k=" + strings.Repeat("v", 300), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidPath(tt.path); got != tt.want {
				t.Fatalf("ValidPath(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}

func TestPathReason(t *testing.T) {
	for path, want := range map[string]string{
		"a b":                                    ReasonBadPath,
		"a..b":                                   ReasonBadPath,
		longestName + "x":                        ReasonPathTooLong,
		longestName + "x;k=v":                    ReasonPathTooLong,
		"a;k=" + strings.Repeat("v", MaxPathLen): ReasonPathTooLong,
		"a." + strings.Repeat("x", MaxSegmentLen+1): ReasonPathTooLong,
	} {
		require.False(t, ValidPath(path))
		require.Equal(t, want, PathReason(path), "%.40q", path)
	}
}

func TestNameFits(t *testing.T) {
	require.Len(t, longestName, MaxNameLen)
	require.True(t, NameFits(longestName))
	require.True(t, NameFits(""))
	require.True(t, NameFits(strings.Repeat("x", MaxSegmentLen)))
	require.False(t, NameFits(strings.Repeat("x", MaxSegmentLen+1)))
	require.False(t, NameFits("a."+strings.Repeat("x", MaxSegmentLen+1)+".b"))
	require.False(t, NameFits(longestName+"x"))
}

func FuzzValidPath(f *testing.F) {
	for _, s := range []string{"a.b", "a b", "a\nb", "..", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !ValidPath(p) {
			return
		}
		// A valid path must never be able to break a plaintext line.
		if strings.ContainsAny(p, " \n\r\t\x00") || strings.Contains(p, "..") {
			t.Fatalf("ValidPath accepted %q", p)
		}
		// Nor one that carbon cannot store.
		name, _, _ := strings.Cut(p, ";")
		if len(name) > MaxNameLen {
			t.Fatalf("ValidPath accepted a name of %d bytes", len(name))
		}
		for _, seg := range strings.Split(name, ".") {
			if len(seg) > MaxSegmentLen {
				t.Fatalf("ValidPath accepted a segment of %d bytes", len(seg))
			}
		}
	})
}
