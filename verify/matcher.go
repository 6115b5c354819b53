package verify

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Matcher operations. The names are goss's where goss has one.
const (
	opEqual            = "equal"             // Value: the found value converted to Value's type equals it
	opEqualElements    = "equal-elements"    // Args: same length, element i matches Args[i]
	opPatterns         = "have-patterns"     // Patterns: goss's line patterns ("foo", "!foo", "/re/", "!/re/")
	opHavePrefix       = "have-prefix"       // Value string
	opHaveSuffix       = "have-suffix"       // Value string
	opContainSubstring = "contain-substring" // Value string
	opMatchRegexp      = "match-regexp"      // Value string, a Go regexp
	opGT               = "gt"                // Value number
	opGE               = "ge"                // Value number
	opLT               = "lt"                // Value number
	opLE               = "le"                // Value number
	opHaveLen          = "have-len"          // Value number
	opNot              = "not"               // Args[0]
	opAnd              = "and"               // Args
	opOr               = "or"                // Args
	opContainElement   = "contain-element"   // Args[0]: some element matches it
	opContainElements  = "contain-elements"  // Args: each matches a distinct element
	opConsistOf        = "consist-of"        // Args: a one-to-one match with the elements
	opHaveKey          = "have-key"          // Args[0]: some key of a mapping matches it
	opHaveKeyWithValue = "have-key-with-value"
	// Value: the key (a string); Args[0]: what its value must match
	opSemver = "semver-constraint" // Value string: every version found satisfies it
)

// Matcher is one expectation about a probed value. It is plain data so that
// it can be built on the host and evaluated inside the instance.
type Matcher struct {
	Op string `json:"op"`
	// Value is a string, float64 or bool, depending on Op.
	Value    any        `json:"value,omitempty"`
	Patterns []string   `json:"patterns,omitempty"`
	Args     []*Matcher `json:"args,omitempty"`
}

