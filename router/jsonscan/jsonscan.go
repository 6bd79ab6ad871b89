// Package jsonscan is a small, strict JSON scanner for shovel's hot path.
//
// The router reads the top-level "type" of every message and decoders walk
// objects at several hundred thousand messages a second, so this package
// works on the message bytes in place: it hands out sub-slices of the input
// instead of building maps, and allocates only to report an error, to
// unescape a key that holds escapes, or when the caller asks for a string.
//
// It is strict about RFC 8259: exactly one value with optional white space
// around it, no trailing commas, no comments, numbers as the grammar spells
// them, strings of valid UTF-8 with no raw control characters. Every call
// validates the whole input it is given (including the values it skips),
// so a truncated or corrupt message is always an error, never a partial
// answer. Two cases the grammar allows are handled as encoding/json does:
// duplicate keys are accepted, and an unpaired surrogate escape such as
// "\ud800" unescapes to U+FFFD.
//
// Duplicate keys: ObjectEach reports every member in document order,
// duplicates included; Lookup and TopLevelString return the first
// (encoding/json keeps the last). First-wins lets a decoder walking with
// ObjectEach keep the first value it meets instead of tracking overrides;
// what matters most is that the router and the decoders agree on which
// "type" and "ts" a message has, and they do as long as both use this
// package.
//
// Nesting is limited (DefaultMaxDepth, or Scanner.MaxDepth), and the
// scanner never recurses, so a hostile 10 000-level document is rejected
// after MaxDepth+1 bytes of brackets without touching the stack.
package jsonscan

import (
	"errors"
	"strconv"
)

// Kind is the type of a JSON value.
type Kind uint8

// The kinds of JSON values. Invalid is returned only with an error.
const (
	Invalid Kind = iota
	Object
	Array
	String
	Number
	Bool
	Null
)

