package router

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/shovel-metrics/shovel/router/metric"
)

// Rule is one per-sample step of a route, applied in order before the
// samples go to the route's outputs: keep or drop by path or tag, rewrite
// the path, change its tags (tagrules.go). Path rules see a tagged path's
// name only.
type Rule struct {
	// Exactly one of these is set.
	Keep        string // keep only paths matching this pattern
	Drop        string // drop paths matching this pattern
	Rewrite     *Rewrite
	AddPrefix   string // prepend (a "." is added between if missing)
	StripPrefix string // remove when present
	KeepTag     string // keep only samples whose tags satisfy this expression
	DropTag     string // drop samples whose tags satisfy this expression
	AddTag      string // "key=value": set the tag
	RemoveTag   string // remove the tag ("*": all of them)
	RenameTag   *RenameTag
	TagToPath   *TagToPath
	PathToTag   *PathToTag

	re               *regexp.Regexp // compiled Keep/Drop/Rewrite pattern
	tagExpr          TagExpr        // compiled KeepTag/DropTag
	addKey, addValue string
}

// Rewrite replaces the parts of a path that match a regular expression;
// Replace may use $1-style references (regexp.Expand syntax).
type Rewrite struct {
	Match   string
	Replace string
}

// CompileRules checks and compiles rules. A pattern starting with "^" is a
// regular expression; anything else is a Graphite glob, where * and ?
// stay within one path segment, {a,b} is an alternation and [...] a class.
func CompileRules(rules []Rule) ([]Rule, error) {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		set := 0
		for _, s := range []string{r.Keep, r.Drop, r.AddPrefix, r.StripPrefix} {
			if s != "" {
				set++
			}
		}
		if r.Rewrite != nil {
			set++
		}
		tagSet, err := compileTagRule(&r)
		if set+tagSet != 1 {
			return nil, fmt.Errorf("rules[%d]: exactly one of keep, drop, rewrite, add_prefix, strip_prefix, keep_tag, drop_tag, add_tag, remove_tag, rename_tag, tag_to_path, path_to_tag must be set", i)
		}
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		switch {
		case r.Keep != "":
			r.re, err = compilePattern(r.Keep)
		case r.Drop != "":
			r.re, err = compilePattern(r.Drop)
		case r.Rewrite != nil:
			if r.Rewrite.Match == "" {
				return nil, fmt.Errorf("rules[%d].rewrite.match: must not be empty", i)
			}
			r.re, err = regexp.Compile(r.Rewrite.Match)
		case r.AddPrefix != "":
			r.AddPrefix = strings.TrimSuffix(r.AddPrefix, ".") + "."
		}
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		out[i] = r
	}
	return out, nil
}

func compilePattern(p string) (*regexp.Regexp, error) {
	if strings.HasPrefix(p, "^") {
		return regexp.Compile(p)
	}
	return regexp.Compile(globToRegexp(p))
}

// globToRegexp translates a Graphite glob into an anchored regular expression.
func globToRegexp(glob string) string {
	var b strings.Builder
	b.WriteByte('^')
	inClass, inAlt := false, false
	for _, c := range glob {
		switch {
		case inClass:
			if c == ']' {
				inClass = false
			}
			if c == '\\' {
				b.WriteString(`\\`)
				continue
			}
			b.WriteRune(c)
		case c == '*':
			b.WriteString(`[^.]*`)
		case c == '?':
			b.WriteString(`[^.]`)
		case c == '[':
			inClass = true
			b.WriteByte('[')
		case c == '{':
			inAlt = true
			b.WriteString(`(?:`)
		case c == '}' && inAlt:
			inAlt = false
			b.WriteByte(')')
		case c == ',' && inAlt:
			b.WriteByte('|')
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteByte('$')
	return b.String()
}

// applyRules runs rules over samples in place and returns the samples that
// remain. Dropped samples are filtering, not rejection: they are not counted
// as bad input.
//
// What a rule adds to a path (a prefix, a tag, a rewrite's expansion) is
// charged to res's output budget (res may be nil in tests): the decoder
// was held to the budget, and rules run after it. An add_prefix of 200
// bytes multiplied a message of short names seven times past its budget
// before. Past the budget, the message is rejected whole (the error).
func applyRules(rules []Rule, samples []metric.Sample, res *metric.Result) ([]metric.Sample, error) {
	if len(rules) == 0 {
		return samples, nil
	}
	out := samples[:0]
	var ts *metric.TagSet // scratch of the tag rules, when there are any
next:
	for _, s := range samples {
		before := len(s.Path)
		for i := range rules {
			r := &rules[i]
			switch {
			case r.Keep != "":
				if !r.re.MatchString(pathName(s.Path)) {
					continue next
				}
			case r.Drop != "":
				if r.re.MatchString(pathName(s.Path)) {
					continue next
				}
			case r.Rewrite != nil:
				name := pathName(s.Path)
				s.Path = r.re.ReplaceAllString(name, r.Rewrite.Replace) + s.Path[len(name):]
			case r.AddPrefix != "":
				s.Path = r.AddPrefix + s.Path
			case r.StripPrefix != "":
				s.Path = strings.TrimPrefix(s.Path, r.StripPrefix)
			case r.KeepTag != "":
				if !r.tagExpr.Matches(s.Path) {
					continue next
				}
			case r.DropTag != "":
				if r.tagExpr.Matches(s.Path) {
					continue next
				}
			default:
				if ts == nil {
					ts = new(metric.TagSet)
				}
				s.Path = applyTagRule(r, s.Path, ts)
			}
		}
		if grown := len(s.Path) - before; grown > 0 && res != nil {
			if err := res.Charge(grown); err != nil {
				return nil, err
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// pathName is the name of a tagged path, or the whole of a plain one.
func pathName(p string) string {
	if i := strings.IndexByte(p, ';'); i >= 0 {
		return p[:i]
	}
	return p
}

// rulesChangePaths reports whether any rule may change a path (rather than
// only keep or drop samples), which voids a decoder's metric.CheckedPaths.
func rulesChangePaths(rules []Rule) bool {
	for _, r := range rules {
		if r.Keep == "" && r.Drop == "" && r.KeepTag == "" && r.DropTag == "" {
			return true
		}
	}
	return false
}
