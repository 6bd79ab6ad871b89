// Package carbon holds the wire code shared by shovel's Carbon outputs: the
// pickle and plaintext encoders, which are pure functions over a caller's
// buffer, a reconnecting TCP (or TLS) connection, and the Cluster that
// spreads samples over several of them, with the consistent hashes of
// carbon-relay and carbon-c-relay. Keeping the encoders free of
// sockets lets them be tested and fuzzed on their own, as go-carbon does
// with receiver/parse.
package carbon

import (
	"encoding/binary"
	"math"
	"unicode/utf8"

	"github.com/shovel-metrics/shovel/router/metric"
)

// MaxPickleFrame is the largest frame payload Carbon's pickle receiver
// accepts: MAX_LENGTH of MetricPickleReceiver in carbon/protocols.py.
// Twisted drops the whole connection on a longer frame, losing everything
// written after it, so no frame may exceed it.
const MaxPickleFrame = 1 << 20

// DefaultPickleFrame is the frame payload limit used when the caller gives
// none. It stays a little under MaxPickleFrame so that a receiver that
// counts the length prefix in its limit, or rounds differently, still
// accepts every frame.
const DefaultPickleFrame = MaxPickleFrame - 4096

// Pickle opcodes, protocol 2 (see Python's Lib/pickle.py).
const (
	opProto      = 0x80
	opEmptyList  = ']'
	opMark       = '('
	opBinUnicode = 'X'
	opBinInt     = 'J'
	opBinFloat   = 'G'
	opTuple2     = 0x86
	opAppends    = 'e'
	opStop       = '.'
)

const (
	// frameHeader is the 4-byte length prefix; it is not part of the payload.
	frameHeader = 4
	// frameOverhead is what a frame's payload holds besides its samples:
	// PROTO 2, EMPTY_LIST, MARK before them and APPENDS, STOP after.
	frameOverhead = 6
)

// AppendPickle appends samples to dst as Carbon pickle frames and returns
// the extended buffer. Each frame is a 4-byte big-endian payload length
// followed by a protocol 2 pickle of a list of (path, (timestamp, value))
// tuples, the format carbon-relay and carbon-cache read on port 2004.
//
// A frame's payload is at most maxPayload bytes (DefaultPickleFrame when
// maxPayload <= 0, never more than MaxPickleFrame); samples that do not fit
// go on in further frames, in order. Timestamps that are integral and fit
// an int32 are written as BININT, the rest as BINFLOAT; values are always
// BINFLOAT, so NaN and infinities pass through unchanged.
//
// AppendPickle expects paths already checked with metric.ValidPath, but it
// never emits a frame Carbon would reject: it leaves out a sample whose path
// is not valid UTF-8 (Python fails to unpickle the frame, dropping all of
// its samples) or whose encoding alone exceeds maxPayload, and returns how
// many it left out. It allocates only when dst lacks room.
func AppendPickle(dst []byte, samples []metric.Sample, maxPayload int) ([]byte, int) {
	if maxPayload <= 0 || maxPayload > MaxPickleFrame {
		maxPayload = DefaultPickleFrame
	}
	skipped := 0
	start := -1 // offset of the open frame's length prefix, -1 when none is open
	for i := range samples {
		s := &samples[i]
		size := pickledSize(s)
		if size > maxPayload-frameOverhead || !utf8.ValidString(s.Path) {
			skipped++
			continue
		}
		if start >= 0 && len(dst)-start-frameHeader+size+2 > maxPayload {
			dst = closeFrame(dst, start)
			start = -1
		}
		if start < 0 {
			start = len(dst)
			dst = append(dst, 0, 0, 0, 0, opProto, 2, opEmptyList, opMark)
		}
		dst = appendSample(dst, s)
	}
	if start >= 0 {
		dst = closeFrame(dst, start)
	}
	return dst, skipped
}

// pickledSize is the number of bytes appendSample writes for s.
func pickledSize(s *metric.Sample) int {
	n := 1 + 4 + len(s.Path) + 9 + 2 // BINUNICODE, value, two TUPLE2
	if _, ok := int32Time(s.Time); ok {
		return n + 5
	}
	return n + 9
}

// int32Time reports whether ts can be written as BININT, which Carbon reads
// as an int and which is 4 bytes shorter than a float.
func int32Time(ts float64) (int32, bool) {
	if ts >= math.MinInt32 && ts <= math.MaxInt32 && ts == math.Trunc(ts) {
		return int32(ts), true
	}
	return 0, false
}

func appendSample(dst []byte, s *metric.Sample) []byte {
	dst = append(dst, opBinUnicode)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s.Path)))
	dst = append(dst, s.Path...)
	if ts, ok := int32Time(s.Time); ok {
		dst = append(dst, opBinInt)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(ts))
	} else {
		dst = append(dst, opBinFloat)
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(s.Time))
	}
	dst = append(dst, opBinFloat)
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(s.Value))
	return append(dst, opTuple2, opTuple2)
}

// closeFrame ends the frame whose length prefix is at dst[start:] and fills
// in that prefix.
func closeFrame(dst []byte, start int) []byte {
	dst = append(dst, opAppends, opStop)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-frameHeader))
	return dst
}
