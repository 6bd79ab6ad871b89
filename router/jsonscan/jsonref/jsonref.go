// Package jsonref decodes JSON with encoding/json into a tree that keeps
// object members in document order, duplicates included. It is the
// reference that the differential tests of jsonscan and of the decoders
// compare against; production code does not use it.
package jsonref

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Member is one member of an object.
type Member struct {
	Key   string
	Value any
}

// Object is a JSON object's members in document order.
type Object []Member

// Decode decodes the single JSON value in data. Objects become Object,
// arrays []any, numbers json.Number (the literal token text), strings
// string, booleans bool and null nil. Invalid UTF-8 and unpaired surrogates
// become U+FFFD, as encoding/json makes them.
func Decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("jsonref: data after the top-level value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := Object{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, Member{Key: k.(string), Value: v})
		}
		_, err := dec.Token() // '}'
		return obj, err
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token() // ']'
		return arr, err
	}
	return tok, nil
}