// Match reports whether found satisfies m. found is what a probe returns: a
// bool, an int, a string or a []string, or for matching resources what the
// file wrote (float64, []any, map[string]any too). An error means the comparison could
// not be made (a number was expected and "abc" was found, a bad regexp).
func (m *Matcher) Match(found any) (bool, error) {
	switch m.Op {
	case opEqual:
		switch want := m.Value.(type) {
		case bool:
			got, ok := found.(bool)
			if !ok {
				return false, fmt.Errorf("expected a boolean, found %s", show(found))
			}
			return got == want, nil
		case float64:
			got, err := toNumber(found)
			return err == nil && got == want, err
		case string:
			return toString(found) == want, nil
		}
		return false, fmt.Errorf("equal: unexpected value %v", m.Value)
	case opPatterns:
		missing, err := missingPatterns(m.Patterns, toString(found))
		return err == nil && len(missing) == 0, err
	case opHavePrefix, opHaveSuffix, opContainSubstring, opMatchRegexp:
		want, _ := m.Value.(string)
		got := toString(found)
		switch m.Op {
		case opHavePrefix:
			return strings.HasPrefix(got, want), nil
		case opHaveSuffix:
			return strings.HasSuffix(got, want), nil
		case opContainSubstring:
			return strings.Contains(got, want), nil
		}
		re, err := regexp.Compile(want)
		if err != nil {
			return false, fmt.Errorf("match-regexp: %w", err)
		}
		return re.MatchString(got), nil
	case opGT, opGE, opLT, opLE:
		want, _ := m.Value.(float64)
		got, err := toNumber(found)
		if err != nil {
			return false, err
		}
		switch m.Op {
		case opGT:
			return got > want, nil
		case opGE:
			return got >= want, nil
		case opLT:
			return got < want, nil
		}
		return got <= want, nil
	case opHaveLen:
		want, _ := m.Value.(float64)
		switch v := found.(type) {
		case []string:
			return float64(len(v)) == want, nil
		case string:
			return float64(len(v)) == want, nil
		case []any:
			return float64(len(v)) == want, nil
		case map[string]any:
			return float64(len(v)) == want, nil
		}
		return false, fmt.Errorf("have-len: %s has no length", show(found))
	case opNot:
		if len(m.Args) != 1 {
			return false, fmt.Errorf("not: needs one matcher")
		}
		ok, err := m.Args[0].Match(found)
		return err == nil && !ok, err
	case opAnd:
		for _, a := range m.Args {
			ok, err := a.Match(found)
			if err != nil || !ok {
				return false, err
			}
		}
		return len(m.Args) > 0, nil
	case opOr:
		var firstErr error
		for _, a := range m.Args {
			ok, err := a.Match(found)
			if ok {
				return true, nil
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}
		return false, firstErr
	case opContainElement:
		if len(m.Args) != 1 {
			return false, fmt.Errorf("contain-element: needs one matcher")
		}
		for _, e := range toArray(found) {
			if ok, _ := m.Args[0].Match(e); ok {
				return true, nil
			}
		}
		return false, nil
	case opContainElements:
		elems := toArray(found)
		return matchAssignment(m.Args, elems) == len(m.Args), nil
	case opConsistOf:
		elems := toArray(found)
		return len(elems) == len(m.Args) && matchAssignment(m.Args, elems) == len(m.Args), nil
	case opEqualElements:
		elems := toArray(found)
		if len(elems) != len(m.Args) {
			return false, nil
		}
		for i, a := range m.Args {
			if ok, _ := a.Match(elems[i]); !ok {
				return false, nil
			}
		}
		return true, nil
	case opHaveKey, opHaveKeyWithValue:
		return m.matchKey(found)
	case opSemver:
		return matchSemver(toString(m.Value), found)
	}
	return false, fmt.Errorf("unknown matcher %q", m.Op)
}

// matchKey is have-key and have-key-with-value.
func (m *Matcher) matchKey(found any) (bool, error) {
	obj, ok := found.(map[string]any)
	if !ok {
		return false, fmt.Errorf("%s: expected a mapping, found %s", m.Op, show(found))
	}
	if len(m.Args) != 1 {
		return false, fmt.Errorf("%s: needs one matcher", m.Op)
	}
	if m.Op == opHaveKeyWithValue {
		v, ok := obj[toString(m.Value)]
		if !ok {
			return false, nil
		}
		return m.Args[0].Match(v)
	}
	for k := range obj {
		if ok, _ := m.Args[0].Match(k); ok {
			return true, nil
		}
	}
	return false, nil
}

// matchSemver reports whether every version found (one, or a list)
// satisfies the constraint, as goss's semver-constraint does.
func matchSemver(constraint string, found any) (bool, error) {
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return false, fmt.Errorf("semver-constraint: %w", err)
	}
	var versions []string
	switch v := found.(type) {
	case string:
		versions = []string{v}
	case []string, []any:
		versions = toArray(v)
	default:
		return false, fmt.Errorf("semver-constraint: expected a version or a list of versions, found %s", show(found))
	}
	if len(versions) == 0 {
		return false, fmt.Errorf("semver-constraint: no versions found")
	}
	for _, s := range versions {
		v, err := semver.NewVersion(s)
		if err != nil {
			return false, fmt.Errorf("semver-constraint: %q is not a semantic version", s)
		}
		if !c.Check(v) {
			return false, nil
		}
	}
	return true, nil
}

// matchAssignment returns the size of the largest one-to-one assignment of
// matchers to elements each matcher matches (Kuhn's augmenting paths), so
// that [root, root] does not pass on a single "root".
func matchAssignment(ms []*Matcher, elems []string) int {
	ok := make([][]bool, len(ms))
	for i, m := range ms {
		ok[i] = make([]bool, len(elems))
		for j, e := range elems {
			ok[i][j], _ = m.Match(e)
		}
	}
	owner := make([]int, len(elems))
	for j := range owner {
		owner[j] = -1
	}
	var try func(i int, seen []bool) bool
	try = func(i int, seen []bool) bool {
		for j := range elems {
			if !ok[i][j] || seen[j] {
				continue
			}
			seen[j] = true
			if owner[j] < 0 || try(owner[j], seen) {
				owner[j] = i
				return true
			}
		}
		return false
	}
	n := 0
	for i := range ms {
		if try(i, make([]bool, len(elems))) {
			n++
		}
	}
	return n
}

