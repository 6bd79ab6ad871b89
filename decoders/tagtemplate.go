package decoders

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

// tagTemplate is the `tags:` setting of the decoders that render
// templates (slice, json, voltha-event, protobuf): Graphite tags for each
// sample, beside the path template, each from a field of the message or
// a constant:
//
//	tags:
//	  device_id: "{device_id}"
//	  port: "{context.portlabel|context.portno}"
//	  source: voltha
//
// A value is a constant, or one placeholder in the path template's syntax
// ({field}, {a.b}, {a|b}: the first alternative the message has). A field
// the message lacks, or holds as null, empty, an object or an array,
// leaves its tag out: carbon refuses an empty tag, and an empty metadata
// field is common. What a tag key or value may not hold is repaired as
// metric.TagSet does (counted as tag_repaired). The tags are the same for
// every sample a template renders from one source, so a decoder renders
// them once per source (an entry, a message) into a suffix.
type tagTemplate struct {
	specs []tagSpec // sorted by key
}

type tagSpec struct {
	key      string
	constant string
	alts     [][]string // nil for a constant
}

// parseTagTemplate parses the tags setting; check, when not nil, vets
// each field (split at its dots) as parseFieldTemplate's does.
func parseTagTemplate(m map[string]string, check func(field []string) error) (tagTemplate, error) {
	var t tagTemplate
	for key, value := range m {
		if !metric.ValidTagKey(key) {
			return t, fmt.Errorf("tags: %q is not a tag key carbon accepts (not empty, not \"name\", none of ;!^= or spaces)", key)
		}
		s := tagSpec{key: key}
		if strings.ContainsAny(value, "{}") {
			inner, ok := strings.CutPrefix(value, "{")
			if inner, ok = strings.CutSuffix(inner, "}"); !ok || strings.ContainsAny(inner, "{}?") {
				return t, fmt.Errorf("tags.%s: %q: want a constant or one placeholder such as {field} or {a|b}", key, value)
			}
			for _, alt := range strings.Split(inner, "|") {
				if !validField(alt) {
					return t, fmt.Errorf("tags.%s: %q: %q is not a dotted field path", key, value, alt)
				}
				field := strings.Split(alt, ".")
				if check != nil {
					if err := check(field); err != nil {
						return t, fmt.Errorf("tags.%s: %q: %w", key, value, err)
					}
				}
				s.alts = append(s.alts, field)
			}
		} else {
			if value == "" {
				return t, fmt.Errorf("tags.%s: empty: carbon refuses an empty tag", key)
			}
			s.constant = value
		}
		t.specs = append(t.specs, s)
	}
	slices.SortFunc(t.specs, func(a, b tagSpec) int { return strings.Compare(a.key, b.key) })
	return t, nil
}

// empty reports whether there are no tags to render.
func (t *tagTemplate) empty() bool { return len(t.specs) == 0 }

// tagLookup returns the text of a tag's field (alternative k of spec i,
// which is field) and whether the message has it. The text may alias the
// message: the tags must be appended before the message is reused.
type tagLookup func(i, k int, field []string) (string, bool)

// render adds the template's tags to ts.
func (t *tagTemplate) render(ts *metric.TagSet, lookup tagLookup) {
	for i := range t.specs {
		s := &t.specs[i]
		if s.alts == nil {
			ts.Add(s.key, s.constant)
			continue
		}
		for k, alt := range s.alts {
			if v, ok := lookup(i, k, alt); ok && v != "" {
				ts.Add(s.key, v)
				break
			}
		}
	}
}

// suffix renders the tags against lookup and appends them to dst in
// carbon's order (";k=v..."), recording in out, once, each tag repaired
// or dropped, under the path head plus the tags.
func (t *tagTemplate) suffix(dst []byte, out *metric.Result, head []byte, lookup tagLookup) []byte {
	ts := out.TagSet()
	t.render(ts, lookup)
	start := len(dst)
	dst = ts.AppendTo(dst)
	if len(ts.Repairs()) > 0 {
		path := string(head) + string(dst[start:])
		for _, reason := range ts.Repairs() {
			out.Repair(path, reason)
		}
	}
	return dst
}

// jsonTagText is a JSON field's value as tag text: a string's text (in
// place when it has no escapes, which is nearly always), a number's or
// boolean's as written. Null, objects and arrays are no tag value.
func jsonTagText(v []byte, kind jsonscan.Kind) (string, bool) {
	switch kind {
	case jsonscan.String:
		if len(v) < 2 {
			return "", false
		}
		if inner := v[1 : len(v)-1]; bytes.IndexByte(inner, '\\') < 0 {
			return unsafe.String(unsafe.SliceData(inner), len(inner)), true
		}
		s, err := jsonscan.AppendString(nil, v)
		return string(s), err == nil
	case jsonscan.Number, jsonscan.Bool:
		return unsafe.String(unsafe.SliceData(v), len(v)), true
	}
	return "", false
}

// jsonTagLookup looks tag fields up in a JSON object.
func jsonTagLookup(src fieldSource) tagLookup {
	return func(_, _ int, field []string) (string, bool) {
		v, kind, ok := src.lookup(field)
		if !ok {
			return "", false
		}
		return jsonTagText(v, kind)
	}
}
