package verify

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"gopkg.in/yaml.v3"

	"github.com/kiln-project/kiln"
)

// Vars are the values a test file's Go templates see as .Vars, as goss's
// --vars and --vars-inline give them.
type Vars map[string]any

// LoadVars reads goss vars: each file in turn (YAML or JSON, a mapping at
// the top), later files overriding earlier ones key by key down the
// nested mappings, then inline (a YAML or JSON mapping such as
// `{inline: bar}`), whose top-level keys replace the files' whole.
// flagName names the inline source in errors ("--vars-inline").
func LoadVars(files []string, inline, flagName string) (Vars, error) {
	vars := Vars{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, f, "cannot read the vars file: %v", err)
		}
		m, err := decodeVars(data)
		if err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, f, "%v", err)
		}
		mergeVars(vars, m)
	}
	if strings.TrimSpace(inline) != "" {
		m, err := decodeVars([]byte(inline))
		if err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, flagName, "%v", err)
		}
		maps.Copy(vars, m)
	}
	return vars, nil
}

func decodeVars(data []byte) (map[string]any, error) {
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		if te := (*yaml.TypeError)(nil); errors.As(err, &te) {
			return nil, errors.New("vars must be a mapping of names to values (name: value), found something else")
		}
		return nil, fmt.Errorf("invalid YAML or JSON: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// mergeVars merges src into dst: nested mappings merge, anything else in
// src replaces what dst had (goss merges vars files with mergo's override).
func mergeVars(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeVars(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// tmplData is what a template sees: .Vars, and .Env, the environment of
// the kiln process that renders it (on the host, not in the instance).
type tmplData struct {
	Vars Vars
}

// Env returns the environment as a map, as goss's .Env does.
func (tmplData) Env() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// templateFuncs are sprig's functions plus goss's own.
var templateFuncs = func() template.FuncMap {
	f := sprig.TxtFuncMap()
	maps.Copy(f, template.FuncMap{
		"mkSlice":            func(args ...any) []any { return args },
		"readFile":           tmplReadFile,
		"getEnv":             tmplGetEnv,
		"regexMatch":         tmplRegexMatch,
		"toUpper":            strings.ToUpper,
		"toLower":            strings.ToLower,
		"findStringSubmatch": tmplFindStringSubmatch,
	})
	return f
}()

func tmplReadFile(f string) (string, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func tmplGetEnv(key string, def ...string) string {
	if v := os.Getenv(key); v != "" || len(def) == 0 {
		return v
	}
	return def[0]
}

func tmplRegexMatch(re, s string) (bool, error) {
	r, err := regexp.Compile(re)
	if err != nil {
		return false, err
	}
	return r.MatchString(s), nil
}

// tmplFindStringSubmatch returns the named groups of the first match, or,
// without names, every group keyed "0", "1", … (goss's findStringSubmatch).
func tmplFindStringSubmatch(pattern, input string) (map[string]any, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	groups := re.FindStringSubmatch(input)
	all, named := map[string]any{}, map[string]any{}
	for i, g := range groups {
		all[strconv.Itoa(i)] = g
		if n := re.SubexpNames()[i]; n != "" {
			named[n] = g
		}
	}
	if len(named) > 0 {
		return named, nil
	}
	return all, nil
}

// templateErrRE splits text/template's "template: NAME:LINE[:COL]: msg".
var templateErrRE = regexp.MustCompile(`^(\d+)(?::(\d+))?: (?:executing "[^"]*" at (<[^>]*>): )?(.*)$`)

// render executes data as a Go template, as goss does before reading a
// test file: missing keys are errors. The error is an EINVALID naming
// name:line:column.
func render(name string, data []byte, vars Vars) ([]byte, error) {
	if vars == nil {
		vars = Vars{}
	}
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=error").Parse(string(data))
	if err != nil {
		return nil, templateError(name, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, tmplData{Vars: vars}); err != nil {
		return nil, templateError(name, err)
	}
	return out.Bytes(), nil
}

func templateError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "template: "+name+":")
	field := name
	if m := templateErrRE.FindStringSubmatch(msg); m != nil {
		field += ":" + m[1]
		if m[2] != "" {
			field += ":" + m[2]
		} else {
			field += ":1"
		}
		msg = m[4]
		if m[3] != "" {
			msg = m[3] + ": " + msg
		}
	}
	hint := ""
	switch {
	case strings.HasPrefix(msg, "<.Env."):
		hint = "; set the variable in kiln's environment (templates are rendered on the host, before the instance boots)"
	case strings.Contains(msg, "map has no entry for key") || strings.Contains(msg, "nil pointer evaluating") || strings.Contains(msg, "index of untyped nil") || strings.Contains(msg, "index of nil pointer"):
		hint = "; give the value with --vars FILE, --vars-inline or the image's test_vars"
	}
	return kiln.FieldErrorf(kiln.EINVALID, field, "go template: %s%s", msg, hint)
}
