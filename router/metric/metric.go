// Package metric holds shovel's core types: the sample that flows through the
// router, the Kafka message it came from, and the small interfaces that
// decoders and outputs implement. It imports nothing of shovel's own, so that
// decoders, outputs and the router can all depend on it without depending on
// each other.
package metric

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"
)

// Sample is one data point on its way to Carbon.
type Sample struct {
	// Path is the dotted metric name, for example "voltha.internal.abc.deferreds".
	Path string
	// Time is seconds since the Unix epoch. It is a float because the
	// producers shovel serves publish fractional timestamps; Carbon floors it.
	Time float64
	// Value is the measurement.
	Value float64
}

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// HeaderDeadLetterReason is the record header shovel's dead-letter writer
// puts on every dead letter, whole or truncated: why it was rejected. A
// message that carries it came from a dead-letter topic, and the router
// never dead-letters it again (that could loop).
const HeaderDeadLetterReason = "shovel.reason"

// Message is one Kafka record as decoders and routes see it. A decoder must
// not keep references to Value or Headers after Decode returns: the router
// may reuse their memory.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
}

// Header returns the value of the first header named key, and whether there was one.
func (m *Message) Header(key string) ([]byte, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// Rejection says why one sample of a message was dropped while the message's
// other samples went on.
type Rejection struct {
	Path   string // the (possibly partial) metric path, for the log line
	Reason string // a short stable token such as "not_a_number", used as a counter label
}

// Result collects what one Decode call produced. The router reuses one
// Result per worker, so decoders append to its slices rather than replace them.
type Result struct {
	Samples  []Sample
	Rejected []Rejection
	// Budget bounds what one Decode call may produce, in bytes as Cost
	// counts them; 0 means no bound. The router sets it from the size of
	// the message being decoded, so that no message can decode into more
	// than a bounded multiple of itself (a 1 MB message whose one long
	// key is shared by 100 000 metric names would otherwise become
	// hundreds of MB of samples). Decoders charge it through Add, Charge
	// and Reject, and stop at the first error.
	Budget int
	spent  int
	// Repaired lists tags repaired or dropped (Reason* tag tokens, see
	// TagSet) in samples that went on.
	Repaired []Rejection
	// tags is the scratch TagSet handed out by TagSet.
	tags TagSet
	// strs is where String carves from. It survives Reset, and it is a
	// pointer so that copies of a Result carve from one place instead of
	// overwriting each other's strings.
	strs *stringArena
}

type stringArena struct{ buf []byte }

// Reset empties r, keeping its memory and its Budget.
func (r *Result) Reset() {
	r.Samples = r.Samples[:0]
	r.Rejected = r.Rejected[:0]
	r.Repaired = r.Repaired[:0]
	r.spent = 0
}

// maxKept bounds, in elements, each slice Trim lets a Result keep.
const maxKept = 4096

// Trim empties r, as Reset does, and drops the slices one large message
// grew past what a typical one needs (4 096 samples, rejections, repairs
// or tags). The router reuses a Result per worker for every message: one
// message of 500 000 samples (16 MB, within its budget) would otherwise
// keep that much room, per worker, for good.
func (r *Result) Trim() {
	r.Reset()
	if cap(r.Samples) > maxKept {
		r.Samples = nil
	}
	if cap(r.Rejected) > maxKept {
		r.Rejected = nil
	}
	if cap(r.Repaired) > maxKept {
		r.Repaired = nil
	}
	if cap(r.tags.tags) > maxKept {
		r.tags.tags = nil
	}
	if cap(r.tags.repairs) > maxKept {
		r.tags.repairs = nil
	}
}

// SampleOverhead is what a sample costs beyond its path's bytes: its own
// size in memory (a string header and two float64s), which is also about
// what it costs on the wire besides the path (a pickle tuple or a
// plaintext line carries a timestamp and a value of similar size).
const SampleOverhead = int(unsafe.Sizeof(Sample{}))

// Cost is what s is charged against a Result's Budget and the router's
// memory budget.
func Cost(s *Sample) int { return len(s.Path) + SampleOverhead }

// Add appends s to r.Samples and charges its Cost. Once the charges pass
// r.Budget it adds nothing more and returns the over-budget rejection,
// which the decoder returns as its own error: the message is rejected
// whole, as soon as the budget is crossed rather than after building
// everything.
func (r *Result) Add(s Sample) error {
	r.spent += len(s.Path) + SampleOverhead
	if r.Budget > 0 && r.spent > r.Budget {
		return ErrOverBudget
	}
	r.Samples = append(r.Samples, s)
	return nil
}

// Charge accounts n bytes of other work done for the message (a pickle
// memo, a template's expansion, per-sample rejections) against r.Budget,
// returning the over-budget rejection once it is passed. Decoders charge
// what grows with the input in ways the input's size does not bound.
func (r *Result) Charge(n int) error {
	r.spent += n
	if r.Budget > 0 && r.spent > r.Budget {
		return ErrOverBudget
	}
	return nil
}

// Cost returns what r's samples and rejections cost, as Add and Reject
// charge them. The router checks it after Decode, so that a decoder that
// appends to Samples itself, without Add, is bounded too (after the fact).
func (r *Result) Cost() int {
	n := (len(r.Samples)*SampleOverhead + len(r.Rejected)*rejectionOverhead)
	for i := range r.Samples {
		n += len(r.Samples[i].Path)
	}
	for i := range r.Rejected {
		n += len(r.Rejected[i].Path)
	}
	return n
}

// Spent returns the bytes charged since the last Reset.
func (r *Result) Spent() int { return r.spent }

// Over returns the over-budget rejection if the charges have passed
// r.Budget, else nil. Reject charges too but cannot fail, so a decoder
// whose loop may only reject checks Over as it goes.
func (r *Result) Over() error {
	if r.Budget > 0 && r.spent > r.Budget {
		return ErrOverBudget
	}
	return nil
}

// ErrOverBudget is what Add, Charge and Over return once a Result's
// charges have passed its Budget: a whole-message rejection with reason
// output_budget. It is one shared value, returned without a call so that
// Add, on every sample's path, is small enough to be inlined; the router
// says by how much when it logs it.
var ErrOverBudget error = &RejectError{Reason: ReasonOverBudget, Detail: "decoding passed the output budget for this message"}

// Defaults of the output budget, the config's limits.output_ratio and
// limits.output_min. The real messages shovel serves are charged 0.5 to 5
// times their size (the goldens under decoders/testdata, the Voltha KPI
// shapes, the kpi publisher's messages, CPython pickles; docs/limits.md
// has the table), pickles of very short paths up to 11; 16 leaves room. The
// floor lets a small message with long paths through: 64 KiB is 15 samples
// of the longest path allowed, or 1 000 of a typical one.
const (
	DefaultOutputRatio = 16
	DefaultOutputMin   = 64 << 10
)

// OutputLimits sets the output budget of each message: the larger of Min
// and Ratio times the message's size.
type OutputLimits struct {
	Ratio float64
	Min   int
}

// DefaultOutputLimits returns DefaultOutputRatio and DefaultOutputMin.
func DefaultOutputLimits() OutputLimits {
	return OutputLimits{Ratio: DefaultOutputRatio, Min: DefaultOutputMin}
}

// Budget returns the output budget of a message of size bytes (see Size).
func (l OutputLimits) Budget(size int) int {
	b := l.Ratio * float64(size)
	if b >= math.MaxInt32 {
		return math.MaxInt32
	}
	return max(l.Min, int(b))
}

// Size is what a message weighs for its output budget: its value, its key
// and its headers' keys and values. Headers count because a decoder may
// read them, and the router holds them as long as the message.
func (m *Message) Size() int {
	n := len(m.Value) + len(m.Key)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// stringChunk is the memory String carves strings from at a time. A chunk
// lives as long as any string carved from it; samples are written out
// within a flush interval or so, so few chunks are alive at any time.
const stringChunk = 16 << 10

// String returns the text of b (a path a decoder built in a scratch buffer)
// as a string. Strings are carved from chunks the Result keeps across
// calls, so that a decoder pays one allocation per many messages rather
// than one per sample. Carved bytes are never written again, and a full
// chunk is replaced rather than grown, so the strings are as immutable as
// any other.
func (r *Result) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if r.strs == nil {
		r.strs = &stringArena{}
	}
	a := r.strs
	if len(b) > cap(a.buf)-len(a.buf) {
		if len(b) > stringChunk/8 {
			return string(b) // an outsized one costs its own allocation, not a chunk
		}
		a.buf = make([]byte, 0, stringChunk)
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return unsafe.String(&a.buf[start], len(b))
}

// rejectionOverhead is what a rejection costs besides its path.
const rejectionOverhead = int(unsafe.Sizeof(Rejection{}))

// Reject records that the sample at path was dropped for reason.
func (r *Result) Reject(path, reason string) {
	r.spent += len(path) + rejectionOverhead
	r.Rejected = append(r.Rejected, Rejection{Path: path, Reason: reason})
}

// TagSet returns an empty TagSet for building one sample's tags, reused
// across calls: valid until the next call of TagSet.
func (r *Result) TagSet() *TagSet {
	r.tags.Reset()
	return &r.tags
}

// Repair records that a tag of the sample at path was repaired or dropped
// for reason, the sample itself kept. It is charged as a rejection is.
func (r *Result) Repair(path, reason string) {
	r.spent += len(path) + rejectionOverhead
	r.Repaired = append(r.Repaired, Rejection{Path: path, Reason: reason})
}

// Decoder turns one Kafka message into samples. Implementations must be safe
// for concurrent use: the router calls one decoder from several workers.
//
// Decode appends the message's samples to out.Samples and records per-sample
// rejections with out.Reject. It returns an error only when the whole
// message is unusable; that error should be a *RejectError so that the
// router can count it by reason. A message that is not for the decoder
// at all, and rightly so, is skipped: Decode returns a *SkipError (Skip)
// and adds nothing.
type Decoder interface {
	Decode(msg *Message, out *Result) error
}

// Output delivers samples to one destination. Write is called by one
// goroutine at a time; Write returning nil means the samples were handed to
// the destination (written to its socket) and the router may commit the
// messages they came from.
type Output interface {
	// Connect makes a first attempt to reach the destination. An error is
	// not fatal: Write keeps trying to reconnect.
	Connect(ctx context.Context) error
	// Write delivers samples, or returns an error (wrapping ErrNotConnected
	// when the destination cannot be reached right now). samples and their
	// paths belong to the router: an output that keeps a path after Write
	// returns must copy it (strings.Clone), since a path may share memory
	// with many others (see Result.String).
	Write(ctx context.Context, samples []Sample) error
	// Close flushes and releases the output's resources.
	Close() error
}

// Connectivity is implemented by outputs that can tell, without writing,
// whether they reach their destination right now (for /readyz).
type Connectivity interface {
	Connected() bool
}

// ReconnectCounter is implemented by outputs that count how often they
// had to connect again (for shovel_output_reconnects_total).
type ReconnectCounter interface {
	Reconnects() uint64
}

// CheckedPaths is implemented by decoders that vouch for their paths: every
// sample path they return satisfies ValidPath (they build paths with a
// sanitiser that guarantees it, and their fuzz tests assert it). The router
// then does not check those paths again unless a route rule rewrote them;
// it still checks values and timestamps. A decoder that is not sure must
// not implement it: the router's check is what keeps a space or newline
// out of a Carbon line.
type CheckedPaths interface {
	PathsChecked() bool
}

// MessageLimit is implemented by decoders that reject a message value
// larger than a configured size as too_large. The dead-letter producer
// sizes its record limit from the largest (see config.LargestMessage).
type MessageLimit interface {
	MaxMessageBytes() int
}

// ErrNotConnected is wrapped by Output.Write errors when the destination
// cannot be reached; the router reacts by trying the fallback or waiting.
var ErrNotConnected = errors.New("not connected")

// Resolver maps a service name (written "@name" in the config) to the
// addresses ("host:port") of its healthy instances. Outputs call it again
// on every reconnect, so an address change is picked up without a restart.
type Resolver interface {
	Resolve(ctx context.Context, service string) ([]string, error)
}

// RejectError is a whole-message rejection with a stable reason token.
type RejectError struct {
	Reason string // short stable token, e.g. "invalid_json", used as a counter label
	Detail string // human-readable detail for the log line
}

func (e *RejectError) Error() string {
	if e.Detail == "" {
		return e.Reason
	}
	return e.Reason + ": " + e.Detail
}

// SkipError says that a message is not for the decoder that was given it,
// and that this is no fault: a topic carrying events of several kinds (as
// VOLTHA's voltha.events carries device, RPC and config events beside its
// KPIs) hands a KPI decoder messages it is right to pass over. The router
// counts a skip by decoder and reason (shovel_skipped_total), logs nothing,
// dead-letters nothing and acknowledges the message.
type SkipError struct {
	Reason string // short stable token, e.g. "device_event", used as a counter label
}

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Skip returns a *SkipError with the given reason. A decoder that skips
// often keeps the error in a variable rather than allocate one per message.
func Skip(reason string) error { return &SkipError{Reason: reason} }

// SkipReason returns the reason of err if it is (or wraps) a *SkipError.
func SkipReason(err error) (string, bool) {
	if se, ok := err.(*SkipError); ok { // the common case, without errors.As's reflection
		return se.Reason, true
	}
	var se *SkipError
	if errors.As(err, &se) {
		return se.Reason, true
	}
	return "", false
}

// Rejectf returns a *RejectError with the given reason and a formatted detail.
func Rejectf(reason, format string, args ...any) error {
	return &RejectError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason token of err if it is (or wraps) a
// *RejectError, and "error" otherwise.
func ReasonOf(err error) string {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	return "error"
}

// Reason tokens shared by decoders and the router. Decoders may add their own.
const (
	ReasonInvalidJSON  = "invalid_json"
	ReasonNoType       = "no_type"
	ReasonUnknownType  = "unknown_type"
	ReasonTooLarge     = "too_large"
	ReasonBadTimestamp = "bad_timestamp"
	ReasonBadShape     = "bad_shape"
	ReasonNotANumber   = "not_a_number"
	ReasonNotFinite    = "not_finite"
	ReasonBadPath      = "bad_path"
	// ReasonPathTooLong: a path, or a segment of it, longer than carbon
	// can store (see MaxNameLen and MaxSegmentLen).
	ReasonPathTooLong = "path_too_long"
	ReasonNoRoute     = "no_route"
	// ReasonOverBudget: the message would decode into more than its
	// output budget (Result.Budget); it is rejected whole.
	ReasonOverBudget = "output_budget"
)
