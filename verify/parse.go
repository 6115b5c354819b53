package verify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kiln-project/kiln"
)

// Limits that keep a hostile or broken file from eating the host.
const (
	maxErrors   = 20      // errors reported per parse; the rest are counted
	maxNodes    = 100_000 // YAML nodes visited, aliases included
	maxFileSize = 4 << 20 // bytes per test file
)

// ParseOptions are what a test run adds to the files themselves.
type ParseOptions struct {
	// Vars are what the files' Go templates see as .Vars (LoadVars).
	Vars Vars
}

// ParseFile reads a goss-style test file and the files it includes.
func ParseFile(path string) (*Suite, error) {
	return ParseFileWith(path, ParseOptions{})
}

// ParseFileWith is ParseFile with options.
func ParseFileWith(path string, opts ParseOptions) (*Suite, error) {
	data, err := readTestFile(path)
	if err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, path, "cannot read the test file: %v", err)
	}
	return ParseWith(path, data, opts)
}

// Parse parses data as a goss-style test file named name. gossfile includes
// are read from disk relative to name's directory. A file holding Go
// templates ({{ … }}) is rendered first, as goss does. Everything kiln
// cannot test is an error naming file:line:column; all errors (up to a
// limit) are returned at once, joined, each an *kiln.Error with code
// EINVALID.
func Parse(name string, data []byte) (*Suite, error) {
	return ParseWith(name, data, ParseOptions{})
}

// ParseWith is Parse with options.
func ParseWith(name string, data []byte, opts ParseOptions) (*Suite, error) {
	return parse(name, data, true, opts)
}

// parse is ParseWith; includes false rejects gossfile includes and
// templates (for fuzzing, which must not read the host's files).
func parse(name string, data []byte, includes bool, opts ParseOptions) (*Suite, error) {
	p := &parser{
		noIncludes: !includes,
		vars:       opts.Vars,
		suite:      &Suite{},
		seen:       map[string]int{},
		read:       map[string]bool{},
		rendered:   map[string]bool{},
	}
	if abs, err := filepath.Abs(name); err == nil {
		p.read[abs] = true
		p.stack = []string{abs}
	}
	p.file(name, data)
	if len(p.errs) == 0 && len(p.suite.Resources) == 0 {
		p.errs = append(p.errs, kiln.FieldErrorf(kiln.EINVALID, name,
			"no tests: the file declares no resources; add at least one (for example `command: {true: {exit-status: 0}}`)"))
	}
	if len(p.errs) > 0 {
		errs := p.errs
		if p.dropped > 0 {
			errs = append(errs, kiln.Errorf(kiln.EINVALID, "%d more errors not shown", p.dropped))
		}
		return nil, errors.Join(errs...)
	}
	return p.suite, nil
}

type parser struct {
	suite    *Suite
	seen     map[string]int  // "type\x00id" → index of its first declaration in suite.Resources
	read     map[string]bool // absolute paths already parsed
	rendered map[string]bool // files that were Go templates, for messages
	stack    []string        // include chain, for cycles
	errs     []error
	dropped  int
	nodes    int

	vars       Vars
	noIncludes bool
}

// posError is an error about one YAML node.
type posError struct {
	node *yaml.Node
	msg  string
}

func (e *posError) Error() string { return e.msg }

func errAt(n *yaml.Node, format string, args ...any) error {
	return &posError{node: n, msg: fmt.Sprintf(format, args...)}
}

func (p *parser) fail(file string, n *yaml.Node, format string, args ...any) {
	if len(p.errs) >= maxErrors {
		p.dropped++
		return
	}
	field := file
	if n != nil {
		field = fmt.Sprintf("%s:%d:%d", file, n.Line, n.Column)
		if p.rendered[file] {
			format += " (the line is the rendered template's)"
		}
	}
	p.errs = append(p.errs, kiln.FieldErrorf(kiln.EINVALID, field, format, args...))
}

// addErr reports an error that already names its place.
func (p *parser) addErr(err error) {
	if len(p.errs) >= maxErrors {
		p.dropped++
		return
	}
	p.errs = append(p.errs, err)
}

// failErr reports err, placing it at its own node when it has one.
func (p *parser) failErr(file string, at *yaml.Node, prefix string, err error) {
	var pe *posError
	if errors.As(err, &pe) && pe.node != nil {
		at = pe.node
	}
	p.fail(file, at, "%s%s", prefix, err.Error())
}

var templateRE = regexp.MustCompile(`\{\{`)

