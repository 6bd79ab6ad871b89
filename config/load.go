package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"

	"github.com/shovel-metrics/shovel/configs"
	"github.com/shovel-metrics/shovel/internal/limitedfile"
	"github.com/shovel-metrics/shovel/router/consul"
)

// Load reads the file at path, or the built-in default when path is empty,
// applies SHOVEL_* environment variables and fills defaults. It checks the
// file's shape (unknown keys, wrong types, names that collide) and reports
// every such problem at once, but not the file's meaning: Check does all
// of it, command-line overrides included.
//
// The returned Config is usable (for Check and Validate) whenever it is not
// nil, even with an error: keys that failed to decode keep their defaults.
func Load(path string) (*Config, error) {
	data := configs.Default
	if path != "" {
		var err error
		if data, err = limitedfile.Read(path, MaxConfigBytes); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	var ps problems
	raw, err := parseYAML(data, &ps)
	if err != nil {
		if path == "" {
			return nil, fmt.Errorf("config: built-in default: %w", err)
		}
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	cfg := defaults()
	cfg.env, cfg.envUnused = applyEnv(raw, os.Environ(), &ps)
	n := len(ps)
	ps.addErr(decodeConfig(raw, cfg))
	for _, p := range ps[n:] {
		cfg.undecodable = append(cfg.undecodable, p.Key)
	}
	cfg.normalize()
	ps.addErr(cfg.resolveSecrets())
	return cfg, ps.err(cfg.env, nil)
}

// Check loads path, applies the command-line overrides o and checks
// everything — the file's shape, its meaning, every decoder's and output's
// own keys — without any I/O. It reports every problem at once, one per
// line, each naming its key (and the SHOVEL_* variable that set it, if one
// did). The Config is nil only when the file could not be read or parsed.
func Check(path string, o Overrides) (*Config, error) {
	c, err := Load(path)
	if c == nil {
		return nil, err
	}
	var ps problems
	ps.addErr(err)
	for _, p := range ps {
		p.fromDecode = true
	}
	ps.addErr(c.Apply(o))
	ps.addErr(c.validate())
	return c, ps.err(c.env, c.undecodable)
}

func defaults() *Config {
	return &Config{
		Kafka:           Kafka{Group: DefaultGroup, Start: DefaultStart},
		Consul:          consul.DefaultConfig(),
		Log:             Log{Level: "info", Format: "text"},
		Timestamps:      Timestamps{MaxAge: DefaultMaxAge, MaxFuture: DefaultMaxFuture, OutOfWindow: "reject"},
		HTTP:            HTTP{Address: DefaultHTTPAddress},
		SelfMetrics:     SelfMetrics{Prefix: DefaultSelfMetricsPrefix},
		ShutdownTimeout: DefaultShutdownTimeout,
		DeadLetter:      DeadLetter{UnreadyAfter: DefaultDeadLetterUnreadyAfter},
		Limits:          DefaultLimits(),
	}
}

// parseYAML reads a YAML document into maps whose keys are folded to lower
// case: names (of outputs, decoders) and keys are case-insensitive. Two keys
// of one map that differ only in case are a problem naming both, not a
// silent merge.
func parseYAML(data []byte, ps *problems) (map[string]any, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	switch folded := fold(doc, "", ps).(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return folded, nil
	default:
		return nil, fmt.Errorf("expected a map of sections (kafka:, routes:, outputs: …), got %s", describeValue(doc))
	}
}

func fold(v any, path string, ps *problems) any {
	switch x := v.(type) {
	case map[string]any:
		return foldMap(x, path, ps)
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, v := range x {
			m[fmt.Sprint(k)] = v
		}
		return foldMap(m, path, ps)
	case []any:
		for i := range x {
			x[i] = fold(x[i], fmt.Sprintf("%s[%d]", path, i), ps)
		}
		return x
	default:
		return v
	}
}

func foldMap(m map[string]any, path string, ps *problems) map[string]any {
	keys := sortedKeys(m)
	out := make(map[string]any, len(m))
	orig := make(map[string]string, len(m))
	for _, k := range keys {
		lk := strings.ToLower(k)
		if first, dup := orig[lk]; dup {
			*ps = append(*ps, &Problem{Key: joinKey(path, k), fromDecode: true,
				Msg: fmt.Sprintf("same name as %s (keys and names are case-insensitive): rename one", joinKey(path, first))})
			continue
		}
		orig[lk] = k
		out[lk] = fold(m[k], joinKey(path, lk), ps)
	}
	return out
}

// decodeConfig decodes the file's tree into cfg a piece at a time — each
// section, each entry of outputs: and decoders:, each route — so that one
// value of the wrong type leaves the rest decoded and checkable, and only
// its own key undecided.
func decodeConfig(raw map[string]any, cfg *Config) error {
	var errs []error
	v := reflect.ValueOf(cfg).Elem()
	fields := map[string]int{}
	for i := 0; i < configType.NumField(); i++ {
		if name, _, _ := strings.Cut(configType.Field(i).Tag.Get("mapstructure"), ","); name != "" {
			fields[name] = i
		}
	}
	for _, key := range sortedKeys(raw) {
		i, ok := fields[key]
		if !ok {
			errs = append(errs, &Problem{Key: key, fromDecode: true,
				Msg: fmt.Sprintf("unknown key (known keys here: %s)", strings.Join(sortedKeys(fields), ", "))})
			continue
		}
		f := v.Field(i)
		switch x := raw[key].(type) {
		case map[string]any:
			if f.Kind() == reflect.Map && deref(f.Type().Elem()).Kind() == reflect.Struct {
				if f.IsNil() {
					f.Set(reflect.MakeMap(f.Type()))
				}
				for _, name := range sortedKeys(x) {
					e := reflect.New(f.Type().Elem())
					if err := decodeStrict(x[name], e.Interface(), key+"."+name, nil); err != nil {
						errs = append(errs, err)
					}
					f.SetMapIndex(reflect.ValueOf(name), e.Elem())
				}
				continue
			}
		case []any:
			if f.Kind() == reflect.Slice && deref(f.Type().Elem()).Kind() == reflect.Struct {
				f.Set(reflect.MakeSlice(f.Type(), len(x), len(x)))
				for j := range x {
					if err := decodeStrict(x[j], f.Index(j).Addr().Interface(), fmt.Sprintf("%s[%d]", key, j), nil); err != nil {
						errs = append(errs, err)
					}
				}
				continue
			}
		}
		if err := decodeStrict(raw[key], f.Addr().Interface(), key, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// decodeStrict decodes in into out. Every key that out has no field for is
// a problem naming its full path and the keys that exist there (extraKnown
// adds keys that another layer reads, such as the router's keys of an
// output); every value of the wrong type is a problem naming the key, what
// was expected and what was found.
func decodeStrict(in any, out any, prefix string, extraKnown []string) error {
	var md mapstructure.Metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:   out,
		Metadata: &md,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationHook,
			mapstructure.StringToSliceHookFunc(","),
			byteSizeHook,
		),
	})
	if err != nil {
		return err
	}
	var ps problems
	err = dec.Decode(in)
	if err != nil {
		list := []error{err}
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			list = leaves(joined.(error))
		}
		for _, e := range list {
			ps = append(ps, decodeProblem(e, prefix))
		}
		// mapstructure stops listing unused keys at a wrong type: find
		// them from the schema, so a file's typos show up in the same run.
		md.Unused = unusedKeys(in, reflect.TypeOf(out), "")
	}
	sort.Strings(md.Unused)
	for _, key := range md.Unused {
		full := joinKey(prefix, key)
		known := knownKeys(reflect.TypeOf(out), mapKeyRE.ReplaceAllString(key, ".$1"))
		if !strings.Contains(key, ".") && !strings.Contains(key, "[") {
			known = append(known, extraKnown...)
			sort.Strings(known)
		}
		msg := "unknown key"
		if len(known) > 0 {
			msg = fmt.Sprintf("unknown key (known keys here: %s)", strings.Join(known, ", "))
			last := key[strings.LastIndexAny(key, ".]")+1:]
			if guess := closest(last, known); guess != "" {
				msg += "; did you mean " + guess + "?"
			}
		}
		ps = append(ps, &Problem{Key: full, Msg: msg, fromDecode: true})
	}
	if len(ps) == 0 {
		return nil
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// unusedKeys lists the keys of the raw tree in that type t has no field
// for, in mapstructure's notation (outputs[g].adress, routes[0].x).
func unusedKeys(in any, t reflect.Type, prefix string) []string {
	t = deref(t)
	var out []string
	switch t.Kind() {
	case reflect.Struct:
		m, ok := in.(map[string]any)
		if !ok {
			return nil
		}
		fields := map[string]reflect.Type{}
		structFields(t, fields)
		if hasRemain(t) {
			return nil
		}
		for _, k := range sortedKeys(m) {
			ft, ok := fields[k]
			if !ok {
				out = append(out, joinRaw(prefix, k))
				continue
			}
			out = append(out, unusedKeys(m[k], ft, joinRaw(prefix, k))...)
		}
	case reflect.Map:
		m, ok := in.(map[string]any)
		if !ok {
			return nil
		}
		for _, k := range sortedKeys(m) {
			out = append(out, unusedKeys(m[k], t.Elem(), prefix+"["+k+"]")...)
		}
	case reflect.Slice:
		list, ok := in.([]any)
		if !ok {
			return nil
		}
		for i, x := range list {
			out = append(out, unusedKeys(x, t.Elem(), fmt.Sprintf("%s[%d]", prefix, i))...)
		}
	}
	return out
}

func joinRaw(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// closest returns the known key nearest to a misspelt one: at most two
// edits away (a letter left out, added, changed or two swapped), else "".
func closest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// decodeProblem turns one of mapstructure's errors into a Problem that
// says what was expected in words, and shows the value found.
func decodeProblem(e error, prefix string) *Problem {
	p := &Problem{Key: prefix, Msg: e.Error(), fromDecode: true}
	var de *mapstructure.DecodeError
	if !errors.As(e, &de) {
		return p
	}
	p.Key = joinKey(prefix, de.Name())
	inner := errors.Unwrap(de)
	var ut *mapstructure.UnconvertibleTypeError
	var pe *mapstructure.ParseError
	switch {
	case errors.As(inner, &ut):
		p.Msg = fmt.Sprintf("expected %s, got %s", describeType(ut.Expected.Type()), describeValue(ut.Value))
	case errors.As(inner, &pe):
		p.Msg = fmt.Sprintf("expected %s, got %s", describeType(pe.Expected.Type()), describeValue(pe.Value))
	default:
		p.Msg = strings.ReplaceAll(inner.Error(), "interface {}", "any")
	}
	return p
}

var durationType = reflect.TypeOf(time.Duration(0))

// durationHook reads durations as Go writes them (30s, 1m30s, 500ms). A
// bare number is refused rather than read as nanoseconds: `30` almost
// always meant seconds, and 30ns silently breaks a timeout.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration: write a number with a unit, as in 30s, 500ms, 5m or 1h", v)
		}
		return d, nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		f := reflect.ValueOf(v).Convert(reflect.TypeOf(float64(0))).Float()
		if f == 0 {
			return time.Duration(0), nil
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%v is not a duration: write a number with a unit, as in 30s", v)
		}
		return nil, fmt.Errorf("%v has no unit: write %vs for seconds (or ms, m, h)", v, v)
	case time.Duration:
		return v, nil
	}
	return data, nil
}

// describeType says in words what a Go type holds, for error messages.
func describeType(t reflect.Type) string {
	t = deref(t)
	switch {
	case t == durationType:
		return "a duration (30s, 5m)"
	case t.Kind() == reflect.Map && deref(t.Elem()).Kind() == reflect.Struct:
		return "a map of names to settings (name: {key: value})"
	case t.Kind() == reflect.Map || t.Kind() == reflect.Struct:
		return "a map (key: value)"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "an integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	}
	return t.String()
}

// describeValue says what a decoded YAML value is, showing scalars.
func describeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a map"
	case string:
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice:
		return "a list"
	case reflect.Map:
		return "a map"
	}
	return fmt.Sprint(v)
}