var kindNames = [...]string{"invalid", "object", "array", "string", "number", "bool", "null"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// DefaultMaxDepth is the nesting limit of the zero Scanner and of the
// package-level functions: far more than any metrics message needs, small
// enough that a hostile document is refused after a few dozen bytes.
const DefaultMaxDepth = 64

// Errors, for errors.Is. Every error but ErrNotFound comes as an *Error
// that wraps one of them and says where the problem is.
var (
	ErrSyntax   = errors.New("invalid JSON")
	ErrTooDeep  = errors.New("nesting too deep")
	ErrKind     = errors.New("unexpected kind of value")
	ErrNotFound = errors.New("key not found")
)

// Error reports a problem at a byte offset of the data passed in.
type Error struct {
	Err    error  // ErrSyntax, ErrTooDeep or ErrKind
	Offset int    // byte offset into the data given to the call that failed
	Msg    string // what was found or expected
}

func (e *Error) Error() string {
	return "jsonscan: " + e.Err.Error() + " at offset " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func syntaxErr(off int, msg string) error { return &Error{Err: ErrSyntax, Offset: off, Msg: msg} }

func errEnd(off int) error { return syntaxErr(off, "unexpected end of input") }

// syntaxErrAt reports msg at data[i], or the end of input if i is past it.
func syntaxErrAt(data []byte, i int, msg string) error {
	if i >= len(data) {
		return errEnd(i)
	}
	return syntaxErr(i, msg)
}

func tooDeep(off, limit int) error {
	return &Error{Err: ErrTooDeep, Offset: off, Msg: "more than " + strconv.Itoa(limit) + " levels"}
}

func kindErr(off int, want, got Kind) error {
	return &Error{Err: ErrKind, Offset: off, Msg: "want " + want.String() + ", found " + got.String()}
}

// quoteByte names a byte for an error message without echoing more of the
// input than that byte.
func quoteByte(c byte) string {
	if c < 0x20 || c >= 0x7f {
		const hex = "0123456789abcdef"
		return "byte 0x" + string([]byte{hex[c>>4], hex[c&15]})
	}
	return strconv.QuoteRune(rune(c))
}

// Scanner holds the scanning options. The zero value is ready to use. A
// Scanner keeps no state between calls, so one value may be shared by any
// number of goroutines.
type Scanner struct {
	// MaxDepth is the deepest nesting of objects and arrays accepted; the
	// outermost container is level 1. Zero or less means DefaultMaxDepth.
	MaxDepth int
}

func (s Scanner) maxDepth() int {
	if s.MaxDepth <= 0 {
		return DefaultMaxDepth
	}
	return s.MaxDepth
}

// Validate returns nil if data is exactly one well-formed JSON value with
// optional white space around it, or an *Error saying what is wrong.
func (s Scanner) Validate(data []byte) error {
	_, err := s.whole(data)
	return err
}

// Valid reports whether Validate(data) returns nil.
func (s Scanner) Valid(data []byte) bool { return s.Validate(data) == nil }

// whole scans data as one complete value and returns its kind.
func (s Scanner) whole(data []byte) (Kind, error) {
	i := skipWS(data, 0)
	end, kind, err := scanValue(data, i, 0, s.maxDepth())
	if err != nil {
		return Invalid, err
	}
	if end = skipWS(data, end); end < len(data) {
		return Invalid, syntaxErr(end, "invalid character "+quoteByte(data[end])+" after top-level value")
	}
	return kind, nil
}

// ObjectEach calls fn for each member of the object that data holds, in
// document order and duplicates included. key is unescaped; it aliases
// data when the key holds no escapes and a scratch buffer otherwise, so it
// is valid only until fn returns. value is the member's raw JSON text
// (strings with their quotes, containers whole, validated) and aliases
// data, with its capacity capped so that appending to it cannot overwrite
// the rest of the document.
//
// ObjectEach returns an *Error wrapping ErrKind if data holds a valid value
// that is not an object, and the error of fn, unchanged, if fn returns one;
// it then stops. Because fn runs as the scan goes, it may see leading
// members of a document that later proves invalid: a caller that must not
// act on a bad document collects what it needs and acts after ObjectEach
// returns nil.
func (s Scanner) ObjectEach(data []byte, fn func(key, value []byte, kind Kind) error) error {
	it, err := s.members(data)
	if err != nil {
		return err
	}
	var scratch []byte // allocated only for a key with escapes
	for {
		ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		key := it.key()
		if it.escaped {
			scratch = appendUnescaped(scratch[:0], key)
			key = scratch
		}
		if err := fn(key, it.value(), it.kind); err != nil {
			return err
		}
	}
}

// ArrayEach calls fn for each element of the array that data holds, in
// order. value is the element's raw JSON text, as in ObjectEach, and the
// same rules apply to errors.
func (s Scanner) ArrayEach(data []byte, fn func(value []byte, kind Kind) error) error {
	maxDepth := s.maxDepth()
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '[' {
		return s.notA(Array, data, i)
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == ']' {
		return rest(data, i+1)
	}
	for {
		start := i
		end, kind, err := scanValue(data, i, 1, maxDepth)
		if err != nil {
			return err
		}
		if err := fn(data[start:end:end], kind); err != nil {
			return err
		}
		if i = skipWS(data, end); i >= len(data) {
			return errEnd(i)
		}
		switch data[i] {
		case ',':
			i = skipWS(data, i+1)
		case ']':
			return rest(data, i+1)
		default:
			return syntaxErr(i, "invalid character "+quoteByte(data[i])+" after array element")
		}
	}
}

// Lookup returns the raw value and kind of the first top-level member of
// the object data whose unescaped key equals key. It validates the whole
// document, so a document that is broken after the member is still an
// error. A valid object without the key gives ErrNotFound itself.
func (s Scanner) Lookup(data []byte, key string) (value []byte, kind Kind, err error) {
	start, end, kind, err := s.lookup(data, key)
	if err != nil {
		return nil, Invalid, err
	}
	return data[start:end:end], kind, nil
}

// lookup is Lookup, returning where the value is.
func (s Scanner) lookup(data []byte, key string) (start, end int, kind Kind, err error) {
	it, err := s.members(data)
	if err != nil {
		return 0, 0, Invalid, err
	}
	var buf [64]byte // stays on the stack: escaped keys are compared here
	found := false
	for {
		ok, err := it.next()
		if err != nil {
			return 0, 0, Invalid, err
		}
		if !ok {
			break
		}
		if found {
			continue
		}
		k := it.key()
		if it.escaped {
			k = appendUnescaped(buf[:0], k)
		}
		if string(k) == key {
			start, end, kind, found = it.vs, it.ve, it.kind, true
		}
	}
	if !found {
		return 0, 0, Invalid, ErrNotFound
	}
	return start, end, kind, nil
}

// TopLevelString returns the unescaped string value of the first top-level
// member key of the object data: the router's question "what type is this
// message?". It fails with ErrNotFound if there is no such member, with an
// *Error wrapping ErrKind if its value is not a string, and with the syntax
// error if data is not valid JSON. The returned string is a copy (one
// allocation); a caller that only compares can use Lookup and
// AppendString with its own buffer to allocate nothing.
func (s Scanner) TopLevelString(data []byte, key string) (string, error) {
	start, end, kind, err := s.lookup(data, key)
	if err != nil {
		return "", err
	}
	if kind != String {
		return "", kindErr(start, String, kind)
	}
	return unquoteValid(data[start:end]), nil
}

// Package-level forms use the zero Scanner (DefaultMaxDepth).

// Valid reports whether data is one well-formed JSON value; see Scanner.Validate.
func Valid(data []byte) bool { return Scanner{}.Valid(data) }

// ObjectEach is Scanner{}.ObjectEach.
func ObjectEach(data []byte, fn func(key, value []byte, kind Kind) error) error {
	return Scanner{}.ObjectEach(data, fn)
}

// ArrayEach is Scanner{}.ArrayEach.
func ArrayEach(data []byte, fn func(value []byte, kind Kind) error) error {
	return Scanner{}.ArrayEach(data, fn)
}

// Lookup is Scanner{}.Lookup.
func Lookup(data []byte, key string) ([]byte, Kind, error) { return Scanner{}.Lookup(data, key) }

// TopLevelString is Scanner{}.TopLevelString.
func TopLevelString(data []byte, key string) (string, error) {
	return Scanner{}.TopLevelString(data, key)
}

// ParseNumber parses a JSON number token, such as a value of kind Number.
// It refuses anything the JSON grammar does not allow, even where
// strconv.ParseFloat would accept it ("+1", ".5", "0x10", "Inf", "1_0").
// A valid number too large for a float64 (1e999) gives ±Inf and a nil
// error: the JSON is fine, and whether infinity is acceptable is the
// caller's decision. Numbers too small (1e-999) round to zero.
func ParseNumber(value []byte) (float64, error) {
	if f, ok := parseShort(value); ok {
		return f, nil
	}
	end, err := scanNumber(value, 0)
	if err != nil {
		return 0, err
	}
	if end != len(value) {
		return 0, syntaxErr(end, "invalid character "+quoteByte(value[end])+" after number")
	}
	// The conversion does not allocate: the compiler uses a stack buffer
	// for short byte slices converted for a call that does not keep them.
	f, err := strconv.ParseFloat(string(value), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, syntaxErr(0, err.Error()) // unreachable after scanNumber
	}
	return f, nil
}

// pow10 holds the powers of ten that a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// parseShort converts, in a single pass, the tokens metrics are made of: an
// optional minus, then at most 15 significant digits with an optional
// fraction and no exponent. Such a mantissa and its power of ten are both
// exact float64s, so their quotient is the correctly rounded value, the
// same bits strconv.ParseFloat returns (Clinger's fast path, which strconv
// also takes, but only after a general scan). Anything else, including
// every invalid token, is left to the general path.
func parseShort(b []byte) (float64, bool) {
	f, end, ok := parseShortAt(b, 0)
	return f, ok && end == len(b)
}

// AppendString appends the unescaped text of the JSON string token value
// (quotes included, as ObjectEach hands it out) to dst.
func AppendString(dst, value []byte) ([]byte, error) {
	if err := checkString(value); err != nil {
		return dst, err
	}
	return appendUnescaped(dst, value[1:len(value)-1]), nil
}

// Unquote returns the unescaped text of the JSON string token value.
func Unquote(value []byte) (string, error) {
	if err := checkString(value); err != nil {
		return "", err
	}
	return unquoteValid(value), nil
}

// checkString checks that value is exactly one string token.
func checkString(value []byte) error {
	if len(value) == 0 || value[0] != '"' {
		return kindErr(0, String, kindOf(value))
	}
	end, _, err := scanString(value, 0)
	if err != nil {
		return err
	}
	if end != len(value) {
		return syntaxErr(end, "invalid character "+quoteByte(value[end])+" after string")
	}
	return nil
}

// unquoteValid unquotes a string token already validated, allocating only
// the result.
func unquoteValid(v []byte) string {
	body := v[1 : len(v)-1]
	for _, c := range body {
		if c == '\\' {
			var buf [64]byte
			return string(appendUnescaped(buf[:0], body))
		}
	}
	return string(body)
}

// kindOf guesses the kind of a value from its first byte, for messages.
func kindOf(v []byte) Kind {
	i := skipWS(v, 0)
	if i >= len(v) {
		return Invalid
	}
	switch c := v[i]; {
	case c == '{':
		return Object
	case c == '[':
		return Array
	case c == '"':
		return String
	case c == '-' || isDigit(c):
		return Number
	case c == 't' || c == 'f':
		return Bool
	case c == 'n':
		return Null
	}
	return Invalid
}

// notA explains why data, whose first significant byte is data[i], is not
// a want: a syntax error if data is not JSON at all, else a kind error.
func (s Scanner) notA(want Kind, data []byte, i int) error {
	got, err := s.whole(data)
	if err != nil {
		return err
	}
	return kindErr(i, want, got)
}

// rest checks that only white space follows the top-level value.
func rest(data []byte, i int) error {
	if i = skipWS(data, i); i < len(data) {
		return syntaxErr(i, "invalid character "+quoteByte(data[i])+" after top-level value")
	}
	return nil
}

// memberIter walks the members of a top-level object, validating as it
// goes. next leaves the member's position in the iterator's fields rather
// than returning it, which keeps the loop free of large copies; positions
// rather than sub-slices, because storing a slice of it.data back into *it
// would make the compiler move every caller's data to the heap.
type memberIter struct {
	data     []byte
	i        int
	maxDepth int
	started  bool
	done     bool

	ks, ke  int  // the raw key is data[ks:ke], between the quotes
	escaped bool // the raw key holds escapes
	vs, ve  int  // the value is data[vs:ve]
	kind    Kind
}

func (it *memberIter) key() []byte   { return it.data[it.ks:it.ke] }
func (it *memberIter) value() []byte { return it.data[it.vs:it.ve:it.ve] }

func (s Scanner) members(data []byte) (memberIter, error) {
	maxDepth := s.maxDepth()
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return memberIter{}, s.notA(Object, data, i)
	}
	return memberIter{data: data, i: skipWS(data, i+1), maxDepth: maxDepth}, nil
}

// next moves to the next member, or returns false after the closing brace
// (and the check that nothing but white space follows it).
func (it *memberIter) next() (bool, error) {
	if it.done {
		return false, nil
	}
	data, i := it.data, it.i
	if !it.started {
		it.started = true
		if i < len(data) && data[i] == '}' {
			it.done = true
			return false, rest(data, i+1)
		}
	}
	if i >= len(data) {
		return false, errEnd(i)
	}
	if data[i] != '"' {
		return false, syntaxErr(i, "invalid character "+quoteByte(data[i])+" looking for object key")
	}
	end, escaped, err := scanString(data, i)
	if err != nil {
		return false, err
	}
	it.ks, it.ke, it.escaped = i+1, end-1, escaped
	if i = skipWS(data, end); i >= len(data) {
		return false, errEnd(i)
	}
	if data[i] != ':' {
		return false, syntaxErr(i, "invalid character "+quoteByte(data[i])+" after object key")
	}
	i = skipWS(data, i+1)
	it.vs = i
	if it.ve, it.kind, err = scanValue(data, i, 1, it.maxDepth); err != nil {
		return false, err
	}
	end = it.ve
	if i = skipWS(data, end); i >= len(data) {
		return false, errEnd(i)
	}
	switch data[i] {
	case ',':
		it.i = skipWS(data, i+1)
	case '}':
		it.done = true
		if err := rest(data, i+1); err != nil {
			return false, err
		}
	default:
		return false, syntaxErr(i, "invalid character "+quoteByte(data[i])+" after object member")
	}
	return true, nil
}
