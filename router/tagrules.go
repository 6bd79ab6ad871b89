package router

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/shovel-metrics/shovel/router/metric"
)

// Rules that see Graphite tags (a tagged path is "name;key=value;...",
// see metric/tags.go). Path rules (keep, drop, rewrite, add_prefix,
// strip_prefix) see the name only, so that a glob written for flat names
// matches the same names tagged; these see the tags:
//
//	keep_tag: "devicetype=openolt"       # seriesByTag's expressions:
//	drop_tag: "port=~^nni-"              #   k=v, k!=v, k=~regexp, k!=~regexp
//	add_tag: "site=lab1"                 # set (or replace) a tag
//	remove_tag: serial_no                # "*" removes every tag
//	rename_tag: {from: device_id, to: device}
//	tag_to_path: {tag: device_id, segment: 1}   # voltha.PONStats.RxBytes;device_id=d1
//	                                            #   -> voltha.d1.PONStats.RxBytes
//	path_to_tag: {segment: 1, tag: device_id}   # and back
//
// A tag expression tests as seriesByTag does: "=" and "!=" compare whole
// values, "=~" and "!=~" match a regular expression at the start of the
// value (Python's re.match), and a missing tag has the empty value, so
// "k!=v" and "k!=~x" hold for samples without k. The key "name" is the
// metric name. Segments count from 0, negative ones from the end (-1 is
// the last, the metric); tag_to_path's segment is where the value lands.
// A tag rule that does not apply (no such tag, too few segments) leaves
// the sample as it is.

// TagExpr is one seriesByTag-style tag expression.
type TagExpr struct {
	Key    string
	Op     string // "=", "!=", "=~", "!=~"
	Value  string
	re     *regexp.Regexp
	negate bool
}

// ParseTagExpr parses "key=value", "key!=value", "key=~re" or "key!=~re".
func ParseTagExpr(s string) (TagExpr, error) {
	i := strings.IndexAny(s, "!=")
	if i <= 0 {
		return TagExpr{}, fmt.Errorf("tag expression %q: want key=value, key!=value, key=~regexp or key!=~regexp", s)
	}
	e := TagExpr{Key: s[:i]}
	rest := s[i:]
	for _, op := range []string{"!=~", "=~", "!=", "="} {
		if v, ok := strings.CutPrefix(rest, op); ok {
			e.Op, e.Value = op, v
			break
		}
	}
	if e.Op == "" || e.Key != metric.TagNameKey && !metric.ValidTagKey(e.Key) {
		return TagExpr{}, fmt.Errorf("tag expression %q: want key=value, key!=value, key=~regexp or key!=~regexp with a valid tag key", s)
	}
	e.negate = e.Op[0] == '!'
	if strings.HasSuffix(e.Op, "~") {
		re, err := regexp.Compile("^(?:" + e.Value + ")")
		if err != nil {
			return TagExpr{}, fmt.Errorf("tag expression %q: %w", s, err)
		}
		e.re = re
	}
	return e, nil
}

// Matches reports whether the tagged (or plain) path p satisfies e.
func (e *TagExpr) Matches(p string) bool {
	v := tagValue(p, e.Key)
	var ok bool
	if e.re != nil {
		ok = e.re.MatchString(v)
	} else {
		ok = v == e.Value
	}
	return ok != e.negate
}

// tagValue returns the value of key in p ("" when absent; the name for
// "name"), the last one when given twice (carbon keeps the last).
func tagValue(p, key string) string {
	name, tags := metric.SplitTagged(p)
	if key == metric.TagNameKey {
		return name
	}
	v := ""
	for tags != "" {
		seg, rest, _ := strings.Cut(tags, ";")
		if k, val, ok := strings.Cut(seg, "="); ok && k == key {
			v = val
		}
		tags = rest
	}
	return v
}

// RenameTag is a rule's rename_tag.
type RenameTag struct{ From, To string }

// TagToPath is a rule's tag_to_path: the tag's value becomes segment
// Segment of the name, and the tag goes.
type TagToPath struct {
	Tag     string
	Segment int
}

// PathToTag is a rule's path_to_tag: segment Segment of the name becomes
// the tag's value, and leaves the name.
type PathToTag struct {
	Segment int
	Tag     string
}

