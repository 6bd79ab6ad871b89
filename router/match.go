package router

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

// Match selects messages for a route. Every condition that is set must hold;
// a Match with no condition matches every message (a catch-all route).
type Match struct {
	// Type is the message's top-level JSON "type" field.
	Type string
	// Topic is the Kafka topic: an exact name, or a regular expression when
	// it starts with "^" (the convention librdkafka uses for subscriptions).
	Topic string
	// Headers must all be present on the record with exactly these values;
	// names compare case-insensitively.
	Headers map[string]string

	topicRE *regexp.Regexp
}

// NewMatch compiles a Match, checking its topic pattern.
func NewMatch(typ, topic string, headers map[string]string) (Match, error) {
	m := Match{Type: typ, Topic: topic, Headers: headers}
	if strings.HasPrefix(topic, "^") {
		re, err := regexp.Compile(topic)
		if err != nil {
			return Match{}, fmt.Errorf("topic: %w", err)
		}
		m.topicRE = re
	}
	return m, nil
}

// msgType caches a message's "type" so that several routes can test it
// while the JSON is scanned at most once.
type msgType struct {
	done   bool
	raw    []byte // the type's bytes inside the message, when found by quickType
	value  string // the type, when found by the strict scanner
	reason string // why there is no type; "" when there is one
}

// is reports whether the message's type is typ, reading it at most once.
func (t *msgType) is(msg []byte, typ string) bool {
	if !t.done {
		t.done = true
		if raw, ok := quickType(msg); ok {
			t.raw = raw
		} else {
			t.value, t.reason = messageType(msg)
		}
	}
	if t.raw != nil {
		return string(t.raw) == typ // compared in place: no allocation
	}
	return t.reason == "" && t.value == typ
}

// quickType finds the type without scanning the whole message when
// "type" is the first member and its value a plain string (no escapes,
// no control characters, valid UTF-8): the shape every producer shovel
// serves writes. Anything else goes to the strict scanner. Trusting the
// rest of the message unread is safe because the route's decoder parses
// and checks all of it anyway.
func quickType(b []byte) ([]byte, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	const key = `"type"`
	if len(b)-i < len(key) || string(b[i:i+len(key)]) != key {
		return nil, false
	}
	i = skipSpace(b, i+len(key))
	if i >= len(b) || b[i] != ':' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	start := i + 1
	for j := start; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			if !utf8.Valid(b[start:j]) {
				return nil, false
			}
			return b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func (m *Match) matches(msg *metric.Message, typ *msgType) bool {
	if m.Topic != "" {
		if m.topicRE != nil {
			if !m.topicRE.MatchString(msg.Topic) {
				return false
			}
		} else if m.Topic != msg.Topic {
			return false
		}
	}
	for k, v := range m.Headers {
		if !hasHeader(msg, k, v) {
			return false
		}
	}
	if m.Type != "" && !typ.is(msg.Value, m.Type) {
		return false
	}
	return true
}

// hasHeader compares names case-insensitively: YAML config keys are folded
// to lower case on load, and header names are conventionally case-free.
func hasHeader(msg *metric.Message, name, value string) bool {
	for _, h := range msg.Headers {
		if strings.EqualFold(h.Key, name) && string(h.Value) == value {
			return true
		}
	}
	return false
}

// messageType returns the top-level "type" string of a JSON object, or the
// reason it has none: the reason is what a message no route matched is
// counted under, so that a broken producer shows up as invalid_json rather
// than as an unknown type.
func messageType(value []byte) (string, string) {
	t, err := jsonscan.TopLevelString(value, "type")
	switch {
	case err == nil:
		return t, ""
	case errors.Is(err, jsonscan.ErrTooDeep):
		return "", ReasonTooDeep
	case errors.Is(err, jsonscan.ErrSyntax):
		return "", metric.ReasonInvalidJSON
	default: // no "type", or not a string
		return "", metric.ReasonNoType
	}
}

// ReasonTooDeep counts messages nested deeper than the JSON scanner allows.
const ReasonTooDeep = "too_deep"
