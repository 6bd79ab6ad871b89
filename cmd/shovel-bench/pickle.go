package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Pickle opcodes of the protocol 2 subset shovel's carbon-pickle output
// emits (outputs/carbon/pickle.go); see Python's Lib/pickle.py.
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

var errShortPickle = errors.New("pickle: truncated")

// decodePickleFrame decodes one Carbon pickle payload (without its length
// prefix) and calls fn for each (path, (ts, value)) in order, without
// allocating. It accepts exactly the shape shovel writes —
//
//	PROTO 2, EMPTY_LIST, MARK, { BINUNICODE path, BININT|BINFLOAT ts,
//	BININT|BINFLOAT value, TUPLE2, TUPLE2 }*, APPENDS, STOP
//
// — and rejects anything else, so a change in the encoder shows up as an
// error here rather than as a silent miscount. gopickle, which the test
// listener uses, decodes the same frames a few times slower (see
// BenchmarkDecodePickle); pickle_test.go cross-checks the two.
func decodePickleFrame(p []byte, fn func(path []byte, ts, value float64)) (int, error) {
	if len(p) < 6 || p[0] != opProto || p[1] != 2 || p[2] != opEmptyList || p[3] != opMark {
		return 0, fmt.Errorf("pickle: frame does not start with PROTO 2, EMPTY_LIST, MARK")
	}
	i, n := 4, 0
	for {
		if i >= len(p) {
			return n, errShortPickle
		}
		switch p[i] {
		case opBinUnicode:
		case opAppends:
			if i+2 != len(p) || p[i+1] != opStop {
				return n, fmt.Errorf("pickle: APPENDS not followed by STOP at the end (offset %d)", i)
			}
			return n, nil
		default:
			return n, fmt.Errorf("pickle: unexpected opcode 0x%02x at offset %d", p[i], i)
		}
		if i+5 > len(p) {
			return n, errShortPickle
		}
		l := int(binary.LittleEndian.Uint32(p[i+1:]))
		i += 5
		if l > len(p)-i {
			return n, errShortPickle
		}
		path := p[i : i+l]
		i += l
		var ts, val float64
		var err error
		if ts, i, err = pickleNumber(p, i); err != nil {
			return n, err
		}
		if val, i, err = pickleNumber(p, i); err != nil {
			return n, err
		}
		if i+2 > len(p) || p[i] != opTuple2 || p[i+1] != opTuple2 {
			return n, fmt.Errorf("pickle: expected TUPLE2 TUPLE2 at offset %d", i)
		}
		i += 2
		fn(path, ts, val)
		n++
	}
}

func pickleNumber(p []byte, i int) (float64, int, error) {
	if i >= len(p) {
		return 0, i, errShortPickle
	}
	switch p[i] {
	case opBinInt:
		if i+5 > len(p) {
			return 0, i, errShortPickle
		}
		return float64(int32(binary.LittleEndian.Uint32(p[i+1:]))), i + 5, nil
	case opBinFloat:
		if i+9 > len(p) {
			return 0, i, errShortPickle
		}
		return math.Float64frombits(binary.BigEndian.Uint64(p[i+1:])), i + 9, nil
	}
	return 0, i, fmt.Errorf("pickle: expected BININT or BINFLOAT at offset %d, got 0x%02x", i, p[i])
}