// compileTagRule checks the tag part of a rule (set says how many of its
// keys were set) and compiles it.
func compileTagRule(r *Rule) (set int, err error) {
	if r.KeepTag != "" {
		set++
		if r.tagExpr, err = ParseTagExpr(r.KeepTag); err != nil {
			return set, fmt.Errorf("keep_tag: %w", err)
		}
	}
	if r.DropTag != "" {
		set++
		if r.tagExpr, err = ParseTagExpr(r.DropTag); err != nil {
			return set, fmt.Errorf("drop_tag: %w", err)
		}
	}
	if r.AddTag != "" {
		set++
		k, v, ok := strings.Cut(r.AddTag, "=")
		if !ok || !metric.ValidTagKey(k) || !metric.ValidPath("x;"+k+"="+v) {
			return set, fmt.Errorf("add_tag: %q: want key=value as carbon takes it (no ;!^= or space in the key, no ; or space in the value, which does not start with ~)", r.AddTag)
		}
		r.addKey, r.addValue = k, v
	}
	if r.RemoveTag != "" {
		set++
		if r.RemoveTag != "*" && !metric.ValidTagKey(r.RemoveTag) {
			return set, fmt.Errorf("remove_tag: %q is not a tag key", r.RemoveTag)
		}
	}
	if r.RenameTag != nil {
		set++
		if !metric.ValidTagKey(r.RenameTag.From) || !metric.ValidTagKey(r.RenameTag.To) {
			return set, fmt.Errorf("rename_tag: from and to must be tag keys carbon accepts, got %q and %q", r.RenameTag.From, r.RenameTag.To)
		}
	}
	if r.TagToPath != nil {
		set++
		if !metric.ValidTagKey(r.TagToPath.Tag) {
			return set, fmt.Errorf("tag_to_path.tag: %q is not a tag key", r.TagToPath.Tag)
		}
	}
	if r.PathToTag != nil {
		set++
		if !metric.ValidTagKey(r.PathToTag.Tag) {
			return set, fmt.Errorf("path_to_tag.tag: %q is not a tag key", r.PathToTag.Tag)
		}
	}
	return set, nil
}

// isTagRule reports whether r changes tags (rather than filtering by them).
func (r *Rule) isTagRule() bool {
	return r.AddTag != "" || r.RemoveTag != "" || r.RenameTag != nil || r.TagToPath != nil || r.PathToTag != nil
}

// applyTagRule applies a tag-changing rule to p, returning the new path
// in carbon's normalized form (p itself when the rule does not apply).
// ts is scratch.
func applyTagRule(r *Rule, p string, ts *metric.TagSet) string {
	name, tags := metric.SplitTagged(p)
	ts.Reset()
	if tags != "" {
		ts.Parse(tags)
	}
	switch {
	case r.AddTag != "":
		ts.Delete(r.addKey)
		ts.Add(r.addKey, r.addValue)
	case r.RemoveTag == "*":
		if tags == "" {
			return p
		}
		return name
	case r.RemoveTag != "":
		if !ts.Delete(r.RemoveTag) {
			return p
		}
	case r.RenameTag != nil:
		v, ok := ts.Get(r.RenameTag.From)
		if !ok {
			return p
		}
		ts.Delete(r.RenameTag.From)
		ts.Delete(r.RenameTag.To)
		ts.Add(r.RenameTag.To, v)
	case r.TagToPath != nil:
		v, ok := ts.Get(r.TagToPath.Tag)
		if !ok {
			return p
		}
		ts.Delete(r.TagToPath.Tag)
		name = insertSegment(name, strings.ReplaceAll(v, ".", "_"), r.TagToPath.Segment)
	case r.PathToTag != nil:
		seg, rest, ok := cutSegment(name, r.PathToTag.Segment)
		if !ok {
			return p
		}
		ts.Delete(r.PathToTag.Tag)
		ts.Add(r.PathToTag.Tag, seg)
		name = rest
	}
	b := make([]byte, 0, len(p)+16)
	b = append(b, name...)
	return string(ts.AppendTo(b))
}

// insertSegment makes seg segment i of the dotted name (negative i
// counts from the end: -1 makes it the last).
func insertSegment(name, seg string, i int) string {
	segs := strings.Split(name, ".")
	n := len(segs) + 1
	if i < 0 {
		i += n
	}
	i = min(max(i, 0), n-1)
	segs = append(segs[:i], append([]string{seg}, segs[i:]...)...)
	return strings.Join(segs, ".")
}

// cutSegment returns segment i of name (negative from the end) and the
// name without it; false when there is no such segment, or it is the
// only one.
func cutSegment(name string, i int) (string, string, bool) {
	segs := strings.Split(name, ".")
	if i < 0 {
		i += len(segs)
	}
	if i < 0 || i >= len(segs) || len(segs) < 2 {
		return "", "", false
	}
	seg := segs[i]
	return seg, strings.Join(append(segs[:i:i], segs[i+1:]...), "."), true
}
