package config

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/outputs"
	"github.com/shovel-metrics/shovel/router/metric"
)

// EnvPrefix starts every variable that overrides a key of the file.
const EnvPrefix = "SHOVEL_"

// EnvName returns the variable that overrides key (kafka.workers,
// outputs.graphite.address, routes[0].decoder): SHOVEL_ and the key's path
// in upper case, with every character that is not a letter or a digit
// written as '_' (SHOVEL_KAFKA_WORKERS, SHOVEL_OUTPUTS_GRAPHITE_ADDRESS,
// SHOVEL_ROUTES_0_DECODER). That is the one naming rule; librdkafka
// settings follow it too (SHOVEL_KAFKA_SETTINGS_SASL_PASSWORD sets
// kafka.settings."sasl.password").
func EnvName(key string) string { return EnvPrefix + envWord(key) }

func envWord(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return strings.Trim(strings.ReplaceAll(string(b), "__", "_"), "_")
}

var configType = reflect.TypeOf(Config{})

// applyEnv writes every SHOVEL_* variable of environ over the key it names
// in raw. A variable names a key by the rule of EnvName, read against the
// schema (the Config struct and each plugin's own config) and the names
// the file defines; a list takes a comma-separated value. It returns the
// keys it set, each with its variable, and the variables that name no key.
func applyEnv(raw map[string]any, environ []string, ps *problems) (map[string]string, []string) {
	set := map[string]string{}
	var unused []string
	sort.Strings(environ)
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || len(name) == len(EnvPrefix) {
			continue
		}
		t, ok := resolveEnv(configType, raw, strings.ToUpper(name[len(EnvPrefix):]), "", nil)
		if !ok {
			unused = append(unused, name)
			continue
		}
		v, err := envValue(t.leaf, val)
		if err == nil {
			_, err = setIn(raw, t.path, v)
		}
		if err != nil {
			*ps = append(*ps, &Problem{Key: t.key, Env: name, Msg: err.Error(), fromDecode: true})
			continue
		}
		set[t.key] = name
	}
	return set, unused
}

// envTarget is the key a variable names.
type envTarget struct {
	key  string
	path []any // map keys (string) and list indexes (int) into the raw tree
	leaf reflect.Type
}

func resolveEnv(t reflect.Type, node any, rest, key string, path []any) (envTarget, bool) {
	if t != nil {
		t = deref(t)
	}
	if rest == "" {
		return envTarget{key: key, path: path, leaf: t}, true
	}
	m, _ := node.(map[string]any)
	tryKeys := func(keys []string, elem func(k string) reflect.Type) (envTarget, bool) {
		sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
		for _, k := range keys {
			n := envWord(k)
			if n == "" {
				continue
			}
			if rest == n || strings.HasPrefix(rest, n+"_") {
				sub := strings.TrimPrefix(strings.TrimPrefix(rest, n), "_")
				if r, ok := resolveEnv(elem(k), m[k], sub, joinKey(key, k), append(append([]any(nil), path...), k)); ok {
					return r, true
				}
			}
		}
		return envTarget{}, false
	}
	if t == nil { // a plugin key shovel has no schema for: only keys in the file
		return tryKeys(sortedKeys(m), func(string) reflect.Type { return nil })
	}
	switch t.Kind() {
	case reflect.Struct:
		fields := map[string]reflect.Type{}
		structFields(t, fields)
		if r, ok := tryKeys(sortedKeys(fields), func(k string) reflect.Type { return fields[k] }); ok {
			return r, true
		}
		if hasRemain(t) {
			kind, _ := m["kind"].(string)
			if pt := pluginType(t, kind); pt != nil {
				return resolveEnv(pt, node, rest, key, path)
			}
			if r, ok := tryKeys(sortedKeys(m), func(string) reflect.Type { return nil }); ok {
				return r, true
			}
			k := strings.ToLower(rest)
			return envTarget{key: joinKey(key, k), path: append(append([]any(nil), path...), k)}, true
		}
	case reflect.Map:
		if r, ok := tryKeys(sortedKeys(m), func(string) reflect.Type { return t.Elem() }); ok {
			return r, true
		}
		switch t.Elem().Kind() {
		case reflect.Interface: // librdkafka settings: their names are dotted
			k := strings.ToLower(strings.ReplaceAll(rest, "_", "."))
			return envTarget{key: joinKey(key, k), path: append(append([]any(nil), path...), k)}, true
		case reflect.String:
			k := strings.ToLower(rest)
			return envTarget{key: joinKey(key, k), path: append(append([]any(nil), path...), k), leaf: t.Elem()}, true
		}
	case reflect.Slice:
		digits, sub, _ := strings.Cut(rest, "_")
		i, err := strconv.Atoi(digits)
		list, _ := node.([]any)
		if err != nil || i < 0 || i >= len(list) {
			return envTarget{}, false
		}
		return resolveEnv(t.Elem(), list[i], sub, fmt.Sprintf("%s[%d]", key, i), append(append([]any(nil), path...), i))
	}
	return envTarget{}, false
}

