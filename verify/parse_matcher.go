package verify

import (
	"regexp"

	"github.com/Masterminds/semver/v3"
	"gopkg.in/yaml.v3"
)

// matcher reads the expectation for an attribute of the given kind.
func (p *parser) matcher(n *yaml.Node, k kind) (*Matcher, error) {
	n = p.deref(n)
	if n == nil {
		return nil, errAt(nil, "aliases nest too deeply or the file is too large")
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return leaf(n, k)
	case yaml.SequenceNode:
		switch k {
		case kindText:
			pats, err := p.stringList(n)
			if err != nil {
				return nil, errAt(n, "%v; a list here holds line patterns (\"text\", \"!text\", \"/regexp/\"), use contain-element for other matchers", err)
			}
			for _, s := range pats {
				if _, err := compilePattern(s); err != nil {
					return nil, errAt(n, "%v", err)
				}
			}
			return &Matcher{Op: opPatterns, Patterns: pats}, nil
		case kindBool, kindInt:
			return nil, errAt(n, "expected a single value, found a list")
		}
		if k == kindAny {
			// goss: a list is contain-elements, of any values or matchers.
			args, err := p.elements(n, k)
			if err != nil {
				return nil, err
			}
			return &Matcher{Op: opContainElements, Args: args}, nil
		}
		args, err := p.elements(n, k)
		if err != nil {
			return nil, err
		}
		return &Matcher{Op: opContainElements, Args: args}, nil
	case yaml.MappingNode:
		return p.advanced(n, k)
	}
	return nil, errAt(n, "unexpected %s", describe(n))
}

// elemKind is the kind of the elements of a value of kind k.
func elemKind(k kind) kind {
	if k == kindStrings || k == kindText {
		return kindString
	}
	return k
}

