package router

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

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
	// Headers must all be present on the record with exactly these values.
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
	done  bool
	value string
	ok    bool
}

func (t *msgType) get(value []byte) (string, bool) {
	if !t.done {
		t.value, t.ok = messageType(value)
		t.done = true
	}
	return t.value, t.ok
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
		hv, ok := msg.Header(k)
		if !ok || string(hv) != v {
			return false
		}
	}
	if m.Type != "" {
		t, ok := typ.get(msg.Value)
		if !ok || t != m.Type {
			return false
		}
	}
	return true
}

// messageType returns the top-level "type" string of a JSON object.
func messageType(value []byte) (string, bool) {
	if len(bytes.TrimSpace(value)) == 0 || bytes.TrimSpace(value)[0] != '{' {
		return "", false
	}
	var env struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(value, &env); err != nil {
		return "", false
	}
	return env.Type, env.Type != ""
}
