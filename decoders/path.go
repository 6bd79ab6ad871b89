package decoders

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/shovel-metrics/shovel/router/metric"
)

// ReasonPathTooLong rejects a sample whose sanitised path is longer than
// the decoder's path.max_length, or whose name (tags left out) carbon
// could not store: longer than metric.MaxNameLen, or with a segment longer
// than metric.MaxSegmentLen.
const ReasonPathTooLong = metric.ReasonPathTooLong

// DefaultPathAllowed is the punctuation kept in paths by default, besides
// ASCII letters and digits. Everything else that is not a valid UTF-8
// letter, mark, number, symbol or punctuation (path.utf8) is replaced;
// Graphite's glob and function characters (* ? [ ] { } ( ) ,) are left
// out so that every path can be queried.
const DefaultPathAllowed = "-_:#@%+=~"

// PathConfig configures the path sanitiser: the `sanitize:` key of
// every decoder.
type PathConfig struct {
	// Replacement stands for each run of bytes that are not allowed; empty
	// deletes them.
	Replacement string `mapstructure:"replacement"`
	// Allowed is the punctuation kept as it is, besides ASCII letters,
	// digits and the dot that separates segments.
	Allowed string `mapstructure:"allowed"`
	// UTF8 keeps non-ASCII characters that are graphic and not space
	// ("café", "😀"); when false they are replaced too.
	UTF8 bool `mapstructure:"utf8"`
	// MaxLength is the longest path passed on, in bytes.
	MaxLength int `mapstructure:"max_length"`
}

// DefaultPathConfig replaces with "_", keeps DefaultPathAllowed and UTF-8,
// and allows metric.MaxPathLen bytes.
func DefaultPathConfig() PathConfig {
	return PathConfig{Replacement: "_", Allowed: DefaultPathAllowed, UTF8: true, MaxLength: metric.MaxPathLen}
}

// Validate checks the settings, naming the key.
func (c PathConfig) Validate() error {
	for i := 0; i < len(c.Allowed); i++ {
		if b := c.Allowed[i]; b <= ' ' || b >= 0x7f || b == '.' || b == ';' {
			return fmt.Errorf("sanitize.allowed: %q may hold only ASCII punctuation other than the dot and ';' (which starts Graphite tags)", c.Allowed)
		}
	}
	if len(c.Replacement) > 1 || c.Replacement != "" && !isAlnum(c.Replacement[0]) && !strings.Contains(c.Allowed, c.Replacement) {
		return fmt.Errorf("sanitize.replacement: %q must be empty or one letter, digit or character of sanitize.allowed", c.Replacement)
	}
	if c.MaxLength <= 0 || c.MaxLength > metric.MaxPathLen {
		return fmt.Errorf("sanitize.max_length must be between 1 and %d, got %d", metric.MaxPathLen, c.MaxLength)
	}
	return nil
}

