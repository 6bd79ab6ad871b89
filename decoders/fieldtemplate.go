package decoders

import (
	"errors"
	"fmt"
	"strings"
)

// fieldTemplate is the path template of the protobuf decoders
// (voltha-event, protobuf): the syntax of the JSON decoders' templates,
// plus alternatives. It is parsed here and rendered by each decoder
// against its own kind of message, so that the voltha-event decoder can
// render straight from the wire without an interface call per field.
//
//	voltha.{device_id}.{title}.{context.portlabel|context.portno?}.{metric}
//
// Text outside braces is copied, its dots separating segments. {metric}
// is the metric's name, and only text may follow it. {a.b} is the value
// of field b of a; {a|b} the first of a and b that the message has; a
// trailing ? makes the placeholder optional: left out (with its dot) when
// no alternative is there, where a required one rejects the sample as
// missing_field. An empty value counts as missing: it would make an
// empty segment.
type fieldTemplate struct {
	parts []fieldPart
}

type fieldPart struct {
	literal  string
	alts     [][]string // the alternatives' dotted names, split; nil for a literal and for {metric}
	optional bool
	metric   bool
	text     string // the placeholder as written, for errors
}

// parseFieldTemplate parses s; check, when not nil, vets each field name
// (split at its dots) and says what is wrong with it.
func parseFieldTemplate(s string, check func(field []string) error) (fieldTemplate, error) {
	var t fieldTemplate
	hasMetric := false
	for s != "" {
		open := strings.IndexByte(s, '{')
		if close := strings.IndexByte(s, '}'); close >= 0 && (open < 0 || close < open) {
			return t, errors.New(`"}" without "{"`)
		}
		if open < 0 {
			t.parts = append(t.parts, fieldPart{literal: s})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, fieldPart{literal: s[:open]})
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			return t, errors.New(`"{" without "}"`)
		}
		name := s[open+1 : open+end]
		p := fieldPart{text: "{" + name + "}"}
		name, p.optional = strings.CutSuffix(name, "?")
		switch {
		case name == "metric" && !p.optional:
			p.metric, hasMetric = true, true
		case hasMetric:
			// Rendered again for every metric, a field here would cost
			// its size times the number of metrics.
			return t, fmt.Errorf("placeholder %s after {metric}: only text may follow it", p.text)
		default:
			for _, alt := range strings.Split(name, "|") {
				if alt == "" || strings.ContainsAny(alt, "{? \t") || strings.Contains("."+alt+".", "..") {
					return t, fmt.Errorf("bad placeholder %s: want {field}, {field.subfield}, {a|b} or {field?}", p.text)
				}
				field := strings.Split(alt, ".")
				if check != nil {
					if err := check(field); err != nil {
						return t, fmt.Errorf("placeholder %s: %w", p.text, err)
					}
				}
				p.alts = append(p.alts, field)
			}
		}
		t.parts = append(t.parts, p)
		s = s[open+end+1:]
	}
	if !hasMetric {
		return t, errors.New("must contain {metric}")
	}
	return t, nil
}

// metricAt returns the index of the {metric} part.
func (t *fieldTemplate) metricAt() int {
	for i := range t.parts {
		if t.parts[i].metric {
			return i
		}
	}
	return len(t.parts)
}

// tail is the text after {metric}.
func (t *fieldTemplate) tail() string {
	var b strings.Builder
	for _, p := range t.parts[t.metricAt()+1:] {
		b.WriteString(p.literal)
	}
	return b.String()
}

// uses reports whether any placeholder names field (dotted).
func (t *fieldTemplate) uses(field string) bool {
	for _, p := range t.parts {
		for _, alt := range p.alts {
			if strings.Join(alt, ".") == field {
				return true
			}
		}
	}
	return false
}