func (p *parser) file(name string, data []byte) {
	p.suite.Files = append(p.suite.Files, name)
	if loc := templateRE.FindIndex(data); loc != nil {
		if p.noIncludes {
			line := 1 + bytes.Count(data[:loc[0]], []byte("\n"))
			col := 1 + loc[0] - (bytes.LastIndexByte(data[:loc[0]], '\n') + 1)
			p.fail(name, &yaml.Node{Line: line, Column: col}, "go templates ({{ … }}) are disabled here")
			return
		}
		out, err := render(name, data, p.vars)
		if err != nil {
			p.addErr(err)
			return
		}
		if len(out) > maxFileSize {
			p.fail(name, nil, "the rendered template is larger than %d bytes", maxFileSize)
			return
		}
		data = out
		p.rendered[name] = true
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return // an empty file declares nothing
		}
		p.fail(name, nil, "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		p.fail(name, &extra, "a test file holds one YAML document; split the others into files and include them with gossfile")
		return
	}
	if len(doc.Content) == 0 {
		return
	}
	root := p.deref(doc.Content[0])
	if root == nil {
		p.fail(name, doc.Content[0], "aliases nest too deeply or the file is too large")
		return
	}
	if isNull(root) {
		return
	}
	pairs, err := p.pairs(root)
	if err != nil {
		p.failErr(name, root, "", err)
		return
	}
	if isVarsFile(pairs) {
		var keys []string
		for _, kv := range pairs {
			keys = append(keys, kv.key.Value)
		}
		p.fail(name, root, "%s is a vars file, not a test file: pass it with --vars (or the image's test_vars); none of its top-level keys (%s) is a resource type (%s)",
			name, strings.Join(keys, ", "), typeNames())
		return
	}
	for _, kv := range pairs {
		typ := kv.key.Value
		if typ == "gossfile" {
			p.includes(name, kv.value)
			continue
		}
		s, ok := schemas[typ]
		if !ok {
			p.fail(name, kv.key, "resource type %q is not supported by kiln (supported: %s); remove it or express the test as a command", typ, typeNames())
			continue
		}
		if isNull(kv.value) {
			continue
		}
		entries, err := p.pairs(kv.value)
		if err != nil {
			p.failErr(name, kv.value, typ+": ", err)
			continue
		}
		for _, e := range entries {
			p.resource(name, typ, s, e.key, e.value)
		}
	}
}

type pair struct{ key, value *yaml.Node }

// pairs returns a mapping's entries, rejecting duplicate keys: goss would
// keep only the last one, silently dropping the others.
func (p *parser) pairs(n *yaml.Node) ([]pair, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n, "expected a mapping (key: value lines), found %s", describe(n))
	}
	var out []pair
	where := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.deref(n.Content[i]), p.deref(n.Content[i+1])
		if k == nil || v == nil {
			return nil, errAt(n, "aliases nest too deeply or the file is too large")
		}
		if k.Kind != yaml.ScalarNode {
			return nil, errAt(k, "keys must be plain strings, found %s", describe(k))
		}
		if k.Tag == "!!merge" {
			return nil, errAt(k, "YAML merge keys (<<) are not supported; write the attributes out")
		}
		if line, dup := where[k.Value]; dup {
			return nil, errAt(k, "%q is declared twice (first on line %d); merge the two", k.Value, line)
		}
		where[k.Value] = k.Line
		out = append(out, pair{k, v})
	}
	return out, nil
}

