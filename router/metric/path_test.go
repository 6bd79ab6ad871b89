package metric

import (
	"strings"
	"testing"
)

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
		{"max length", strings.Repeat("a", MaxPathLen), true},
		{"too long", strings.Repeat("a", MaxPathLen+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidPath(tt.path); got != tt.want {
				t.Fatalf("ValidPath(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
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
	})
}
