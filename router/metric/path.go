package metric

import "unicode/utf8"

// MaxPathLen is the longest metric path shovel passes on. Whisper file names
// are built from the path, and most file systems cap a name at 255 bytes per
// segment and 4096 per path.
const MaxPathLen = 4096

// ValidPath reports whether p can be sent to Carbon as it is: not empty, at
// most MaxPathLen bytes, valid UTF-8, no empty segment (leading, trailing or
// doubled dots), and no space or control character. A space or newline
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
				validTags(p[i+1:]) && !openMetricsLike(p)
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
	return !prevDot && (ascii || utf8.ValidString(p)) && !openMetricsLike(p)
}
