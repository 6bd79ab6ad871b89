package decoders

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shovel-metrics/shovel/router/jsonscan"
)

// ReasonMissingField rejects samples whose path template names a field
// that the message (or entry) does not have, or has as null.
const ReasonMissingField = "missing_field"

// pathTemplate is a metric path layout such as
//
//	voltha.{device_id}.{title}.{context?}.{metric}
//
// Text outside braces is copied, its dots separating segments. {metric} is
// the metric's name. {a.b} is the value of field b of object a; {a.b?} the
// same but optional: left out (with its dot) when missing. A string,
// number or boolean field is one segment (dots in it are replaced); an
// object or array field stands for its scalar values in document order,
// one segment each. Only text may follow {metric}.
type pathTemplate struct {
	parts []templatePart
}

type templatePart struct {
	literal  string
	field    []string // nil for a literal and for {metric}
	optional bool
	metric   bool
	text     string // the placeholder as written, for errors
}

func parseTemplate(s string) (pathTemplate, error) {
	var t pathTemplate
	hasMetric := false
	for s != "" {
		open := strings.IndexByte(s, '{')
		if close := strings.IndexByte(s, '}'); close >= 0 && (open < 0 || close < open) {
			return t, errors.New(`"}" without "{"`)
		}
		if open < 0 {
			t.parts = append(t.parts, templatePart{literal: s})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, templatePart{literal: s[:open]})
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			return t, errors.New(`"{" without "}"`)
		}
		name := s[open+1 : open+end]
		p := templatePart{text: "{" + name + "}"}
		name, p.optional = strings.CutSuffix(name, "?")
		switch {
		case name == "metric" && !p.optional:
			p.metric, hasMetric = true, true
		case name == "" || strings.ContainsAny(name, "{ \t") || strings.Contains("."+name+".", ".."):
			return t, fmt.Errorf("bad placeholder %s: want {field}, {field.subfield} or {field?}", p.text)
		case hasMetric:
			// Rendered again for every metric, a field here would cost
			// its size times the number of metrics.
			return t, fmt.Errorf("placeholder %s after {metric}: only text may follow it", p.text)
		default:
			p.field = strings.Split(name, ".")
		}
		t.parts = append(t.parts, p)
		s = s[open+end+1:]
	}
	if !hasMetric {
		return t, errors.New("must contain {metric}")
	}
	return t, nil
}

// fieldSource finds a field of the object a template is rendered against.
type fieldSource struct {
	scan jsonscan.Scanner
	obj  []byte
	// top, when set, holds the object's top-level members, so that a
	// field is found without scanning the whole object again.
	top []member
}

// member is one member of an object, found by a first pass: offsets into
// the object rather than slices, so that the cache holds no pointers and
// can stay on the stack.
type member struct {
	ks, ke, vs, ve int32
	kind           jsonscan.Kind
}

// lookup follows a dotted field path. A null field is found, as Null.
func (f fieldSource) lookup(field []string) ([]byte, jsonscan.Kind, bool) {
	v, kind := f.obj, jsonscan.Object
	if f.top != nil && len(field) > 0 {
		found := false
		for k := range f.top {
			m := &f.top[k]
			if string(f.obj[m.ks:m.ke]) == field[0] {
				v, kind, found = f.obj[m.vs:m.ve:m.ve], m.kind, true
				break
			}
		}
		if !found {
			return nil, jsonscan.Invalid, false
		}
		field = field[1:]
	}
	for _, name := range field {
		if kind != jsonscan.Object {
			return nil, jsonscan.Invalid, false
		}
		var err error
		if v, kind, err = f.scan.Lookup(v, name); err != nil {
			return nil, jsonscan.Invalid, false
		}
	}
	return v, kind, true
}

// render writes parts[from:] into b, stopping before {metric}; it returns
// the index of the {metric} part (len(parts) if none is left) and, if a
// required field is missing, its placeholder.
func (t *pathTemplate) render(b PathBuilder, src fieldSource, from int) (PathBuilder, int, string) {
	for i := from; i < len(t.parts); i++ {
		p := &t.parts[i]
		switch {
		case p.metric:
			return b, i, ""
		case p.field == nil:
			b = b.WriteString(p.literal)
		default:
			v, kind, ok := src.lookup(p.field)
			if !ok || kind == jsonscan.Null {
				if p.optional {
					continue
				}
				return b, len(t.parts), p.text
			}
			b = writeValue(b, src.scan, v, kind)
		}
	}
	return b, len(t.parts), ""
}

// writeValue writes a field's value as path segments.
func writeValue(b PathBuilder, scan jsonscan.Scanner, v []byte, kind jsonscan.Kind) PathBuilder {
	switch kind {
	case jsonscan.Object:
		_ = scan.ObjectEach(v, func(_, mv []byte, mk jsonscan.Kind) error {
			b = writeScalar(b.Dot(), mv, mk).Dot()
			return nil
		})
	case jsonscan.Array:
		_ = scan.ArrayEach(v, func(ev []byte, ek jsonscan.Kind) error {
			b = writeScalar(b.Dot(), ev, ek).Dot()
			return nil
		})
	default:
		b = writeScalar(b, v, kind)
	}
	return b
}

// writeScalar writes a string, number or boolean as (part of) one segment;
// containers and null write nothing.
func writeScalar(b PathBuilder, v []byte, kind jsonscan.Kind) PathBuilder {
	switch kind {
	case jsonscan.String:
		var buf [128]byte
		if s, err := jsonscan.AppendString(buf[:0], v); err == nil {
			b = b.WriteSegment(s)
		}
	case jsonscan.Number, jsonscan.Bool:
		b = b.WriteSegment(v)
	}
	return b
}
