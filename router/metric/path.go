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
func ValidPath(p string) bool {
	if len(p) == 0 || len(p) > MaxPathLen || p[0] == '.' || p[len(p)-1] == '.' {
		return false
	}
	ascii := true
	prevDot := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c <= ' ' || c == 0x7f:
			return false
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
	return ascii || utf8.ValidString(p)
}