func (p *parser) elements(n *yaml.Node, k kind) ([]*Matcher, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(n, "expected a list, found %s", describe(n))
	}
	var out []*Matcher
	for _, item := range n.Content {
		m, err := p.element(item, k)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (p *parser) element(n *yaml.Node, k kind) (*Matcher, error) {
	n = p.deref(n)
	if n == nil {
		return nil, errAt(nil, "aliases nest too deeply or the file is too large")
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return leaf(n, elemKind(k))
	case yaml.MappingNode:
		return p.advanced(n, elemKind(k))
	}
	return nil, errAt(n, "list elements are values or matchers, found %s", describe(n))
}

// advancedOps lists the matchers kiln implements, for error messages.
const advancedOps = "and, consist-of, contain-element, contain-elements, contain-substring, equal, ge, gt, have-key, have-key-with-value, have-len, have-patterns, have-prefix, have-suffix, le, lt, match-regexp, not, or, semver-constraint"

func (p *parser) advanced(n *yaml.Node, k kind) (*Matcher, error) {
	pairs, err := p.pairs(n)
	if err != nil {
		return nil, err
	}
	switch len(pairs) {
	case 0:
		return nil, errAt(n, "an empty matcher asserts nothing; write a value or one of: %s", advancedOps)
	case 1:
	default:
		return nil, errAt(n, "a matcher has exactly one key, found %d (%s, …); combine matchers with and: [...]", len(pairs), pairs[0].key.Value)
	}
	op, v := pairs[0].key.Value, pairs[0].value
	switch op {
	case opAnd, opOr:
		var args []*Matcher
		switch v.Kind {
		case yaml.SequenceNode:
			for _, item := range v.Content {
				m, err := p.matcher(item, k)
				if err != nil {
					return nil, err
				}
				args = append(args, m)
			}
		case yaml.MappingNode:
			sub, err := p.pairs(v)
			if err != nil {
				return nil, err
			}
			for _, s := range sub {
				m, err := p.advanced(&yaml.Node{Kind: yaml.MappingNode, Line: s.key.Line, Column: s.key.Column,
					Content: []*yaml.Node{s.key, s.value}}, k)
				if err != nil {
					return nil, err
				}
				args = append(args, m)
			}
		default:
			return nil, errAt(v, "%s takes a list of matchers, found %s", op, describe(v))
		}
		if len(args) == 0 {
			return nil, errAt(v, "an empty %s asserts nothing; give at least one matcher", op)
		}
		return &Matcher{Op: op, Args: args}, nil
	case opNot:
		m, err := p.matcher(v, k)
		if err != nil {
			return nil, err
		}
		return &Matcher{Op: op, Args: []*Matcher{m}}, nil
	case opHavePrefix, opHaveSuffix, opContainSubstring, opMatchRegexp:
		s, err := scalarString(v)
		if err != nil {
			return nil, err
		}
		if op == opMatchRegexp {
			if _, err := regexp.Compile(s); err != nil {
				return nil, errAt(v, "match-regexp: %v", err)
			}
		}
		return &Matcher{Op: op, Value: s}, nil
	case opGT, opGE, opLT, opLE, opHaveLen:
		f, err := scalarNumber(v)
		if err != nil {
			return nil, err
		}
		if op == opHaveLen && (f < 0 || f != float64(int(f))) {
			return nil, errAt(v, "have-len takes a whole number, found %v", v.Value)
		}
		return &Matcher{Op: op, Value: f}, nil
	case opEqual:
		if v.Kind == yaml.SequenceNode {
			args, err := p.elements(v, k)
			if err != nil {
				return nil, err
			}
			return &Matcher{Op: opEqualElements, Args: args}, nil
		}
		if v.Kind != yaml.ScalarNode {
			return nil, errAt(v, "equal takes a value or a list, found %s", describe(v))
		}
		return leaf(v, k)
	case opContainElement:
		m, err := p.element(v, k)
		if err != nil {
			return nil, err
		}
		return &Matcher{Op: op, Args: []*Matcher{m}}, nil
	case opContainElements, opConsistOf:
		args, err := p.elements(v, k)
		if err != nil {
			return nil, err
		}
		return &Matcher{Op: op, Args: args}, nil
	case opHaveKey:
		m, err := p.matcher(v, kindString)
		if err != nil {
			return nil, err
		}
		return &Matcher{Op: op, Args: []*Matcher{m}}, nil
	case opHaveKeyWithValue:
		kv, err := p.pairs(v)
		if err != nil {
			return nil, errAt(v, "have-key-with-value takes a mapping of keys to values or matchers: %v", err)
		}
		if len(kv) == 0 {
			return nil, errAt(v, "an empty have-key-with-value asserts nothing; give at least one key: value")
		}
		var args []*Matcher
		for _, e := range kv {
			m, err := p.matcher(e.value, kindAny)
			if err != nil {
				return nil, err
			}
			args = append(args, &Matcher{Op: op, Value: e.key.Value, Args: []*Matcher{m}})
		}
		if len(args) == 1 {
			return args[0], nil
		}
		return &Matcher{Op: opAnd, Args: args}, nil
	case opSemver:
		s, err := scalarString(v)
		if err != nil {
			return nil, err
		}
		if _, err := semver.NewConstraint(s); err != nil {
			return nil, errAt(v, "semver-constraint: %v", err)
		}
		return &Matcher{Op: op, Value: s}, nil
	case opPatterns:
		pats, err := p.stringList(v)
		if err != nil {
			return nil, err
		}
		for _, s := range pats {
			if _, err := compilePattern(s); err != nil {
				return nil, errAt(v, "%v", err)
			}
		}
		return &Matcher{Op: op, Patterns: pats}, nil
	}
	return nil, errAt(pairs[0].key, "matcher %q is not supported by kiln (supported: %s)", op, advancedOps)
}

// leaf reads a plain value: its meaning depends on the attribute's kind, so
// that `mode: 0644` stays "0644" and `versions: [1.10]` stays "1.10".
func leaf(n *yaml.Node, k kind) (*Matcher, error) {
	if n.Tag == "!!null" {
		return nil, errAt(n, "missing value")
	}
	switch k {
	case kindBool:
		b, err := scalarBool(n)
		if err != nil {
			return nil, err
		}
		return &Matcher{Op: opEqual, Value: b}, nil
	case kindAny:
		switch n.Tag {
		case "!!bool":
			b, err := scalarBool(n)
			return &Matcher{Op: opEqual, Value: b}, err
		case "!!int", "!!float":
			f, err := scalarNumber(n)
			return &Matcher{Op: opEqual, Value: f}, err
		}
		return &Matcher{Op: opEqual, Value: n.Value}, nil
	case kindInt:
		switch n.Tag {
		case "!!int", "!!float":
			f, err := scalarNumber(n)
			if err != nil {
				return nil, err
			}
			return &Matcher{Op: opEqual, Value: f}, nil
		case "!!str":
			return &Matcher{Op: opEqual, Value: n.Value}, nil
		}
		return nil, errAt(n, "expected a number, found %s", describe(n))
	}
	return &Matcher{Op: opEqual, Value: n.Value}, nil
}

// anyValue reads a value as written, by its YAML type, into what JSON
// carries unchanged: string, float64, bool, nil, []any, map[string]any.
func (p *parser) anyValue(n *yaml.Node) (any, error) {
	n = p.deref(n)
	if n == nil {
		return nil, errAt(nil, "aliases nest too deeply or the file is too large")
	}
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, nil
		case "!!bool":
			return scalarBool(n)
		case "!!int", "!!float":
			return scalarNumber(n)
		}
		return n.Value, nil
	case yaml.SequenceNode:
		out := []any{}
		for _, item := range n.Content {
			v, err := p.anyValue(item)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		kv, err := p.pairs(n)
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		for _, e := range kv {
			v, err := p.anyValue(e.value)
			if err != nil {
				return nil, err
			}
			out[e.key.Value] = v
		}
		return out, nil
	}
	return nil, errAt(n, "unexpected %s", describe(n))
}

func scalarString(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", errAt(n, "expected a string, found %s", describe(n))
	}
	return n.Value, nil
}

func scalarBool(n *yaml.Node) (bool, error) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		return false, errAt(n, "expected true or false, found %s", describe(n))
	}
	return b, nil
}

func scalarNumber(n *yaml.Node) (float64, error) {
	var f float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil {
		return 0, errAt(n, "expected a number, found %s", describe(n))
	}
	return f, nil
}

func scalarInt(n *yaml.Node) (int, error) {
	var i int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
		return 0, errAt(n, "expected a whole number, found %s", describe(n))
	}
	return i, nil
}

func (p *parser) stringList(n *yaml.Node) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(n, "expected a list of strings, found %s", describe(n))
	}
	var out []string
	for _, item := range n.Content {
		item = p.deref(item)
		if item == nil {
			return nil, errAt(n, "aliases nest too deeply or the file is too large")
		}
		s, err := scalarString(item)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