// deref follows aliases and counts nodes; nil means the budget is spent.
func (p *parser) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 100 {
			return nil
		}
		n = n.Alias
	}
	p.nodes++
	if n == nil || p.nodes > maxNodes {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

func (p *parser) resource(file, typ string, s schema, key, val *yaml.Node) {
	id := key.Value
	label := fmt.Sprintf("%s %q: ", typ, id)
	r := Resource{Type: typ, ID: id, Target: id, Source: fmt.Sprintf("%s:%d", file, key.Line)}
	if isNull(val) {
		p.fail(file, key, "%shas no attributes; add what to expect, at least %s", label, strings.Join(s.required, ", "))
		return
	}
	attrs, err := p.pairs(val)
	if err != nil {
		p.failErr(file, val, label, err)
		return
	}
	have := map[string]bool{}
	bad := false
	for _, a := range attrs {
		name, v := a.key.Value, a.value
		if canon, ok := s.aliases[name]; ok {
			name = canon
		}
		var err error
		switch {
		case s.checks[name] != 0 && have[name]:
			err = errAt(a.key, "%s is given twice (%s is another name for it); keep one", name, a.key.Value)
		case name == "title":
			r.Title, err = scalarString(v)
		case name == "meta":
			if v.Kind != yaml.MappingNode {
				err = errAt(v, "meta must be a mapping, found %s", describe(v))
			} else if derr := v.Decode(&r.Meta); derr != nil {
				err = errAt(v, "meta: %v", derr)
			}
		case name == "skip":
			r.Skip, err = scalarBool(v)
		case name == s.target:
			r.Target, err = scalarString(v)
			if err == nil && r.Target == "" {
				err = errAt(v, "%s must not be empty", name)
			}
		case s.options[name] != 0:
			err = p.option(&r, name, v)
		case s.checks[name] != 0:
			var m *Matcher
			m, err = p.matcher(v, s.checks[name])
			if err == nil {
				r.Checks = append(r.Checks, Check{Property: name, Expect: m})
				have[name] = true
			}
		default:
			p.fail(file, a.key, "%sattribute %q is not supported by kiln for %s resources (supported: %s); remove it or check its spelling", label, name, typ, s.attrs())
			bad = true
		}
		if err != nil {
			p.failErr(file, a.key, label+name+": ", err)
			bad = true
		}
	}
	for _, req := range s.required {
		if !have[req] {
			p.fail(file, key, "%smissing required attribute %q", label, req)
			bad = true
		}
	}
	if len(s.required) == 0 && len(r.Checks) == 0 && !bad {
		p.fail(file, key, "%shas nothing to check; add one of: %s", label, checkNames(s))
		bad = true
	}
	if err := validTarget(typ, r.Target); err != nil && !bad {
		p.fail(file, key, "%s%v", label, err)
		bad = true
	}
	if bad {
		return
	}
	// As in goss, a resource is its type and key; declared again in another
	// file, goss keeps the last one. kiln merges the two when they agree
	// and refuses them when they do not, rather than drop checks silently.
	k := typ + "\x00" + r.ID
	if i, dup := p.seen[k]; dup {
		first := &p.suite.Resources[i]
		if why := merge(first, &r); why != "" {
			p.fail(file, key, "%sis already declared at %s with %s; make the two agree or keep one", label, first.Source, why)
		}
		return
	}
	p.seen[k] = len(p.suite.Resources)
	p.suite.Resources = append(p.suite.Resources, r)
}

// merge adds the checks of r, a second declaration of first, to first.
// It changes nothing and says what differs when the two disagree.
func merge(first, r *Resource) string {
	switch {
	case first.Target != r.Target:
		return "another target " + strconv.Quote(first.Target)
	case first.Title != r.Title || !reflect.DeepEqual(first.Meta, r.Meta):
		return "another title or meta"
	case first.Skip != r.Skip:
		return "another skip"
	case first.TimeoutMS != r.TimeoutMS || !reflect.DeepEqual(first.HTTP, r.HTTP) ||
		first.LocalAddress != r.LocalAddress || first.Server != r.Server || !reflect.DeepEqual(first.Content, r.Content):
		return "other options"
	}
	var added []Check
	for _, c := range r.Checks {
		i := slices.IndexFunc(first.Checks, func(f Check) bool { return f.Property == c.Property })
		switch {
		case i < 0:
			added = append(added, c)
		case !reflect.DeepEqual(first.Checks[i].Expect, c.Expect):
			return fmt.Sprintf("another %s (%s there, %s here)", c.Property, first.Checks[i].Expect, c.Expect)
		}
	}
	first.Checks = append(first.Checks, added...)
	return ""
}

// isVarsFile reports whether a file's top-level keys are all something
// other than resource types: goss vars, given where a test file goes.
func isVarsFile(top []pair) bool {
	for _, kv := range top {
		if _, ok := schemas[kv.key.Value]; ok || kv.key.Value == "gossfile" {
			return false
		}
	}
	return len(top) > 0
}

func checkNames(s schema) string {
	var names []string
	for n := range s.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func validTarget(typ, target string) error {
	switch typ {
	case "port":
		proto, num, ok := strings.Cut(target, ":")
		switch proto {
		case "tcp", "tcp6", "udp", "udp6":
		default:
			ok = false
		}
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port must look like tcp:22, tcp6:80, udp:53 or udp6:53, found %q", target)
		}
	case "http":
		u, err := url.Parse(target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("url must be an absolute http:// or https:// URL, found %q; set it with the url attribute when the key is a name", target)
		}
	case "kernel-param":
		if strings.Contains(target, "..") || strings.ContainsAny(target, "/ ") {
			return fmt.Errorf("kernel parameter names look like net.ipv4.ip_forward, found %q", target)
		}
	case "addr":
		network, address := splitAddr(target)
		switch network {
		case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
		default:
			return fmt.Errorf("address must look like tcp://host:port or udp://host:port, found %q", target)
		}
		if address == "" {
			return fmt.Errorf("address %q names no host:port", target)
		}
	case "dns":
		qtype, host := splitDNS(target)
		if host == "" {
			return fmt.Errorf("resolve must be a host name, optionally with a record type (MX:example.org), found %q", target)
		}
		if qtype != "" && !slices.Contains(dnsTypes, qtype) {
			return fmt.Errorf("record type %s is not supported (supported: %s)", qtype, strings.Join(dnsTypes, ", "))
		}
		if qtype == "PTR" && net.ParseIP(host) == nil {
			return fmt.Errorf("a PTR lookup takes an IP address, found %q", host)
		}
	case "mount":
		if !strings.HasPrefix(target, "/") {
			return fmt.Errorf("mountpoint must be an absolute path, found %q", target)
		}
	}
	return nil
}

func (p *parser) option(r *Resource, name string, v *yaml.Node) error {
	h := r.HTTP
	if h == nil && r.Type == "http" {
		h = &HTTPOptions{}
		r.HTTP = h
	}
	var err error
	switch name {
	case "local-address":
		r.LocalAddress, err = scalarString(v)
		if err == nil && net.ParseIP(r.LocalAddress) == nil {
			err = errAt(v, "local-address must be an IP address, found %q", r.LocalAddress)
		}
	case "server":
		r.Server, err = scalarString(v)
	case "content":
		r.Content, err = p.anyValue(v)
	case "timeout":
		var n int
		n, err = scalarInt(v)
		if err == nil && n < 0 {
			err = errAt(v, "timeout is in milliseconds and must not be negative")
		}
		r.TimeoutMS = n
	case "method":
		h.Method, err = scalarString(v)
	case "request-body":
		h.RequestBody, err = scalarString(v)
	case "username":
		h.Username, err = scalarString(v)
	case "password":
		h.Password, err = scalarString(v)
	case "proxy":
		h.Proxy, err = scalarString(v)
	case "allow-insecure":
		h.AllowInsecure, err = scalarBool(v)
	case "no-follow-redirects":
		h.NoFollowRedirects, err = scalarBool(v)
	case "request-headers":
		h.RequestHeaders, err = p.stringList(v)
		for _, hdr := range h.RequestHeaders {
			if k, _, ok := strings.Cut(hdr, ":"); !ok || strings.TrimSpace(k) == "" {
				return errAt(v, "request headers look like \"Name: value\", found %q", hdr)
			}
		}
	}
	return err
}

func (p *parser) includes(file string, n *yaml.Node) {
	if isNull(n) {
		return
	}
	entries, err := p.pairs(n)
	if err != nil {
		p.failErr(file, n, "gossfile: ", err)
		return
	}
	for _, e := range entries {
		pattern := e.key.Value
		skip := false
		if !isNull(e.value) {
			attrs, err := p.pairs(e.value)
			if err != nil {
				p.failErr(file, e.value, fmt.Sprintf("gossfile %q: ", pattern), err)
				continue
			}
			for _, a := range attrs {
				var err error
				switch a.key.Value {
				case "file":
					pattern, err = scalarString(a.value)
				case "skip":
					skip, err = scalarBool(a.value)
				default:
					err = errAt(a.key, "attribute %q is not supported for gossfile (supported: file, skip)", a.key.Value)
				}
				if err != nil {
					p.failErr(file, a.key, fmt.Sprintf("gossfile %q: ", e.key.Value), err)
				}
			}
		}
		if skip {
			continue
		}
		p.include(file, e.key, pattern)
	}
}

func (p *parser) include(file string, at *yaml.Node, pattern string) {
	label := fmt.Sprintf("gossfile %q: ", pattern)
	if p.noIncludes {
		p.fail(file, at, "%sincludes are disabled here", label)
		return
	}
	path := pattern
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(file), path)
	}
	paths := []string{path}
	if strings.ContainsAny(pattern, "*?[") {
		var err error
		paths, err = filepath.Glob(path)
		if err != nil {
			p.fail(file, at, "%sbad glob: %v", label, err)
			return
		}
		if len(paths) == 0 {
			p.fail(file, at, "%sno file matches %s; fix the pattern or set `skip: true`", label, path)
			return
		}
	}
	for _, path := range paths {
		abs, err := filepath.Abs(path)
		if err != nil {
			p.fail(file, at, "%s%v", label, err)
			continue
		}
		for _, s := range p.stack {
			if s == abs {
				p.fail(file, at, "%sincludes itself through %s; remove the cycle", label, strings.Join(p.stack, " → "))
				return
			}
		}
		if p.read[abs] {
			continue // included twice (two globs): its tests run once
		}
		p.read[abs] = true
		data, err := readTestFile(path)
		if err != nil {
			p.fail(file, at, "%scannot read %s: %v", label, path, err)
			continue
		}
		p.stack = append(p.stack, abs)
		p.file(path, data)
		p.stack = p.stack[:len(p.stack)-1]
	}
}

func readTestFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return data, nil
}
