package metric

import (
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Graphite tags (carbon 1.1+) ride in the metric name:
//
//	cpu.load;dc=x;host=a
//
// The name comes first, then ";key=value" for each tag. Carbon normalizes
// a tagged name before it stores or (with TAG_RELAY_NORMALIZED) hashes it:
// carbon/util.py's TaggedSeries.parse then .path. Two names that normalize
// alike are one series, so shovel normalizes as carbon does, byte for byte:
//
//   - the name loses its leading '~'s (sanitize_name_as_tag_value);
//   - a tag key given twice keeps its last value (a Python dict);
//   - a "name" tag is dropped: the name overrides it;
//   - the tags are sorted as the strings ";key=value" sort, which is by
//     key with the key's end counting as '=' ("a-b" and "a1" sort before
//     "a", since '-' and '1' are below '='), never by value (keys are
//     unique by then).
//
// Carbon refuses (and then stores the name raw, unnormalized) a tag
// without "=", an empty key or value, a key holding any of ";!^=", and a
// value starting with '~'. shovel is stricter where a Carbon line needs it:
// no space, control character or invalid UTF-8 anywhere, since plaintext
// would split on them.

// Tag is one Graphite tag.
type Tag struct {
	Key, Value string
}

// TagNameKey is the tag carbon fills with the metric name.
const TagNameKey = "name"

// Reasons for tags repaired or dropped while a name is built; the sample
// itself goes on (Result.Repair records them).
const (
	// ReasonTagMalformed: a ";" segment that is not key=value, or has an
	// empty key; dropped.
	ReasonTagMalformed = "tag_malformed"
	// ReasonTagEmpty: a tag with an empty value (an empty field); dropped.
	ReasonTagEmpty = "tag_empty"
	// ReasonTagRepaired: characters carbon or a Carbon line refuse were
	// replaced by '_', or a value's leading '~'s removed.
	ReasonTagRepaired = "tag_repaired"
	// ReasonTagReserved: a tag named "name", which carbon overrides with
	// the metric name; dropped.
	ReasonTagReserved = "tag_reserved"
	// ReasonTagDuplicate: a key given twice; the last value is kept, as
	// carbon keeps it.
	ReasonTagDuplicate = "tag_duplicate"
)

// tagRepl replaces each run of characters a tag may not hold.
const tagRepl = '_'

// IsTagged reports whether p is a tagged name (holds a ';').
func IsTagged(p string) bool { return strings.IndexByte(p, ';') >= 0 }

// SplitTagged splits a name at its first ';' into the name and the tags
// ("k=v;k2=v2"); tags is "" for an untagged name.
func SplitTagged(p string) (name, tags string) {
	if i := strings.IndexByte(p, ';'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return p, ""
}

// tagKeyByte and tagValueByte are the ASCII bytes a key and a value may
// hold as they are: printable, no space; keys also without carbon's
// prohibitedTagChars ";!^=", values without ';'.
var tagKeyByte, tagValueByte [utf8.RuneSelf]bool

func init() {
	for b := byte('!'); b < 0x7f; b++ {
		tagValueByte[b] = b != ';'
		tagKeyByte[b] = !strings.ContainsRune(";!^=", rune(b))
	}
}

// validTagText reports whether s needs no repair as a key (key true) or a
// value: not empty, only allowed bytes, valid graphic UTF-8 beyond ASCII,
// and for a value no leading '~' and no trailing `"}` (which, last in a
// name holding a '{', makes carbon read the name as OpenMetrics).
func validTagText(s string, key bool) bool {
	if s == "" || !key && (s[0] == '~' || strings.HasSuffix(s, `"}`)) {
		return false
	}
	table := &tagValueByte
	if key {
		table = &tagKeyByte
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !table[c] {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !graphicRune(r) {
			return false
		}
		i += size
	}
	return true
}

func graphicRune(r rune) bool {
	return r != utf8.RuneError && unicode.IsGraphic(r) && !unicode.IsSpace(r)
}

// repairTagText returns s with each run of characters a key (or value)
// may not hold replaced by '_', and a value's leading '~'s removed. The
// result may be empty.
func repairTagText(s string, key bool) string {
	if !key {
		s = strings.TrimLeft(s, "~")
	}
	table := &tagValueByte
	if key {
		table = &tagKeyByte
	}
	b := make([]byte, 0, len(s))
	bad := false
	for i := 0; i < len(s); {
		c := s[i]
		size := 1
		ok := false
		if c < utf8.RuneSelf {
			ok = table[c]
		} else {
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			ok = graphicRune(r)
		}
		if ok {
			b = append(b, s[i:i+size]...)
			bad = false
		} else if !bad {
			b = append(b, tagRepl)
			bad = true
		}
		i += size
	}
	if !key && len(b) >= 2 && string(b[len(b)-2:]) == `"}` {
		b[len(b)-1] = tagRepl
	}
	return string(b)
}

// compareTagKeys orders keys as carbon's sorted(";k=v" strings) does:
// bytewise (UTF-8 byte order is code point order), the end of a key
// counting as '='.
func compareTagKeys(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	switch {
	case len(a) == len(b):
		return 0
	case len(a) < len(b):
		return int('=') - int(b[n])
	}
	return int(a[n]) - int('=')
}

// ValidTagKey reports whether k can be a tag key as it is: not empty,
// not "name", none of carbon's ";!^=", no space, control character or
// invalid UTF-8.
func ValidTagKey(k string) bool { return k != TagNameKey && validTagText(k, true) }

// validTags reports whether tags ("k=v;k2=v2", without the leading ';')
// can go to Carbon as they are: every tag key=value with a key and value
// validTagText accepts, and no "name" key. Order and duplicates are left
// to carbon's normalization (see Normalize).
func validTags(tags string) bool {
	for {
		seg, rest, more := strings.Cut(tags, ";")
		key, value, ok := strings.Cut(seg, "=")
		if !ok || key == TagNameKey || !validTagText(key, true) || !validTagText(value, false) {
			return false
		}
		if !more {
			return true
		}
		tags = rest
	}
}

// openMetricsLike reports whether carbon would read p as an OpenMetrics
// name (metric{tag="value"}): it ends in `"}` and holds a '{'.
func openMetricsLike(p string) bool {
	return strings.HasSuffix(p, `"}`) && strings.IndexByte(p, '{') >= 0
}

// errNotCarbonTagged and friends say why carbon would not normalize a name.
var (
	errNoName      = errors.New("no metric name before the tags")
	errBadSegment  = errors.New("a tag segment is not key=value with a key")
	errEmptyValue  = errors.New("a tag has an empty value")
	errKeyChar     = errors.New(`a tag key holds one of ";!^="`)
	errValueTilde  = errors.New(`a tag value starts with "~"`)
	errOpenMetrics = errors.New("OpenMetrics form (metric{tag=\"value\"}) is not read by shovel")
)

// maxStackTags is how many tags AppendNormalized sorts without allocating.
const maxStackTags = 16

// AppendNormalized appends carbon's normalized form of p to dst: what
// TaggedSeries.parse(p).path returns (see the top of this file). It
// reports an error, leaving dst as it was, where carbon's parse raises;
// carbon then goes on with p unnormalized. It applies carbon's rules only,
// not shovel's stricter ones (ValidPath). An untagged p only loses its
// leading '~'s. It does not allocate for names of up to 16 tags.
func AppendNormalized(dst []byte, p string) ([]byte, error) {
	if openMetricsLike(p) {
		return dst, errOpenMetrics
	}
	name, rest := SplitTagged(p)
	if name == "" {
		return dst, errNoName
	}
	var stack [maxStackTags]Tag
	tags := stack[:0]
	if len(name) != len(p) {
		for {
			seg, more, found := strings.Cut(rest, ";")
			key, value, ok := strings.Cut(seg, "=")
			switch {
			case !ok || key == "":
				return dst, errBadSegment
			case value == "":
				return dst, errEmptyValue
			case strings.ContainsAny(key, "!^"): // ';' and '=' cannot be in it
				return dst, errKeyChar
			case value[0] == '~':
				return dst, errValueTilde
			}
			if key != TagNameKey {
				tags = append(tags, Tag{key, value})
			}
			if !found {
				break
			}
			rest = more
		}
	}
	name = strings.TrimLeft(name, "~")
	if name == "" {
		return dst, errNoName
	}
	tags = sortTags(tags)
	dst = append(dst, name...)
	for _, t := range tags {
		dst = append(dst, ';')
		dst = append(dst, t.Key...)
		dst = append(dst, '=')
		dst = append(dst, t.Value...)
	}
	return dst, nil
}

// sortTags sorts tags in carbon's order and keeps the last of each key,
// in place; it returns the shortened slice. Names carry a handful of tags,
// which insertion sort orders fastest; but a hostile name may carry a
// hundred thousand (a 1 MB plaintext line, or pickle string, of ";tN=v"),
// and insertion sort is quadratic: 36 s of a worker for that one line.
// Past insertionSortTags tags a stable O(n log n) sort takes over, so the
// work per input byte stays bounded.
func sortTags(tags []Tag) []Tag {
	if len(tags) > insertionSortTags {
		slices.SortStableFunc(tags, func(a, b Tag) int { return compareTagKeys(a.Key, b.Key) })
		return lastOfEachKey(tags)
	}
	for i := 1; i < len(tags); i++ {
		t := tags[i]
		j := i
		// Stable: an equal key stays after the earlier one.
		for j > 0 && compareTagKeys(tags[j-1].Key, t.Key) > 0 {
			tags[j] = tags[j-1]
			j--
		}
		tags[j] = t
	}
	return lastOfEachKey(tags)
}

// insertionSortTags is the most tags sortTags orders by insertion.
const insertionSortTags = 32

// lastOfEachKey keeps, of sorted tags, the last of each run of one key.
func lastOfEachKey(tags []Tag) []Tag {
	out := tags[:0]
	for i, t := range tags {
		if i+1 < len(tags) && tags[i+1].Key == t.Key {
			continue // a later value of this key follows
		}
		out = append(out, t)
	}
	return out
}

// Normalized reports whether p is already in carbon's normalized form:
// untagged without a leading '~', or tagged with its tags sorted in
// carbon's order, each key once, no "name" tag, and nothing carbon's parse
// refuses. It does not allocate.
func Normalized(p string) bool {
	if p == "" || p[0] == '~' || openMetricsLike(p) {
		return false
	}
	name, rest := SplitTagged(p)
	if len(name) == len(p) {
		return true
	}
	if name == "" {
		return false
	}
	prev := ""
	for i := 0; ; i++ {
		seg, more, found := strings.Cut(rest, ";")
		key, value, ok := strings.Cut(seg, "=")
		if !ok || key == "" || value == "" || key == TagNameKey || value[0] == '~' || strings.ContainsAny(key, "!^") {
			return false
		}
		if i > 0 && compareTagKeys(prev, key) >= 0 {
			return false
		}
		prev = key
		if !found {
			return true
		}
		rest = more
	}
}

// Normalize returns carbon's normalized form of p (see AppendNormalized),
// p itself when it is already normalized.
func Normalize(p string) (string, error) {
	if Normalized(p) {
		return p, nil
	}
	b, err := AppendNormalized(nil, p)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// TagSet collects the tags of one name while a decoder or a rule builds
// it, repairing what carbon or a Carbon line would refuse: its output
// always passes ValidPath's tag rules and is in carbon's normalized
// order. Each repair or drop is noted with a Reason* token. A TagSet is
// reused (Reset) and not safe for concurrent use.
//
// Keys and values are kept as given, without copying: a caller passing a
// string that aliases memory it reuses must call AppendTo before reusing it.
type TagSet struct {
	tags    []Tag
	repairs []string
	sorted  bool
}

// Reset empties s, keeping its memory.
func (s *TagSet) Reset() {
	s.tags, s.repairs, s.sorted = s.tags[:0], s.repairs[:0], true
}

// Len is the number of tags (duplicates count until AppendTo or Tags).
func (s *TagSet) Len() int { return len(s.tags) }

// Repairs lists the reasons of every repair and drop since Reset.
func (s *TagSet) Repairs() []string { return s.repairs }

// Add adds key=value, repairing or dropping it (with a reason) as needed.
func (s *TagSet) Add(key, value string) {
	if key == "" {
		s.repairs = append(s.repairs, ReasonTagMalformed)
		return
	}
	if value == "" {
		s.repairs = append(s.repairs, ReasonTagEmpty)
		return
	}
	if !validTagText(key, true) {
		key = repairTagText(key, true)
		s.repairs = append(s.repairs, ReasonTagRepaired)
	}
	if !validTagText(value, false) {
		value = repairTagText(value, false)
		s.repairs = append(s.repairs, ReasonTagRepaired)
		if value == "" {
			s.repairs = append(s.repairs, ReasonTagEmpty)
			return
		}
	}
	if key == TagNameKey {
		s.repairs = append(s.repairs, ReasonTagReserved)
		return
	}
	if n := len(s.tags); n > 0 && compareTagKeys(s.tags[n-1].Key, key) >= 0 {
		s.sorted = false
	}
	s.tags = append(s.tags, Tag{key, value})
}

// Parse adds the tags of a carbon name's tag part ("k=v;k2=v2", what
// follows the name's first ';'). A segment without '=' is dropped.
func (s *TagSet) Parse(tags string) {
	for {
		seg, rest, more := strings.Cut(tags, ";")
		if key, value, ok := strings.Cut(seg, "="); ok {
			s.Add(key, value)
		} else {
			s.repairs = append(s.repairs, ReasonTagMalformed)
		}
		if !more {
			return
		}
		tags = rest
	}
}

// Get returns the value of key.
func (s *TagSet) Get(key string) (string, bool) {
	for i := len(s.tags) - 1; i >= 0; i-- { // the last value wins
		if s.tags[i].Key == key {
			return s.tags[i].Value, true
		}
	}
	return "", false
}

// Delete removes every tag named key and reports whether there was one.
func (s *TagSet) Delete(key string) bool {
	out := s.tags[:0]
	for _, t := range s.tags {
		if t.Key != key {
			out = append(out, t)
		}
	}
	found := len(out) != len(s.tags)
	s.tags = out
	return found
}

// Tags returns the tags in carbon's order, each key once (the last value
// given); it aliases s.
func (s *TagSet) Tags() []Tag {
	if !s.sorted {
		n := len(s.tags)
		s.tags = sortTags(s.tags)
		for range n - len(s.tags) {
			s.repairs = append(s.repairs, ReasonTagDuplicate)
		}
		s.sorted = true
	}
	return s.tags
}

// AppendTo appends ";key=value" for each tag, in carbon's order, to dst:
// after a name, the result is a normalized tagged name.
func (s *TagSet) AppendTo(dst []byte) []byte {
	for _, t := range s.Tags() {
		dst = append(dst, ';')
		dst = append(dst, t.Key...)
		dst = append(dst, '=')
		dst = append(dst, t.Value...)
	}
	return dst
}