// missingPatterns applies goss's line patterns to text: "foo" needs a line
// containing foo, "!foo" needs no line containing it, "/re/" and "!/re/" do
// the same with a regexp, and a leading backslash escapes a literal "!" or
// "/". It returns the patterns that failed.
func missingPatterns(patterns []string, text string) ([]string, error) {
	lines := strings.Split(text, "\n")
	var missing []string
	for _, p := range patterns {
		pat, err := compilePattern(p)
		if err != nil {
			return nil, err
		}
		hit := false
		for _, l := range lines {
			if pat.match(l) {
				hit = true
				break
			}
		}
		if hit == pat.inverse && pat.text != "" {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

type pattern struct {
	text    string
	re      *regexp.Regexp
	inverse bool
}

func (p pattern) match(line string) bool {
	if p.re != nil {
		return p.re.MatchString(line)
	}
	return strings.Contains(line, p.text)
}

func compilePattern(s string) (pattern, error) {
	var p pattern
	rest := s
	if strings.HasPrefix(rest, "!") {
		p.inverse = true
		rest = rest[1:]
	}
	if len(rest) >= 2 && strings.HasPrefix(rest, "/") && strings.HasSuffix(rest, "/") {
		re, err := regexp.Compile(rest[1 : len(rest)-1])
		if err != nil {
			return p, fmt.Errorf("pattern %q: %w", s, err)
		}
		p.re, p.text = re, rest
		return p, nil
	}
	p.text = strings.TrimPrefix(rest, `\`)
	return p, nil
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []string:
		return strings.Join(v, "\n")
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case nil:
		return ""
	case []any, map[string]any:
		b, err := json.Marshal(v)
		if err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}

func toNumber(v any) (float64, error) {
	switch v := v.(type) {
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case float64:
		return v, nil
	case string, []string:
		s := strings.TrimSpace(toString(v))
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("expected a number, found %q", s)
		}
		return f, nil
	}
	return 0, fmt.Errorf("expected a number, found %s", show(v))
}

// toArray turns a found value into elements: a string is split into lines
// (one final newline does not make an empty last element).
func toArray(v any) []string {
	switch v := v.(type) {
	case []string:
		return v
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			out[i] = toString(e)
		}
		return out
	case string:
		if v == "" {
			return nil
		}
		return strings.Split(strings.TrimSuffix(v, "\n"), "\n")
	}
	return []string{toString(v)}
}

// String renders m the way it reads in a report: plain values as they are,
// lists in brackets, advanced matchers by their goss name.
func (m *Matcher) String() string {
	if m == nil {
		return ""
	}
	switch m.Op {
	case opEqual:
		return toString(m.Value)
	case opPatterns:
		return "[" + strings.Join(m.Patterns, ", ") + "]"
	case opContainElements:
		return "[" + joinMatchers(m.Args) + "]"
	case opGT:
		return "> " + toString(m.Value)
	case opGE:
		return ">= " + toString(m.Value)
	case opLT:
		return "< " + toString(m.Value)
	case opLE:
		return "<= " + toString(m.Value)
	case opHaveLen:
		return "have-len " + toString(m.Value)
	case opHavePrefix, opHaveSuffix, opContainSubstring, opMatchRegexp:
		return m.Op + " " + strconv.Quote(toString(m.Value))
	case opAnd, opOr:
		parts := make([]string, len(m.Args))
		for i, a := range m.Args {
			parts[i] = a.String()
		}
		return "(" + strings.Join(parts, " "+m.Op+" ") + ")"
	case opNot, opContainElement, opHaveKey:
		return m.Op + "(" + joinMatchers(m.Args) + ")"
	case opHaveKeyWithValue:
		return m.Op + "(" + toString(m.Value) + ": " + joinMatchers(m.Args) + ")"
	case opSemver:
		return m.Op + " " + strconv.Quote(toString(m.Value))
	case opConsistOf:
		return "consist-of [" + joinMatchers(m.Args) + "]"
	case opEqualElements:
		return "equal [" + joinMatchers(m.Args) + "]"
	}
	return m.Op
}

func joinMatchers(ms []*Matcher) string {
	parts := make([]string, len(ms))
	for i, a := range ms {
		parts[i] = a.String()
	}
	return strings.Join(parts, ", ")
}

// maxShown bounds how much of a found value (a file, a command's output)
// goes into a report.
const maxShown = 2048

// show renders a found value for a report, cutting long text.
func show(v any) string {
	var s string
	switch v := v.(type) {
	case []string:
		s = "[" + strings.Join(v, ", ") + "]"
	case []any:
		s = "[" + strings.Join(toArray(v), ", ") + "]"
	case nil:
		return ""
	default:
		s = toString(v)
	}
	if len(s) > maxShown {
		return fmt.Sprintf("%s… (%d bytes)", s[:maxShown], len(s))
	}
	return s
}
