package config

import (
	"errors"
	"regexp"
	"strings"
)

// Problem is one mistake in a configuration, at one key. A config with
// several mistakes reports all of them at once, one Problem per line, so
// that an operator fixes a file in one run of `shovel config check`.
type Problem struct {
	// Key is the dotted path of the offending key, as written in the
	// file: outputs.graphite.address, routes[0].decoder. Empty when the
	// problem is the file as a whole.
	Key string
	// Env is the SHOVEL_* variable that set the key, when one did, or the
	// command-line flag (starting with "-") that overrode it.
	Env string
	Msg string
	// fromDecode marks type errors and unknown keys, found while decoding.
	fromDecode bool
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	if p.Env != "" {
		b.WriteString(" (set by ")
		if !strings.HasPrefix(p.Env, "-") {
			b.WriteString("$")
		}
		b.WriteString(p.Env)
		b.WriteString(")")
	}
	return b.String()
}

// problems collects Problems in the order they are found.
type problems []*Problem

func (ps *problems) add(key, msg string) {
	*ps = append(*ps, &Problem{Key: key, Msg: msg})
}

// lineKeyRE is what a key looks like at the start of an error line.
var lineKeyRE = regexp.MustCompile(`^[a-z0-9_\-\[\]]+(\.[A-Za-z0-9_\-\[\]]+)*$`)

// addErr adds every line of err as a Problem. Lines from other packages
// ("consul: address …") are split at their first ": " when what precedes
// it looks like a key.
func (ps *problems) addErr(err error) {
	if err == nil {
		return
	}
	for _, e := range leaves(err) {
		var p *Problem
		if errors.As(e, &p) {
			*ps = append(*ps, p)
			continue
		}
		for _, line := range strings.Split(e.Error(), "\n") {
			if line = strings.TrimSpace(line); line == "" {
				continue
			}
			key, msg, ok := strings.Cut(line, ": ")
			if !ok || !lineKeyRE.MatchString(key) {
				key, msg = "", line
			}
			ps.add(key, msg)
		}
	}
}

// leaves flattens errors.Join trees.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

// under reports whether key is prefix itself or a key inside it.
func under(key, prefix string) bool {
	if prefix == "" || !strings.HasPrefix(key, prefix) {
		return false
	}
	rest := key[len(prefix):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// err returns the problems as one error, one line each: duplicates
// dropped, the SHOVEL_* variable that set a key named, and problems that
// follow from a key that could not be decoded at all left out (a wrong
// type is reported once, not again as an empty or invalid value).
func (ps problems) err(env map[string]string, undecodable []string) error {
	seen := map[string]bool{}
	var errs []error
	for _, p := range ps {
		if p.Env == "" {
			p.Env = envFor(env, p.Key)
		}
		skip := false
		for _, k := range undecodable {
			if under(p.Key, k) && !p.decode() {
				skip = true
			}
		}
		line := p.Error()
		if skip || seen[line] {
			continue
		}
		seen[line] = true
		errs = append(errs, p)
	}
	return errors.Join(errs...)
}

// decode reports whether p comes from decoding (a type error or an unknown
// key), which is never hidden.
func (p *Problem) decode() bool { return p.fromDecode }

// envFor returns the variable that set key or the key holding it.
func envFor(env map[string]string, key string) string {
	for k, v := range env {
		if under(key, k) {
			return v
		}
	}
	return ""
}
