package jsonscan

// Cursor reads one document in a single pass, member by member, for a
// decoder on the hot path that would otherwise walk the same bytes two or
// three times with ObjectEach (once to validate, once per level it
// descends). It descends into objects in place (EnterObject) and skips,
// validating, whatever it does not descend into (Value).
//
// A Cursor validates what it passes over, but a document is only known to
// be valid once End returns nil: a decoder must treat what it read as
// provisional until then (take it back on any error). Errors are *Error
// values as elsewhere in this package; a caller that needs the precise
// error of a broken document can run ObjectEach or Validate on it, which
// report the first problem in document order as a Cursor does.
//
// Get one from Scanner.Cursor. The zero Cursor is at the end of an empty
// document.
type Cursor struct {
	data     []byte
	i        int
	depth    int  // objects entered and not yet left
	maxDepth int  //
	after    bool // a value (or a whole object) ended just before data[i]
}

// Cursor returns a cursor at the start of data.
func (s Scanner) Cursor(data []byte) Cursor {
	return Cursor{data: data, i: skipWS(data, 0), maxDepth: s.maxDepth()}
}

// Kind says what the value at the cursor is, by its first byte; Invalid
// at the end of input or at a byte no value starts with.
func (c *Cursor) Kind() Kind {
	if c.i >= len(c.data) {
		return Invalid
	}
	return kindOf(c.data[c.i : c.i+1])
}

// EnterObject moves into the object at the cursor; Next then walks its
// members.
func (c *Cursor) EnterObject() error {
	if c.i >= len(c.data) || c.data[c.i] != '{' {
		return syntaxErrAt(c.data, c.i, "want an object")
	}
	if c.depth+1 > c.maxDepth {
		return tooDeep(c.i, c.maxDepth)
	}
	c.depth++
	c.i = skipWS(c.data, c.i+1)
	c.after = false
	return nil
}

// Next moves to the next member of the object the cursor is in and
// returns its key (raw: between the quotes, escapes not undone, which
// escaped reports), leaving the cursor at the member's value. The caller
// must then consume the value, with Value or EnterObject, before calling
// Next again. At the object's closing brace Next returns ok false and
// leaves the object.
func (c *Cursor) Next() (key []byte, escaped, ok bool, err error) {
	data, i := c.data, c.i
	if i >= len(data) {
		return nil, false, false, errEnd(i)
	}
	if data[i] == '}' {
		c.i, c.after = skipWS(data, i+1), true
		c.depth--
		return nil, false, false, nil
	}
	if c.after {
		if data[i] != ',' {
			return nil, false, false, syntaxErr(i, "invalid character "+quoteByte(data[i])+" after object member")
		}
		if i = skipWS(data, i+1); i >= len(data) {
			return nil, false, false, errEnd(i)
		}
	}
	if data[i] != '"' {
		return nil, false, false, syntaxErr(i, "invalid character "+quoteByte(data[i])+" looking for object key")
	}
	end, escaped, err := scanString(data, i)
	if err != nil {
		return nil, false, false, err
	}
	key = data[i+1 : end-1 : end-1]
	if i = skipWS(data, end); i >= len(data) {
		return nil, false, false, errEnd(i)
	}
	if data[i] != ':' {
		return nil, false, false, syntaxErr(i, "invalid character "+quoteByte(data[i])+" after object key")
	}
	c.i, c.after = skipWS(data, i+1), false
	return key, escaped, true, nil
}

// Value scans the value at the cursor, validating it whole, and returns
// its raw text (capacity capped, as ObjectEach's values) and kind.
func (c *Cursor) Value() ([]byte, Kind, error) {
	start := c.i
	end, kind, err := scanValue(c.data, start, c.depth, c.maxDepth)
	if err != nil {
		return nil, Invalid, err
	}
	c.i, c.after = skipWS(c.data, end), true
	return c.data[start:end:end], kind, nil
}

// End checks that the cursor has left every object it entered and that
// nothing but white space follows the document.
func (c *Cursor) End() error {
	if c.depth != 0 {
		return errEnd(len(c.data))
	}
	if c.i < len(c.data) {
		return syntaxErr(c.i, "invalid character "+quoteByte(c.data[c.i])+" after top-level value")
	}
	return nil
}

// Float reads the number at the cursor, as Value and ParseNumber would
// together, in one pass for the short numbers metrics are made of. It
// fails as Value does on a broken token, and with an ErrKind *Error when
// the value is not a number (the cursor then stays where it was).
func (c *Cursor) Float() (float64, error) {
	if f, end, ok := parseShortAt(c.data, c.i); ok {
		c.i, c.after = skipWS(c.data, end), true
		return f, nil
	}
	start := c.i
	if kind := c.Kind(); kind != Number {
		return 0, kindErr(start, Number, kind)
	}
	raw, _, err := c.Value()
	if err != nil {
		return 0, err
	}
	return ParseNumber(raw)
}

// parseShortAt is parseShort on the token that starts at data[i], wherever
// it ends, in the same single pass; ok is false for anything parseShort
// would not take and for a token that goes on (an exponent, more digits
// than fit), which the general path then reads.
func parseShortAt(data []byte, i int) (f float64, end int, ok bool) {
	j, neg := i, false
	if j < len(data) && data[j] == '-' {
		j, neg = j+1, true
	}
	if j >= len(data) || !isDigit(data[j]) {
		return 0, 0, false
	}
	var m uint64
	digits, frac := 0, 0
	if data[j] == '0' {
		j++
	} else {
		for ; j < len(data) && isDigit(data[j]); j++ {
			m = m*10 + uint64(data[j]-'0')
			digits++
		}
	}
	if j < len(data) && data[j] == '.' {
		for j++; j < len(data) && isDigit(data[j]); j++ {
			m = m*10 + uint64(data[j]-'0')
			digits++
			frac++
		}
		if frac == 0 {
			return 0, 0, false
		}
	}
	if j < len(data) {
		switch data[j] {
		case 'e', 'E', '.', '+', '-':
			return 0, 0, false // an exponent, or a token broken here: the general path says which
		}
	}
	// As in parseShort: digits caps frac, and keeps m (which may have
	// wrapped if it did not hold) below 10^15 < 2^53.
	if digits > 15 {
		return 0, 0, false
	}
	f = float64(m) / pow10[frac]
	if neg {
		f = -f
	}
	return f, j, true
}
