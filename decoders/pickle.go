package decoders

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/shovel-metrics/shovel/router/metric"
)

// Reasons of the carbon-pickle decoder.
const (
	// ReasonUnsafePickle rejects a pickle that names a global, calls or
	// builds an object, or asks for a persistent id or an extension: the
	// opcodes through which a pickle runs code. They are never executed.
	ReasonUnsafePickle = "unsafe_pickle"
	// ReasonInvalidPickle rejects a pickle that is truncated, malformed,
	// or uses an opcode the [(path, (ts, value)), ...] shape does not need.
	ReasonInvalidPickle = "invalid_pickle"
)

func init() {
	Register("carbon-pickle", `Carbon pickle in Kafka (go-carbon's "pickle"): [(path, (timestamp, value)), ...]`, newPickle)
}

// PickleConfig configures the carbon-pickle decoder.
type PickleConfig struct {
	// MaxMessageBytes is the largest message decoded; a larger one is
	// rejected as too_large before any parsing. Carbon's own limit is 1 MiB.
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
	// MaxDepth is the deepest nesting of lists, tuples and marks accepted;
	// the shape needs 3.
	MaxDepth int `mapstructure:"max_depth"`
	// Values says which values count as numbers.
	Values ValueConfig `mapstructure:"values"`
	// Sanitize configures the path sanitiser.
	Sanitize PathConfig `mapstructure:"sanitize"`
}

// maxPickleBytes bounds max_message_bytes: the machine indexes the
// message with int32 offsets (see pval), and Kafka's own limits are far
// below it.
const maxPickleBytes = 1 << 30

// DefaultPickleConfig returns the carbon-pickle decoder's defaults.
func DefaultPickleConfig() PickleConfig {
	return PickleConfig{MaxMessageBytes: 1 << 20, MaxDepth: 16, Values: DefaultValueConfig(), Sanitize: DefaultPathConfig()}
}

// Validate checks the config, naming the offending key.
func (c PickleConfig) Validate() error {
	if c.MaxMessageBytes <= 0 || c.MaxMessageBytes > maxPickleBytes {
		return fmt.Errorf("max_message_bytes must be between 1 and %d, got %d", maxPickleBytes, c.MaxMessageBytes)
	}
	if c.MaxDepth < 3 || c.MaxDepth > 10000 {
		return fmt.Errorf("max_depth must be between 3 and 10000, got %d", c.MaxDepth)
	}
	return c.Sanitize.Validate()
}