// mapKeyRE finds mapstructure's map-key notation, outputs[graphite], which
// shovel writes as outputs.graphite (list indexes, routes[0], stay).
var mapKeyRE = regexp.MustCompile(`\[([^\]0-9][^\]]*)\]`)

func joinKey(prefix, key string) string {
	key = mapKeyRE.ReplaceAllString(key, ".$1")
	if prefix == "" {
		return key
	}
	if key == "" {
		return prefix
	}
	if strings.HasPrefix(key, "[") {
		return prefix + key
	}
	return prefix + "." + key
}

// knownKeys walks t along the dotted key path of an unknown key and returns
// the mapstructure keys of the struct that should have held it.
func knownKeys(t reflect.Type, key string) []string {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		t = deref(t)
		if i := strings.IndexByte(p, '['); i >= 0 {
			p = p[:i]
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByTag(t, p)
			if !ok {
				return nil
			}
			t = f.Type
		case reflect.Map:
			t = t.Elem()
		default:
			return nil
		}
		if t = deref(t); t.Kind() == reflect.Slice {
			t = t.Elem()
		}
	}
	t = deref(t)
	if t.Kind() == reflect.Map {
		t = deref(t.Elem())
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	names := tagNames(t)
	sort.Strings(names)
	return names
}

// tagNames lists a struct's mapstructure keys, those of squashed embedded
// structs included (plugins share keys that way).
func tagNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		switch {
		case opts == "squash" && deref(t.Field(i).Type).Kind() == reflect.Struct:
			names = append(names, tagNames(deref(t.Field(i).Type))...)
		case name != "" && name != "-":
			names = append(names, name)
		}
	}
	return names
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		tag, opts, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		if opts == "squash" && deref(t.Field(i).Type).Kind() == reflect.Struct {
			if f, ok := fieldByTag(deref(t.Field(i).Type), name); ok {
				return f, true
			}
			continue
		}
		if tag == name {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// routerOutputKeys are the keys of an output that the router reads; all
// others belong to the output's kind.
var routerOutputKeys = []string{"kind", "fallback", "batch_size", "flush_interval", "queue_size"}

// pluginDecoder returns the DecodeConfig a plugin calls to read its own
// keys from opts, strictly, with errors naming the full key path; known
// lists the keys another layer reads beside the plugin's own.
func pluginDecoder(opts map[string]any, prefix string, known []string) func(into any) error {
	return func(into any) error {
		if opts == nil {
			return nil
		}
		return decodeStrict(opts, into, prefix, known)
	}
}

// pluginErrorLines turns a plugin's error ("carbon-pickle: outputs.g.adress:
// unknown key", "json: metrics[0]: bad") into problems at full keys under
// prefix, without the plugin's own prefixes repeating the key.
func pluginErrorLines(err error, prefix string, ps *problems) {
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if i := strings.Index(line, prefix); i >= 0 && (i == 0 || line[i-1] == ' ') {
			rest := line[i+len(prefix):]
			if rest == "" || rest[0] == '.' || rest[0] == '[' || rest[0] == ':' {
				key, msg, _ := strings.Cut(line[i:], ": ")
				ps.add(key, msg)
				continue
			}
		}
		// Strip "kind: " and "config: " prefixes that are not keys.
		for {
			head, rest, ok := strings.Cut(line, ": ")
			if !ok || !(head == "config" || strings.Contains(head, "-") || isPluginName(head)) {
				break
			}
			line = rest
		}
		if key, msg, ok := strings.Cut(line, ": "); ok && lineKeyRE.MatchString(key) {
			ps.add(joinKey(prefix, key), msg)
			continue
		}
		ps.add(prefix, line)
	}
}
