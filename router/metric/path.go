package metric

import (
	"strings"
	"unicode/utf8"
)

// MaxPathLen is the longest metric path shovel passes on, Graphite tags
// included.
const MaxPathLen = 4096

// Carbon stores a plain metric name a.b.c in STORAGE_DIR/a/b/c.wsp (a
// tagged one under a hash of the whole name, whatever its length), and the
// file systems it runs on cap a file name at 255 bytes (NAME_MAX) and a
// whole path at 4096 (PATH_MAX). A name past these limits is taken by
// carbon-cache, which then fails to create its file ("File name too
// long") and loses every sample of it; shovel rejects it instead, as
// path_too_long, so that it is counted and dead-lettered.
const (
	// MaxSegmentLen is the longest segment of a name: 255 less ".wsp".
	// Every segment is held to it, not only the last, since a leaf today
	// (a.b) is a directory tomorrow (a.b.c).
	MaxSegmentLen = 255 - len(".wsp")
	// MaxNameLen is the longest name, tags left out. It leaves 2 KiB of
	// PATH_MAX for carbon's storage directory (Debian's is 26 bytes).
	MaxNameLen = 2048
)

// NameFits reports whether a plain metric name (no tags) is within
// MaxNameLen and every segment within MaxSegmentLen: whether carbon can
// create its file.
func NameFits(name string) bool {
	if len(name) > MaxNameLen {
		return false
	}
	for len(name) > MaxSegmentLen {
		i := strings.IndexByte(name, '.')
		if i < 0 || i > MaxSegmentLen {
			return false
		}
		name = name[i+1:]
	}
	return true
}

// PathReason is why ValidPath refuses p: ReasonPathTooLong when p or its
// name is too long for carbon's files, else ReasonBadPath. Call it only
// for a path ValidPath refused.
func PathReason(p string) string {
	name, _, _ := strings.Cut(p, ";")
	if len(p) > MaxPathLen || !NameFits(name) {
		return ReasonPathTooLong
	}
	return ReasonBadPath
}

// ValidPath reports whether p can be sent to Carbon as it is: not empty, at
// most MaxPathLen bytes, its name within NameFits's limits, valid UTF-8,
// no empty segment (leading, trailing or doubled dots), and no space or
// control character. A space or newline
// would split a plaintext line in two and let one producer write
// another's metrics, so the router checks every sample with it, whatever
// decoder produced the sample.
//
// A tagged name ("name;key=value;...", see tags.go) is valid when its name
// is a valid path not starting with '~' and every tag is key=value by
// carbon's rules and shovel's (no space, control character or invalid
// UTF-8, no "name" key, no value starting with '~'), in any order: carbon
// and shovel's hashing normalize the order.
func ValidPath(p string) bool {
	if len(p) == 0 || len(p) > MaxPathLen || p[0] == '.' {
		return false
	}
	ascii := true
	prevDot := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c <= ' ' || c == 0x7f:
			return false
		case c == ';':
			return i > 0 && !prevDot && p[0] != '~' && (ascii || utf8.ValidString(p[:i])) &&
				NameFits(p[:i]) && validTags(p[i+1:]) && !openMetricsLike(p)
		case c == '.':
			if prevDot {
				return false
			}
			prevDot = true
			continue
		case c >= utf8.RuneSelf:
			ascii = false
		}
		prevDot = false
	}
	// A trailing dot is an empty segment; carbon would read a name ending
	// in `"}` after a '{' as OpenMetrics.
	return !prevDot && (ascii || utf8.ValidString(p)) && NameFits(p) && !openMetricsLike(p)
}