// structFields maps t's keys to their types, squashed structs included.
func structFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		switch {
		case opts == "squash" && deref(f.Type).Kind() == reflect.Struct:
			structFields(deref(f.Type), out)
		case name != "" && name != "-" && f.IsExported():
			out[name] = f.Type
		}
	}
}

func hasRemain(t reflect.Type) bool {
	for i := 0; i < t.NumField(); i++ {
		if _, opts, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ","); opts == "remain" {
			return true
		}
	}
	return false
}

var errSchema = errors.New("schema only")

// pluginType returns the config struct type the plugin of this kind
// decodes its keys into. It asks the plugin's factory, which decodes before
// doing anything else, with a DecodeConfig that records the type and stops
// there; factories do no I/O.
func pluginType(holder reflect.Type, kind string) (t reflect.Type) {
	capture := func(into any) error {
		t = reflect.TypeOf(into)
		return errSchema
	}
	env := metric.Env{Name: "schema", Logger: slog.New(slog.DiscardHandler)}
	defer func() { _ = recover() }() // a factory that does more than decode first is not worth a crash
	switch holder {
	case reflect.TypeOf(Output{}):
		if f, err := outputs.Lookup(kind); err == nil {
			_, _ = f(capture, env)
		}
	case reflect.TypeOf(Decoder{}):
		if f, err := decoders.Lookup(kind); err == nil {
			_, _ = f(capture, env)
		}
	}
	return t
}

// envValue turns a variable's text into what the YAML would hold for a key
// of type t: a string stays a string, a list is split at commas, anything
// else is read as a YAML scalar (4, true, 30s).
func envValue(t reflect.Type, s string) (any, error) {
	if t != nil {
		t = deref(t)
	}
	if t != nil && t.Kind() == reflect.String {
		return s, nil
	}
	if t != nil && t.Kind() == reflect.Slice {
		switch deref(t.Elem()).Kind() {
		case reflect.Struct, reflect.Map, reflect.Slice:
		default:
			var out []any
			for _, p := range strings.Split(s, ",") {
				v, err := envValue(t.Elem(), strings.TrimSpace(p))
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			return out, nil
		}
	}
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		if t == nil || t.Kind() == reflect.Interface {
			return s, nil
		}
		return nil, fmt.Errorf("cannot read the value as YAML: %v", err)
	}
	if t == nil || t.Kind() == reflect.Interface {
		switch v.(type) {
		case map[string]any, []any, nil:
			return s, nil // an unknown key: keep the text
		}
	}
	return fold(v, "", &problems{}), nil
}

// setIn sets the value at path in node, creating maps on the way.
func setIn(node any, path []any, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	switch seg := path[0].(type) {
	case string:
		m, ok := node.(map[string]any)
		if !ok {
			if node != nil {
				return nil, fmt.Errorf("the file has %s here, not a map", describeValue(node))
			}
			m = map[string]any{}
		}
		child, err := setIn(m[seg], path[1:], v)
		if err != nil {
			return nil, err
		}
		m[seg] = child
		return m, nil
	case int:
		list := node.([]any) // resolveEnv checked the index
		child, err := setIn(list[seg], path[1:], v)
		if err != nil {
			return nil, err
		}
		list[seg] = child
		return list, nil
	}
	return nil, fmt.Errorf("bad path %v", path)
}

// EnvUnused lists the SHOVEL_* variables that name no key of the config
// (a typo, or a variable set for something else); they are ignored.
func (c *Config) EnvUnused() []string { return c.envUnused }