func isAlnum(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

// PathSanitizer makes metric paths safe for Carbon. It is immutable once
// built, so one value serves every goroutine.
type PathSanitizer struct {
	allowed [256]bool // false for every byte of a multi-byte rune
	repl    []byte
	utf8    bool
	max     int
}

// NewPathSanitizer builds the sanitiser c describes; c must be valid.
func NewPathSanitizer(c PathConfig) *PathSanitizer {
	s := &PathSanitizer{repl: []byte(c.Replacement), utf8: c.UTF8, max: c.MaxLength}
	for b := 0; b < utf8.RuneSelf; b++ {
		s.allowed[b] = isAlnum(byte(b))
	}
	for i := 0; i < len(c.Allowed); i++ {
		s.allowed[c.Allowed[i]] = true
	}
	return s
}

// Sanitize returns the safe form of path, or the reason it has none:
// bad_path when nothing is left of it, path_too_long when it is too long.
// It is a convenience over PathBuilder, which decoders use to build paths
// without allocating.
func (s *PathSanitizer) Sanitize(path string) (string, string) {
	var buf [256]byte
	b := s.Builder(buf[:0]).WriteString(path)
	if reason := b.Check(); reason != "" {
		return "", reason
	}
	return string(b.Bytes()), ""
}

// SanitizeName is Sanitize for a Carbon name that may carry Graphite tags
// ("name;key=value"), as the carbon-plaintext and carbon-pickle decoders
// read it: the tags are kept, repaired, in carbon's normalized order.
func (s *PathSanitizer) SanitizeName(name string) (string, string) {
	var buf [256]byte
	var out metric.Result
	b, _ := s.Builder(buf[:0]).WriteName([]byte(name), &out)
	if reason := b.Check(); reason != "" {
		return "", reason
	}
	return string(b.Bytes()), ""
}

// Builder starts a path in buf (usually a stack array's buf[:0]).
func (s *PathSanitizer) Builder(buf []byte) PathBuilder {
	return PathBuilder{s: s, buf: buf[:0]}
}

// PathBuilder builds one metric path from pieces, sanitising as it goes: a
// dot separates segments, and leading, trailing and doubled dots vanish;
// each run of bytes that are not allowed (spaces, control characters such
// as a newline that would start a second Carbon line, invalid UTF-8, glob
// characters) becomes one replacement. Get one from PathSanitizer.Builder.
//
// Its methods take and return it by value, as append does, so that a
// buffer on the caller's stack stays there.
type PathBuilder struct {
	s   *PathSanitizer
	buf []byte
	st  pathState
}

// WriteString adds p, whose dots separate segments.
func (b PathBuilder) WriteString(p string) PathBuilder {
	return b.write(unsafe.Slice(unsafe.StringData(p), len(p)), false) // read only
}

// Write adds p, whose dots separate segments.
func (b PathBuilder) Write(p []byte) PathBuilder { return b.write(p, false) }

// WriteSegment adds p as part of one segment: its dots are replaced like
// any other byte that is not allowed.
func (b PathBuilder) WriteSegment(p []byte) PathBuilder { return b.write(p, true) }

// Dot ends the current segment.
func (b PathBuilder) Dot() PathBuilder {
	b.st.needDot, b.st.inBad = len(b.buf) > 0, false
	return b
}

// Bytes is the path so far; it aliases the builder's buffer.
func (b PathBuilder) Bytes() []byte { return b.buf }

// WriteName adds a Carbon metric name as plaintext and pickle carry it:
// dots separate segments, and a ';' starts Graphite tags, which are kept
// (see Tags) in out's scratch TagSet, returned (nil for an untagged name)
// for recordRepairs once the sample is kept.
func (b PathBuilder) WriteName(p []byte, out *metric.Result) (PathBuilder, *metric.TagSet) {
	// Written as a plain name first: the sanitiser's loop notes a ';'
	// among the bytes it replaces, so an untagged name costs nothing
	// more than it did before tags.
	start := b
	b.st.semicolon = false
	if b = b.Write(p); !b.st.semicolon {
		return b, nil
	}
	i := bytes.IndexByte(p, ';')
	b = start.Write(p[:i])
	ts := out.TagSet()
	tags := p[i+1:]
	if len(tags) > rawTagsPerMax*b.s.max {
		// Repairs and duplicates shrink tags, but not fourfold in any
		// name a producer means (carbon's own line receiver drops lines
		// past 16 KiB): a megabyte of them is refused unread, not parsed
		// into 250 000 tags to find that out.
		b.st.tooLong, b.st.tagAt = true, int32(len(b.buf))+1
		return b, nil
	}
	// Read only, and appended (copied) by Tags before p can change.
	ts.Parse(unsafe.String(unsafe.SliceData(tags), len(tags)))
	// The tags are held, and sorted, before the path is checked: a name
	// of 100 000 tags is 3 MB of them. Charged here; the Add or reject
	// that follows returns the budget's error once it is passed.
	_ = out.Charge(ts.Len() * tagSize)
	return b.Tags(ts), ts
}

// rawTagsPerMax is how many times the longest path a name's tag text may
// be before WriteName refuses it as too long without reading it.
const rawTagsPerMax = 4

// tagSize is what a tag held in a TagSet is charged: its own size.
const tagSize = int(unsafe.Sizeof(metric.Tag{}))

// HasTags reports whether a name written with Write held a ';', which
// its replacement hides: the caller writes it again with WriteName. The
// Carbon decoders write every name with Write first, so that an untagged
// one costs what it did before tags (one flag, set on the path of the
// bytes the sanitiser replaces).
func (b PathBuilder) HasTags() bool { return b.st.semicolon }

// recordRepairs notes in out each tag of the sample at path that ts (nil
// for none) repaired or dropped; the error is the budget's, once passed.
func recordRepairs(out *metric.Result, ts *metric.TagSet, path string) error {
	if ts == nil {
		return nil
	}
	for _, reason := range ts.Repairs() {
		out.Repair(path, reason)
	}
	return out.Over()
}

// Tags ends the path with the tags of ts (which may repair or drop some:
// see metric.TagSet.Repairs), in carbon's normalized form: a Graphite
// tagged name, "name;key=value;...". When there is a tag, the name first
// loses its leading '~'s, as carbon's normalization does. Nothing may be
// written after. max_length counts the tags too; the segment limit is
// the name's only.
func (b PathBuilder) Tags(ts *metric.TagSet) PathBuilder {
	if len(ts.Tags()) == 0 {
		return b
	}
	i := 0
	for i < len(b.buf) && (b.buf[i] == '~' || b.buf[i] == '.') {
		i++
	}
	b.buf = b.buf[:copy(b.buf, b.buf[i:])]
	b.st.tagAt = int32(len(b.buf)) + 1
	b.buf = ts.AppendTo(b.buf)
	if len(b.buf) > b.s.max {
		b.buf, b.st.tooLong = b.buf[:b.st.tagAt-1], true
	}
	return b
}

// TagSuffix ends the path with tags already rendered in carbon's form
// (";key=value..." from metric.TagSet.AppendTo): Tags for tags shared by
// many paths. An empty suffix leaves the path untagged.
func (b PathBuilder) TagSuffix(suffix []byte) PathBuilder {
	if len(suffix) == 0 {
		return b
	}
	i := 0
	for i < len(b.buf) && (b.buf[i] == '~' || b.buf[i] == '.') {
		i++
	}
	b.buf = b.buf[:copy(b.buf, b.buf[i:])]
	b.st.tagAt = int32(len(b.buf)) + 1
	if !b.fits(len(suffix)) {
		return b
	}
	b.buf = append(b.buf, suffix...)
	return b
}

// fits reports whether n more bytes leave the path within the longest
// allowed; when they do not, the path is marked too long (Check rejects
// it) and nothing should be written. Tags shared by many paths are
// appended to each (TagSuffix): a 400 KB tag value on 70 000 metrics was
// 29 GB copied and allocated, 10 s of a worker, before a path that
// cannot be stored stopped growing.
func (b *PathBuilder) fits(n int) bool {
	if len(b.buf)+n > b.s.max {
		b.st.tooLong = true
		return false
	}
	return true
}

// Check returns "" if the path can be used, or the reason it cannot.
func (b PathBuilder) Check() string {
	if len(b.buf) == 0 || b.st.tagAt == 1 {
		return metric.ReasonBadPath
	}
	name := len(b.buf)
	if b.st.tagAt > 0 {
		name = int(b.st.tagAt) - 1
	}
	if b.st.tooLong || len(b.buf) > b.s.max || name > metric.MaxNameLen || int(b.st.maxSeg) > metric.MaxSegmentLen {
		return ReasonPathTooLong
	}
	return ""
}

// String returns the path, cut when it is too long to be useful in a log line.
func (b PathBuilder) String() string {
	if len(b.buf) > 200 {
		return string(b.buf[:200]) + "..."
	}
	return string(b.buf)
}

// WriteAllowed adds p when every byte of it is kept as it is (no dot, no
// byte the sanitiser replaces): what Write would do, without its general
// loop. It reports false, and returns b unchanged, otherwise; the caller
// then uses Write. Metric names are nearly always such plain words.
func (b PathBuilder) WriteAllowed(p []byte) (PathBuilder, bool) {
	if len(p) == 0 {
		return b, false
	}
	allowed := &b.s.allowed
	for _, c := range p {
		if !allowed[c] {
			return b, false
		}
	}
	if len(b.buf) > b.s.max {
		return b, true // too long already: see appendPath
	}
	if b.st.needDot {
		b.buf, b.st.needDot, b.st.seg = append(b.buf, '.'), false, 0
	}
	if !b.fits(len(p)) {
		return b, true
	}
	b.buf, b.st.seg, b.st.inBad = append(b.buf, p...), b.st.seg+int32(len(p)), false
	b.st.maxSeg = max(b.st.maxSeg, b.st.seg)
	return b, true
}

func (b PathBuilder) write(p []byte, oneSegment bool) PathBuilder {
	b.buf = b.s.appendPath(b.buf, &b.st, p, oneSegment)
	return b
}

// pathState is where a PathBuilder stands. It holds no pointers, so that
// passing it by pointer lets the path's buffer stay on the caller's stack.
type pathState struct {
	needDot bool // a separator is due before the next kept byte
	inBad   bool // the last thing written was a replacement
	tooLong bool // something was left out that would make the path too long
	// semicolon is set when a ';' was among the bytes replaced: WriteName
	// then reads the name as tagged.
	semicolon bool
	seg       int32 // length of the last segment
	maxSeg    int32 // length of the longest segment
	// tagAt is the name's length plus one once Tags ended the path with
	// tags, 0 before. It lives here rather than in PathBuilder so that a
	// builder stays as small as it was (it is copied at every call).
	tagAt int32
}

// appendPath appends the sanitised p to buf: the hot loop of every decoder.
func (s *PathSanitizer) appendPath(buf []byte, st *pathState, p []byte, oneSegment bool) []byte {
	allowed, repl, keepUTF8 := &s.allowed, s.repl, s.utf8
	needDot, inBad, seg, maxSeg, semicolon := st.needDot, st.inBad, st.seg, st.maxSeg, st.semicolon
	// Past the longest path allowed, nothing more is written: the path
	// is rejected as too long whatever follows, and a template field
	// holding a megabyte array must not build a megabyte path.
	for i := 0; i < len(p) && len(buf) <= s.max; {
		c := p[i]
		j := i + 1 // end of what is kept, when something is
		switch {
		case allowed[c]:
			for j < len(p) && allowed[p[j]] {
				j++
			}
		case c == '.' && !oneSegment:
			needDot, inBad = len(buf) > 0, false
			i++
			continue
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(p[i:])
			j = i + size
			if keepUTF8 && r != utf8.RuneError && unicode.IsGraphic(r) && !unicode.IsSpace(r) {
				break
			}
			fallthrough
		default: // a byte or rune that is not allowed
			semicolon = semicolon || c == ';'
			if !inBad && len(repl) > 0 {
				if needDot {
					buf, needDot, seg = append(buf, '.'), false, 0
				}
				buf, seg, inBad = append(buf, repl...), seg+int32(len(repl)), true
				maxSeg = max(maxSeg, seg)
			}
			i = j
			continue
		}
		if needDot {
			buf, needDot, seg = append(buf, '.'), false, 0
		}
		buf, seg, inBad = append(buf, p[i:j]...), seg+int32(j-i), false
		maxSeg = max(maxSeg, seg)
		i = j
	}
	st.needDot, st.inBad, st.seg, st.maxSeg, st.semicolon = needDot, inBad, seg, maxSeg, semicolon
	return buf
}
