package jsonscan

import "unicode/utf8"

// This file holds the grammar: functions that walk one token or one value of
// RFC 8259 starting at data[i] and return the index just past it. None of
// them allocates except to build an error, and none recurses, so the depth
// of a document costs heap only beyond 64 levels and never stack.

// isWS reports JSON white space: RFC 8259 allows exactly these four bytes.
func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(data []byte, i int) int {
	// Producers mostly send compact JSON: answer that case in one compare.
	if i < len(data) && data[i] > ' ' {
		return i
	}
	for i < len(data) && isWS(data[i]) {
		i++
	}
	return i
}

// plain marks the ASCII bytes that stand for themselves inside a string, so
// that the common case costs one table load per byte.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanString scans the string token whose opening quote is data[i]. It
// reports whether the string holds escapes, so that callers can use the raw
// bytes when it does not.
func scanString(data []byte, i int) (end int, escaped bool, err error) {
	i++
	for i < len(data) {
		c := data[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			switch c {
			case '"':
				return i + 1, escaped, nil
			case '\\':
				escaped = true
				if i+1 >= len(data) {
					return i, escaped, errEnd(i + 1)
				}
				switch data[i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					i += 2
				case 'u':
					for k := i + 2; k < i+6; k++ {
						if k >= len(data) {
							return k, escaped, errEnd(k)
						}
						if !isHex(data[k]) {
							return k, escaped, syntaxErr(k, "invalid \\u escape")
						}
					}
					i += 6
				default:
					return i + 1, escaped, syntaxErr(i+1, "invalid escape "+quoteByte(data[i+1]))
				}
			default:
				return i, escaped, syntaxErr(i, "control character "+quoteByte(c)+" in string")
			}
			continue
		}
		// RFC 8259 §8.1: JSON text is UTF-8. DecodeRune also refuses
		// overlong forms and UTF-8-encoded surrogates.
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			return i, escaped, syntaxErr(i, "invalid UTF-8 in string")
		}
		i += size
	}
	return i, escaped, errEnd(i)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanNumber scans the number token starting at data[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// What follows the token is the caller's business: "01" scans as "0" and
// then fails where the caller expects a delimiter.
func scanNumber(data []byte, i int) (int, error) {
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return i, errEnd(i)
	case data[i] == '0':
		i++
	case isDigit(data[i]):
		for i++; i < len(data) && isDigit(data[i]); i++ {
		}
	default:
		return i, syntaxErr(i, "invalid character "+quoteByte(data[i])+" in number")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			return i, syntaxErrAt(data, i, "expected digit after decimal point")
		}
		for i++; i < len(data) && isDigit(data[i]); i++ {
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return i, syntaxErrAt(data, i, "expected digit in exponent")
		}
		for i++; i < len(data) && isDigit(data[i]); i++ {
		}
	}
	return i, nil
}

func scanLiteral(data []byte, i int, lit string) (int, error) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(data) {
			return i + k, errEnd(i + k)
		}
		if data[i+k] != lit[k] {
			return i + k, syntaxErr(i+k, "invalid character "+quoteByte(data[i+k])+" in literal "+lit)
		}
	}
	return i + len(lit), nil
}

// scanScalar scans the string, number or literal starting at data[i].
func scanScalar(data []byte, i int) (int, Kind, error) {
	if i >= len(data) {
		return i, Invalid, errEnd(i)
	}
	switch c := data[i]; {
	case c == '"':
		end, _, err := scanString(data, i)
		return end, String, err
	case c == '-' || isDigit(c):
		end, err := scanNumber(data, i)
		return end, Number, err
	case c == 't':
		end, err := scanLiteral(data, i, "true")
		return end, Bool, err
	case c == 'f':
		end, err := scanLiteral(data, i, "false")
		return end, Bool, err
	case c == 'n':
		end, err := scanLiteral(data, i, "null")
		return end, Null, err
	default:
		return i, Invalid, syntaxErr(i, "invalid character "+quoteByte(c)+" looking for beginning of value")
	}
}

