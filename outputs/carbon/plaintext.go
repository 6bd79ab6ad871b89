package carbon

import (
	"math"
	"strconv"

	"github.com/shovel-metrics/shovel/router/metric"
)

// maxExactInt is the largest magnitude below which every integral float64
// is exactly an int64, so strconv.AppendInt prints what 'f' -1 would.
const maxExactInt = 1 << 53

// AppendPlaintext appends one "path value timestamp\n" line per sample to
// dst, the format Carbon reads on port 2003, and returns the extended
// buffer. Values and fractional timestamps are printed with strconv's 'f'
// format at the shortest precision that reads back exactly (12 → "12",
// 24.54 → "24.54"); integral timestamps as integer digits.
//
// AppendPlaintext expects paths already checked with metric.ValidPath, but
// because one space or newline in a path would let a producer write lines
// of its own, it leaves out a sample whose path is empty or holds a space,
// a control character or DEL, and returns how many it left out. It
// allocates only when dst lacks room.
func AppendPlaintext(dst []byte, samples []metric.Sample) ([]byte, int) {
	skipped := 0
	for i := range samples {
		s := &samples[i]
		if !lineSafe(s.Path) {
			skipped++
			continue
		}
		dst = append(dst, s.Path...)
		dst = append(dst, ' ')
		dst = appendNumber(dst, s.Value)
		dst = append(dst, ' ')
		dst = appendNumber(dst, s.Time)
		dst = append(dst, '\n')
	}
	return dst, skipped
}

// appendNumber prints f as strconv.AppendFloat(dst, f, 'f', -1, 64) does,
// taking the much cheaper integer path for the integral values that most
// samples and nearly all timestamps are.
func appendNumber(dst []byte, f float64) []byte {
	if f > -maxExactInt && f < maxExactInt && f == math.Trunc(f) && !(f == 0 && math.Signbit(f)) {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

// lineSafe reports whether p can stand as the first field of a plaintext
// line without splitting it.
func lineSafe(p string) bool {
	if p == "" {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