func newPickle(decode metric.DecodeConfig, _ metric.Env) (metric.Decoder, error) {
	cfg := DefaultPickleConfig()
	if decode != nil {
		if err := decode(&cfg); err != nil {
			return nil, fmt.Errorf("carbon-pickle: config: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("carbon-pickle: %w", err)
	}
	return &pickleDecoder{cfg: cfg, paths: NewPathSanitizer(cfg.Sanitize)}, nil
}

// pickleDecoder decodes what Carbon's pickle receiver takes, carried in a
// Kafka message: a pickled list of (path, (timestamp, value)) tuples, any
// protocol from 0 to 5.
//
// It is not a general unpickler. It runs its own small machine over a
// whitelist of opcodes, exactly those that can build lists, tuples,
// strings, numbers, booleans and None (with the memo and framing that
// picklers emit around them). Any other opcode rejects the message before
// anything is built from it, so a pickle that names a global (GLOBAL,
// STACK_GLOBAL, INST), calls one (REDUCE, OBJ, NEWOBJ, BUILD) or asks for
// outside objects (PERSID, EXT*) is refused, never executed. Values are
// references, so memo tricks cannot make the work grow faster than the
// input; no value is walked deeper than the shape, so cycles are harmless.
type pickleDecoder struct {
	cfg   PickleConfig
	paths *PathSanitizer
}

// PathsChecked is true: every path comes out of the sanitiser and its
// Check, which guarantee metric.ValidPath (the fuzz test asserts it).
func (d *pickleDecoder) PathsChecked() bool { return true }

// MaxMessageBytes is max_message_bytes (metric.MessageLimit).
func (d *pickleDecoder) MaxMessageBytes() int { return d.cfg.MaxMessageBytes }

var _ metric.Decoder = (*pickleDecoder)(nil)

type pkind uint8

const (
	pNone pkind = iota
	pBool
	pInt
	pFloat
	pString
	pTuple
	pList
	pMark // a MARK on the stack
)

// pval is one value of the machine: 24 bytes and no pointers, so that
// the stack, the memo and the tuples cost little and the garbage collector
// never scans them. Strings, tuples and lists are indexes into the
// machine (see pickleMachine.str, items and list): a string into the
// message or, once unescaped, into the machine's text; a tuple into its
// arena; a list into its lists, so that the memo and APPEND see the same
// list, as in Python.
type pval struct {
	kind  pkind
	b     bool  // pBool
	text  bool  // pString: off indexes pickleMachine.text, not the message
	depth int32 // nesting, for max_depth
	num   uint64
	off   int32 // pString: start; pTuple: start in the arena; pList: index in lists
	n     int32 // pString, pTuple: length
}

// intVal and floatVal are numbers as a pval holds them.
func intVal(n int64) pval     { return pval{kind: pInt, num: uint64(n)} }
func floatVal(f float64) pval { return pval{kind: pFloat, num: math.Float64bits(f)} }

type plist struct {
	items []pval
	depth int32
}

type pickleError struct{ reason, detail string }

func pickleFail(reason, format string, args ...any) *pickleError {
	return &pickleError{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// unsafeOps names the opcodes that reach outside the pickle.
var unsafeOps = map[byte]string{
	'c': "GLOBAL", 0x93: "STACK_GLOBAL", 'R': "REDUCE", 'b': "BUILD", 'i': "INST", 'o': "OBJ",
	0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 'P': "PERSID", 'Q': "BINPERSID",
}

func (d *pickleDecoder) Decode(msg *metric.Message, out *metric.Result) (err error) {
	if len(msg.Value) > d.cfg.MaxMessageBytes {
		return metric.Rejectf(metric.ReasonTooLarge, "%d bytes, limit %d", len(msg.Value), d.cfg.MaxMessageBytes)
	}
	nSamples, nRejected := len(out.Samples), len(out.Rejected)
	defer func() {
		// The machine checks every index it uses; this is the last line
		// of defence, so that no input can crash the router.
		if r := recover(); r != nil {
			out.Samples, out.Rejected = out.Samples[:nSamples], out.Rejected[:nRejected]
			err = metric.Rejectf(ReasonInvalidPickle, "decoder panic: %v", r)
		}
	}()
	mc := pickleMachinePool.Get().(*pickleMachine)
	defer mc.release()
	top, perr := d.unpickle(mc, msg.Value, out)
	if perr != nil {
		switch perr.reason {
		case ReasonTooDeep:
			return metric.Rejectf(ReasonTooDeep, "more than %d levels", d.cfg.MaxDepth)
		case metric.ReasonOverBudget:
			return out.Over()
		}
		return &metric.RejectError{Reason: perr.reason, Detail: perr.detail}
	}
	var items []pval
	switch top.kind {
	case pList:
		items = mc.list(&top).items
	case pTuple:
		items = mc.items(&top)
	default:
		return metric.Rejectf(metric.ReasonBadShape, "pickle holds a %s, want a list", top.kind)
	}
	for i := range items {
		// An element referenced many times through the memo is as many
		// samples: the budget stops that at the first one past it.
		if err := d.sample(out, mc, &items[i]); err != nil {
			out.Samples, out.Rejected = out.Samples[:nSamples], out.Rejected[:nRejected]
			return err
		}
	}
	return nil
}

// sample turns one (path, (ts, value)) element into a sample or a
// rejection; the error is the budget's, once passed.
func (d *pickleDecoder) sample(out *metric.Result, mc *pickleMachine, e *pval) error {
	var pair, tv []pval
	if e.kind == pTuple {
		pair = mc.items(e)
	}
	if len(pair) == 2 && pair[1].kind == pTuple {
		tv = mc.items(&pair[1])
	}
	if len(pair) != 2 || pair[0].kind != pString || len(tv) != 2 {
		var b PathBuilder
		if len(pair) > 0 && pair[0].kind == pString {
			var buf [256]byte
			b = d.paths.Builder(buf[:0]).Write(mc.str(&pair[0]))
		}
		return reject(out, b, metric.ReasonBadShape)
	}
	var buf [256]byte
	b := d.paths.Builder(buf[:0]).Write(mc.str(&pair[0]))
	var tags *metric.TagSet
	if b.HasTags() {
		b, tags = d.paths.Builder(buf[:0]).WriteName(mc.str(&pair[0]), out)
	}
	if reason := b.Check(); reason != "" {
		return reject(out, b, reason)
	}
	ts, reason := d.number(mc, &tv[0], ValueConfig{NumericStrings: d.cfg.Values.NumericStrings})
	if reason == "" && ts < 0 {
		reason = metric.ReasonBadTimestamp
	}
	if reason != "" {
		return reject(out, b, metric.ReasonBadTimestamp)
	}
	v, reason := d.number(mc, &tv[1], d.cfg.Values)
	if reason != "" {
		return reject(out, b, reason)
	}
	path := out.String(b.Bytes())
	if err := out.Add(metric.Sample{Path: path, Time: ts + 0, Value: v}); err != nil {
		return err
	}
	return recordRepairs(out, tags, path)
}

func (d *pickleDecoder) number(mc *pickleMachine, v *pval, policy ValueConfig) (float64, string) {
	switch v.kind {
	case pInt:
		return float64(int64(v.num)), ""
	case pFloat:
		return finiteValue(math.Float64frombits(v.num))
	case pBool:
		return policy.BoolValue(v.b)
	case pNone:
		return 0, ReasonNull
	case pString:
		if policy.NumericStrings {
			return NumberText(mc.str(v))
		}
	}
	return 0, metric.ReasonNotANumber
}

func (k pkind) String() string {
	return [...]string{"None", "bool", "int", "float", "str", "tuple", "list", "mark"}[k]
}

// overBudget stops the machine once its charges pass out's budget.
var overBudget = &pickleError{reason: metric.ReasonOverBudget}

// What the machine charges the output budget, besides the samples: every
// value it holds, pvalSize (24 bytes) each, whether on the stack (past
// stackFree values: Python's pickler appends in batches of 1 000), in the
// memo, in a tuple or in a list. A pickle of a million pushes, tuples or
// appends cannot hold them for free.
//
// A memo reference (GET) is also how a pickle multiplies itself: two bytes
// of input that stand for a whole value, as often as the pickle likes (a
// 1 MB pickle can name one 4 KB path 500 000 times). Each is charged the
// path it would become besides (refCost), so a multiplying pickle stops at
// the reference past its budget, before it builds the list that holds
// them. Real pickles are charged 2 to 11 times their size in all
// (docs/limits.md).
const (
	pvalSize  = int(unsafe.Sizeof(pval{}))
	plistSize = int(unsafe.Sizeof(plist{})) // a list itself, besides its items
	stackFree = 1024
)

// refCost is what a memo reference to v is charged: a value, and the path
// of the sample it would become.
func (m *pickleMachine) refCost(v *pval) int {
	switch v.kind {
	case pString:
		return pvalSize + int(v.n)
	case pTuple:
		if it := m.items(v); len(it) > 0 && it[0].kind == pString {
			return pvalSize + int(it[0].n)
		}
	}
	return pvalSize
}

// unpickle runs the whitelisted machine over data and returns the value STOP leaves.
// What it returns lives in mc until mc is released. It charges out for
// what it keeps, and stops once out's budget is passed.
func (d *pickleDecoder) unpickle(mc *pickleMachine, data []byte, out *metric.Result) (pval, *pickleError) {
	// The machine's memory is pooled: a message costs its samples'
	// strings, not the machine's stack, memo, tuples and lists.
	mc.data = data
	var (
		stack = mc.stack[:0]
		marks = mc.marks[:0] // stack lengths at each MARK
		i     int
		// stackHigh is the most values the stack has held, for its charge.
		stackHigh int
	)
	defer func() { mc.stack, mc.marks = stack, marks }()
	maxDepth := int32(d.cfg.MaxDepth)
	need := func(n int) ([]byte, *pickleError) {
		if n < 0 || len(data)-i < n {
			return nil, pickleFail(ReasonInvalidPickle, "truncated at offset %d", i)
		}
		b := data[i : i+n : i+n]
		i += n
		return b, nil
	}
	line := func() ([]byte, *pickleError) {
		for k := i; k < len(data); k++ {
			if data[k] == '\n' {
				b := data[i:k:k]
				i = k + 1
				return b, nil
			}
		}
		return nil, pickleFail(ReasonInvalidPickle, "unterminated line at offset %d", i)
	}
	pop := func() (pval, *pickleError) {
		if len(stack) == 0 || len(marks) > 0 && len(stack) <= marks[len(marks)-1] {
			return pval{}, pickleFail(ReasonInvalidPickle, "stack underflow at offset %d", i-1)
		}
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		return v, nil
	}
	popMark := func() ([]pval, *pickleError) {
		if len(marks) == 0 {
			return nil, pickleFail(ReasonInvalidPickle, "no mark at offset %d", i-1)
		}
		m := marks[len(marks)-1]
		marks = marks[:len(marks)-1]
		items := stack[m:len(stack):len(stack)]
		stack = stack[:m]
		return items, nil
	}
	push := func(v pval) *pickleError {
		if v.depth > maxDepth {
			return pickleFail(ReasonTooDeep, "")
		}
		stack = append(grow(stack, 1), v)
		if len(stack) > stackHigh {
			stackHigh = len(stack)
			if stackHigh > stackFree && out.Charge(pvalSize) != nil {
				return overBudget
			}
		}
		return nil
	}
	tuple := func(items []pval) (pval, *pickleError) {
		if out.Charge(len(items)*pvalSize) != nil {
			return pval{}, overBudget
		}
		// Tuples never change, so one arena holds them all, each a
		// range of it: the arena may move as it grows.
		t := pval{kind: pTuple, off: int32(len(mc.arena)), n: int32(len(items)), depth: 1}
		mc.arena = append(grow(mc.arena, len(items)), items...)
		for _, it := range items {
			t.depth = max(t.depth, it.depth+1)
		}
		return t, nil
	}
	newList := func(items []pval) (pval, *pickleError) {
		if out.Charge(plistSize+len(items)*pvalSize) != nil {
			return pval{}, overBudget
		}
		l := mc.newList()
		l.items = append(grow(l.items, len(items)), items...)
		for _, it := range items {
			l.depth = max(l.depth, it.depth+1)
		}
		return pval{kind: pList, off: int32(len(mc.lists) - 1), depth: l.depth}, nil
	}
	appendTo := func(items []pval) *pickleError {
		l, err := pop()
		if err != nil {
			return err
		}
		if l.kind != pList {
			return pickleFail(ReasonInvalidPickle, "append to a %s at offset %d", l.kind, i-1)
		}
		if out.Charge(len(items)*pvalSize) != nil {
			return overBudget
		}
		list := mc.list(&l)
		for _, it := range items {
			if it.depth+1 > maxDepth {
				return pickleFail(ReasonTooDeep, "")
			}
			list.depth = max(list.depth, it.depth+1)
		}
		list.items = append(grow(list.items, len(items)), items...)
		l.depth = list.depth
		return push(l)
	}
	memoPut := func(k uint64) *pickleError {
		if len(stack) == 0 {
			return pickleFail(ReasonInvalidPickle, "memo put on an empty stack at offset %d", i-1)
		}
		if added := mc.put(k, stack[len(stack)-1]); added > 0 && out.Charge(added) != nil {
			return overBudget
		}
		return nil
	}
	memoGet := func(k uint64) *pickleError {
		v, ok := mc.get(k)
		if !ok {
			return pickleFail(ReasonInvalidPickle, "memo key %d missing at offset %d", k, i-1)
		}
		if out.Charge(mc.refCost(&v)) != nil {
			return overBudget
		}
		return push(v)
	}
	str := func(s []byte) *pickleError {
		v := pval{kind: pString, n: int32(len(s))}
		if off, ok := offset(data, s); ok {
			v.off = off
		} else if len(s) > 0 { // unescaped: a copy, kept with the machine
			v.text, v.off = true, int32(len(mc.text))
			mc.text = append(grow(mc.text, len(s)), s...)
		}
		return push(v)
	}

	for i < len(data) {
		op := data[i]
		i++
		var err *pickleError
		switch op {
		case 0x80: // PROTO
			var b []byte
			if b, err = need(1); err == nil && b[0] > 5 {
				err = pickleFail(ReasonInvalidPickle, "protocol %d", b[0])
			}
		case 0x95: // FRAME: the data must hold it, as Python's reader checks
			var b []byte
			if b, err = need(8); err == nil && binary.LittleEndian.Uint64(b) > uint64(len(data)-i) {
				err = pickleFail(ReasonInvalidPickle, "frame longer than the data at offset %d", i-9)
			}
		case '.': // STOP
			if len(stack) != 1 || len(marks) != 0 {
				return pval{}, pickleFail(ReasonInvalidPickle, "STOP with %d values and %d marks on the stack", len(stack), len(marks))
			}
			if i != len(data) {
				return pval{}, pickleFail(ReasonInvalidPickle, "%d bytes after STOP", len(data)-i)
			}
			return stack[0], nil
		case '(': // MARK
			if len(marks) >= int(maxDepth) {
				return pval{}, pickleFail(ReasonTooDeep, "")
			}
			marks = append(marks, len(stack))
		case ']': // EMPTY_LIST
			var l pval
			if l, err = newList(nil); err == nil {
				err = push(l)
			}
		case 'l': // LIST
			var items []pval
			if items, err = popMark(); err == nil {
				var l pval
				if l, err = newList(items); err == nil {
					err = push(l)
				}
			}
		case 'a': // APPEND
			var v pval
			if v, err = pop(); err == nil {
				one := [1]pval{v}
				err = appendTo(one[:])
			}
		case 'e': // APPENDS
			var items []pval
			if items, err = popMark(); err == nil {
				// items lie just above the list on the stack: appendTo
				// pops the list and pushes it back, below them.
				err = appendTo(items)
			}
		case ')': // EMPTY_TUPLE
			err = push(pval{kind: pTuple, depth: 1})
		case 't': // TUPLE
			var items []pval
			if items, err = popMark(); err == nil {
				var t pval
				if t, err = tuple(items); err == nil {
					err = push(t)
				}
			}
		case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
			n := int(op - 0x84)
			if len(stack) < n || len(marks) > 0 && len(stack)-n < marks[len(marks)-1] {
				err = pickleFail(ReasonInvalidPickle, "stack underflow at offset %d", i-1)
				break
			}
			var t pval
			if t, err = tuple(stack[len(stack)-n:]); err == nil {
				stack = stack[:len(stack)-n]
				err = push(t)
			}
		case 'N':
			err = push(pval{kind: pNone})
		case 0x88, 0x89: // NEWTRUE, NEWFALSE
			err = push(pval{kind: pBool, b: op == 0x88})
		case 'I': // INT, with protocol 0's booleans
			var b []byte
			if b, err = line(); err != nil {
				break
			}
			switch string(b) {
			case "01":
				err = push(pval{kind: pBool, b: true})
			case "00":
				err = push(pval{kind: pBool, b: false})
			default:
				n, perr := strconv.ParseInt(string(b), 10, 64)
				if perr != nil {
					f, ferr := strconv.ParseFloat(string(b), 64)
					if ferr != nil || !isInteger(b) {
						err = pickleFail(ReasonInvalidPickle, "bad INT at offset %d", i)
						break
					}
					err = push(floatVal(f))
					break
				}
				err = push(intVal(n))
			}
		case 'J': // BININT
			var b []byte
			if b, err = need(4); err == nil {
				err = push(intVal(int64(int32(binary.LittleEndian.Uint32(b)))))
			}
		case 'K': // BININT1
			var b []byte
			if b, err = need(1); err == nil {
				err = push(intVal(int64(b[0])))
			}
		case 'M': // BININT2
			var b []byte
			if b, err = need(2); err == nil {
				err = push(intVal(int64(binary.LittleEndian.Uint16(b))))
			}
		case 'L': // LONG: decimal, with Python 2's L suffix
			var b []byte
			if b, err = line(); err != nil {
				break
			}
			if n := len(b); n > 0 && b[n-1] == 'L' {
				b = b[:n-1]
			}
			if !isInteger(b) {
				err = pickleFail(ReasonInvalidPickle, "bad LONG at offset %d", i)
				break
			}
			f, _ := strconv.ParseFloat(string(b), 64) // may be ±Inf: a number, not finite
			err = push(floatVal(f))
		case 0x8a, 0x8b: // LONG1, LONG4: little-endian two's complement
			var b []byte
			size := 1
			if op == 0x8b {
				size = 4
			}
			if b, err = need(size); err != nil {
				break
			}
			n := int(b[0])
			if op == 0x8b {
				n = int(binary.LittleEndian.Uint32(b))
			}
			if b, err = need(n); err == nil {
				err = push(floatVal(longValue(b)))
			}
		case 'F': // FLOAT
			var b []byte
			if b, err = line(); err != nil {
				break
			}
			// Python's unpickler calls float() on the line.
			f, ok := parsePyFloat(b)
			if !ok {
				err = pickleFail(ReasonInvalidPickle, "bad FLOAT at offset %d", i)
				break
			}
			err = push(floatVal(f))
		case 'G': // BINFLOAT
			var b []byte
			if b, err = need(8); err == nil {
				err = push(floatVal(math.Float64frombits(binary.BigEndian.Uint64(b))))
			}
		case 'S': // STRING: a Python 2 repr
			var b []byte
			if b, err = line(); err != nil {
				break
			}
			s, ok := unrepr(b)
			if !ok {
				err = pickleFail(ReasonInvalidPickle, "bad STRING at offset %d", i)
				break
			}
			err = str(s)
		case 'V': // UNICODE: raw-unicode-escape
			var b []byte
			if b, err = line(); err == nil {
				err = str(rawUnicodeEscape(b))
			}
		case 'T', 'X', 'B': // BINSTRING, BINUNICODE, BINBYTES: 4-byte length
			var b []byte
			if b, err = need(4); err == nil {
				if b, err = need(int(binary.LittleEndian.Uint32(b))); err == nil {
					err = str(b)
				}
			}
		case 'U', 0x8c, 'C': // SHORT_BINSTRING, SHORT_BINUNICODE, SHORT_BINBYTES: 1-byte length
			var b []byte
			if b, err = need(1); err == nil {
				if b, err = need(int(b[0])); err == nil {
					err = str(b)
				}
			}
		case 0x8d, 0x8e: // BINUNICODE8, BINBYTES8: 8-byte length
			var b []byte
			if b, err = need(8); err == nil {
				n := binary.LittleEndian.Uint64(b)
				if n > uint64(len(data)) {
					err = pickleFail(ReasonInvalidPickle, "truncated at offset %d", i)
					break
				}
				if b, err = need(int(n)); err == nil {
					err = str(b)
				}
			}
		case 'p', 'g': // PUT, GET: decimal index
			var b []byte
			if b, err = line(); err != nil {
				break
			}
			k, perr := strconv.ParseUint(string(b), 10, 64)
			if perr != nil {
				err = pickleFail(ReasonInvalidPickle, "bad memo index at offset %d", i)
				break
			}
			if op == 'p' {
				err = memoPut(k)
			} else {
				err = memoGet(k)
			}
		case 'q', 'h': // BINPUT, BINGET
			var b []byte
			if b, err = need(1); err != nil {
				break
			}
			if op == 'q' {
				err = memoPut(uint64(b[0]))
			} else {
				err = memoGet(uint64(b[0]))
			}
		case 'r', 'j': // LONG_BINPUT, LONG_BINGET
			var b []byte
			if b, err = need(4); err != nil {
				break
			}
			if op == 'r' {
				err = memoPut(uint64(binary.LittleEndian.Uint32(b)))
			} else {
				err = memoGet(uint64(binary.LittleEndian.Uint32(b)))
			}
		case 0x94: // MEMOIZE
			err = memoPut(uint64(mc.memoLen))
		default:
			if name, bad := unsafeOps[op]; bad {
				return pval{}, pickleFail(ReasonUnsafePickle, "%s opcode at offset %d", name, i-1)
			}
			return pval{}, pickleFail(ReasonInvalidPickle, "opcode %s at offset %d not allowed", strconv.QuoteRune(rune(op)), i-1)
		}
		if err != nil {
			return pval{}, err
		}
	}
	return pval{}, pickleFail(ReasonInvalidPickle, "no STOP")
}

// pickleMachine is the reusable memory of one unpickle call.
type pickleMachine struct {
	data         []byte // the message, while it is decoded
	stack, arena []pval
	marks        []int
	memo         []pval // the keys picklers write: 0, 1, 2... (see put)
	memoSet      []bool
	memoLen      int // entries in the memo, for MEMOIZE
	memoSparse   map[uint64]pval
	text         []byte  // strings unescaped out of the message
	lists        []plist // every list of the message
}

// str returns the bytes of the string v.
func (m *pickleMachine) str(v *pval) []byte {
	if v.text {
		return m.text[v.off : v.off+v.n : v.off+v.n]
	}
	return m.data[v.off : v.off+v.n : v.off+v.n]
}

// items returns the items of the tuple v.
func (m *pickleMachine) items(v *pval) []pval {
	return m.arena[v.off : v.off+v.n : v.off+v.n]
}

// list returns the list v; the pointer is good until the next newList.
func (m *pickleMachine) list(v *pval) *plist { return &m.lists[v.off] }

// newList adds an empty list, reusing the memory of an earlier message's.
func (m *pickleMachine) newList() *plist {
	if n := len(m.lists); n < cap(m.lists) {
		m.lists = m.lists[:n+1]
		l := &m.lists[n]
		l.items, l.depth = l.items[:0], 1
		return l
	}
	m.lists = append(grow(m.lists, 1), plist{depth: 1})
	return &m.lists[len(m.lists)-1]
}

// memoSlack is how far past twice its entries the dense memo may grow to
// take a key: picklers number their entries 0, 1, 2..., so their keys
// always fit.
const memoSlack = 64

var pickleMachinePool = sync.Pool{New: func() any { return new(pickleMachine) }}

// put sets memo entry k to v, and returns the bytes of memo it added,
// for the budget: the slots the slice grew by, or a map entry.
//
// Python's memo is a dict, so any key costs one entry. Here the keys a
// pickler writes go to a slice, the fast path; the slice only grows to a
// key below twice the entries so far (plus memoSlack), so its length is
// bounded by the number of PUT opcodes, that is by the input. Any other
// key, such as LONG_BINPUT 65535 in a 9-byte pickle, goes to a map and
// costs one entry, not 65 536. The slots a key skips are charged too
// (keys 64, 66, 68... grow the slice by two a PUT), and a map entry as
// a map holds one, with its share of the map's growth: 1 MB of sparse
// keys allocated 21 MB while charged 5 before.
func (m *pickleMachine) put(k uint64, v pval) int {
	if k < uint64(len(m.memo)) || k <= uint64(2*m.memoLen+memoSlack) {
		added := 0
		for uint64(len(m.memo)) <= k {
			m.memo, m.memoSet = append(grow(m.memo, 1), pval{}), append(grow(m.memoSet, 1), false)
			added += pvalSize + 1
		}
		if !m.memoSet[k] {
			m.memoLen++
		}
		m.memo[k], m.memoSet[k] = v, true
		return added
	}
	if m.memoSparse == nil {
		m.memoSparse = map[uint64]pval{}
	}
	_, seen := m.memoSparse[k]
	m.memoSparse[k] = v
	if seen {
		return 0
	}
	m.memoLen++
	return memoSparseEntry
}

// memoSparseEntry is what a key of the memo's map is charged.
const memoSparseEntry = 96

func (m *pickleMachine) get(k uint64) (pval, bool) {
	if k < uint64(len(m.memo)) && m.memoSet[k] {
		return m.memo[k], true
	}
	v, ok := m.memoSparse[k]
	return v, ok
}

// maxPooled bounds, in values, each of the slices a pooled machine keeps
// for the next message: a large message's memory goes, the machine stays.
const maxPooled = 1 << 12

// release clears what refers to the message and returns m to the pool.
// A slice that grew past maxPooled is dropped rather than cleared, so
// the machine is pooled whatever the message was, and the next message
// pays for neither a new machine nor the last one's size.
func (m *pickleMachine) release() {
	m.data = nil
	m.stack, m.arena, m.memo = trimPooled(m.stack), trimPooled(m.arena), trimPooled(m.memo)
	if cap(m.memoSet) > maxPooled {
		m.memoSet = nil
	}
	clear(m.memoSet)
	if cap(m.marks) > maxPooled {
		m.marks = nil
	}
	if cap(m.text) > maxPooled*pvalSize {
		m.text = nil
	}
	for i := range m.lists {
		if cap(m.lists[i].items) > maxPooled {
			m.lists[i].items = nil
		}
	}
	if cap(m.lists) > maxPooled {
		m.lists = nil
	}
	m.memoSet, m.marks, m.text, m.lists = m.memoSet[:0], m.marks[:0], m.text[:0], m.lists[:0]
	m.memoLen, m.memoSparse = 0, nil
	pickleMachinePool.Put(m)
}

// grow makes room for n more values in s, doubling its capacity: append
// grows a large slice by a quarter at a time, which allocates five times
// the final size on the way; doubling allocates twice.
func grow[T any](s []T, n int) []T {
	if cap(s)-len(s) >= n {
		return s
	}
	g := make([]T, len(s), max(2*cap(s), len(s)+n, 16))
	copy(g, s)
	return g
}

// trimPooled empties s for reuse, or drops it when it is too large to
// keep. Values hold no pointers: nothing needs clearing.
func trimPooled(s []pval) []pval {
	if cap(s) > maxPooled {
		return nil
	}
	return s[:0]
}

func isInteger(b []byte) bool {
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// longValue is the little-endian two's complement integer b as a float64.
func longValue(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var f float64
	for k := len(b) - 1; k >= 0; k-- {
		f = f*256 + float64(b[k])
	}
	if b[len(b)-1]&0x80 != 0 {
		f -= math.Pow(256, float64(len(b)))
	}
	return f
}

// unrepr reads a Python 2 string repr: 'abc' or "abc" with backslash
// escapes (\\ \' \" \n \r \t \a \b \f \v \xNN \NNN).
func unrepr(b []byte) ([]byte, bool) {
	if len(b) < 2 || b[0] != b[len(b)-1] || b[0] != '\'' && b[0] != '"' {
		return nil, false
	}
	b = b[1 : len(b)-1]
	k := 0
	for k < len(b) && b[k] != '\\' {
		k++
	}
	if k == len(b) {
		return b, true
	}
	out := append(make([]byte, 0, len(b)), b[:k]...)
	for ; k < len(b); k++ {
		c := b[k]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if k++; k >= len(b) {
			return nil, false
		}
		switch c = b[k]; c {
		case '\\', '\'', '"':
			out = append(out, c)
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'a':
			out = append(out, 7)
		case 'b':
			out = append(out, 8)
		case 'f':
			out = append(out, 12)
		case 'v':
			out = append(out, 11)
		case 'x':
			if k+2 >= len(b) {
				return nil, false
			}
			v, err := strconv.ParseUint(string(b[k+1:k+3]), 16, 8)
			if err != nil {
				return nil, false
			}
			out = append(out, byte(v))
			k += 2
		default:
			if c < '0' || c > '7' {
				return nil, false
			}
			v, n := 0, 0
			for n < 3 && k+n < len(b) && b[k+n] >= '0' && b[k+n] <= '7' {
				v = v*8 + int(b[k+n]-'0')
				n++
			}
			out = append(out, byte(v))
			k += n - 1
		}
	}
	return out, true
}

// rawUnicodeEscape decodes Python's raw-unicode-escape: \uXXXX and
// \UXXXXXXXX escapes, other bytes Latin-1.
func rawUnicodeEscape(b []byte) []byte {
	ascii := true
	for _, c := range b {
		if c == '\\' || c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return b
	}
	out := make([]byte, 0, len(b))
	for k := 0; k < len(b); k++ {
		c := b[k]
		if c == '\\' && k+1 < len(b) && (b[k+1] == 'u' || b[k+1] == 'U') {
			n := 4
			if b[k+1] == 'U' {
				n = 8
			}
			if k+2+n <= len(b) {
				if v, err := strconv.ParseUint(string(b[k+2:k+2+n]), 16, 32); err == nil {
					out = utf8.AppendRune(out, rune(v))
					k += 1 + n
					continue
				}
			}
		}
		out = utf8.AppendRune(out, rune(c))
	}
	return out
}