// scanValue scans the value starting at data[i] (white space already
// skipped). depth is the nesting depth of the container that holds the
// value, 0 at the top level.
func scanValue(data []byte, i, depth, maxDepth int) (int, Kind, error) {
	if i < len(data) && (data[i] == '{' || data[i] == '[') {
		return scanContainer(data, i, depth, maxDepth)
	}
	return scanScalar(data, i)
}

// States of scanContainer's loop.
const (
	stOpen    = iota // data[i] is '{' or '[' about to be entered
	stElement        // an object member or array element starts at data[i]
	stAfter          // a value ended just before data[i]
)

// scanContainer validates the object or array starting at data[i] with a
// loop and a bit stack instead of recursion, so that a hostile document
// 10 000 levels deep costs a bounded amount of work and no stack: the depth
// check fails at level maxDepth+1, long before the end of the input.
func scanContainer(data []byte, i, depth, maxDepth int) (int, Kind, error) {
	kind := Array
	if data[i] == '{' {
		kind = Object
	}
	var open bitstack // bit n-1 set: level n is an object
	n := 0            // levels open within this call
	state := stOpen
	for {
		switch state {
		case stOpen:
			n++
			if depth+n > maxDepth {
				return i, kind, tooDeep(i, maxDepth)
			}
			obj := data[i] == '{'
			open.set(n, obj)
			i = skipWS(data, i+1)
			if i >= len(data) {
				return i, kind, errEnd(i)
			}
			if obj && data[i] == '}' || !obj && data[i] == ']' {
				i++
				if n--; n == 0 {
					return i, kind, nil
				}
				state = stAfter
				continue
			}
			state = stElement
		case stElement:
			if open.get(n) {
				if i >= len(data) {
					return i, kind, errEnd(i)
				}
				if data[i] != '"' {
					return i, kind, syntaxErr(i, "invalid character "+quoteByte(data[i])+" looking for object key")
				}
				end, _, err := scanString(data, i)
				if err != nil {
					return end, kind, err
				}
				i = skipWS(data, end)
				if i >= len(data) {
					return i, kind, errEnd(i)
				}
				if data[i] != ':' {
					return i, kind, syntaxErr(i, "invalid character "+quoteByte(data[i])+" after object key")
				}
				i = skipWS(data, i+1)
			}
			if i < len(data) && (data[i] == '{' || data[i] == '[') {
				state = stOpen
				continue
			}
			end, _, err := scanScalar(data, i)
			if err != nil {
				return end, kind, err
			}
			i = end
			state = stAfter
		case stAfter:
			i = skipWS(data, i)
			if i >= len(data) {
				return i, kind, errEnd(i)
			}
			obj := open.get(n)
			switch c := data[i]; {
			case c == ',':
				i = skipWS(data, i+1)
				state = stElement
			case obj && c == '}' || !obj && c == ']':
				i++
				if n--; n == 0 {
					return i, kind, nil
				}
			case obj:
				return i, kind, syntaxErr(i, "invalid character "+quoteByte(c)+" after object member")
			default:
				return i, kind, syntaxErr(i, "invalid character "+quoteByte(c)+" after array element")
			}
		}
	}
}

// bitstack records, for each open level, whether it is an object. The first
// 64 levels live in a word on the caller's stack; only deeper documents
// (possible only with MaxDepth above 64) spill to the heap.
type bitstack struct {
	lo uint64
	hi []uint64
}

// set records level n (counted from 1).
func (b *bitstack) set(n int, obj bool) {
	n--
	w, bit := &b.lo, uint(n)
	if n >= 64 {
		k := n/64 - 1
		for len(b.hi) <= k {
			b.hi = append(b.hi, 0)
		}
		w, bit = &b.hi[k], uint(n%64)
	}
	if obj {
		*w |= 1 << bit
	} else {
		*w &^= 1 << bit
	}
}

func (b *bitstack) get(n int) bool {
	n--
	if n < 64 {
		return b.lo&(1<<uint(n)) != 0
	}
	return b.hi[n/64-1]&(1<<uint(n%64)) != 0
}
