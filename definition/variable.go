package definition

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// EnvPrefix starts the name of an environment variable that sets an estate
// variable: KILN_VAR_mirror sets var.mirror.
const EnvPrefix = "KILN_VAR_"

// AutoVarFileSuffix ends the name of a variable file in the estate directory
// that is read automatically, in name order.
const AutoVarFileSuffix = ".auto.kiln.vars.hcl"

// Variable is one declared `variable "NAME"` with the value it got.
type Variable struct {
	Name        string
	Description string
	// Type is the declared type constraint, cty.DynamicPseudoType when none.
	Type cty.Type
	// Value is the default or the value set from outside, converted to Type.
	Value cty.Value
	// SetBy says where Value came from: "default", "env", a variable
	// file's name, or "option".
	SetBy string
	Range hcl.Range
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"},
		{Name: "default"},
		{Name: "description"},
	},
}

// declareVariable decodes one variable block.
func declareVariable(block *hcl.Block, vars map[string]*Variable) hcl.Diagnostics {
	name := block.Labels[0]
	var diags hcl.Diagnostics
	if !hclsyntax.ValidIdentifier(name) {
		return append(diags, rangeError(block.LabelRanges[0], "Invalid variable name",
			fmt.Sprintf("%q is not a valid variable name; use letters, digits, underscores and dashes, starting with a letter.", name)))
	}
	if prev, ok := vars[name]; ok {
		return append(diags, rangeError(block.DefRange, "Duplicate variable",
			fmt.Sprintf("variable %q is already declared at %s; remove one of them.", name, pos(prev.Range))))
	}
	content, d := block.Body.Content(variableSchema)
	diags = append(diags, d...)
	v := &Variable{Name: name, Type: cty.DynamicPseudoType, Value: cty.NilVal, Range: block.DefRange}
	vars[name] = v
	if attr, ok := content.Attributes["type"]; ok {
		ty, d := typeexpr.TypeConstraint(attr.Expr)
		diags = append(diags, d...)
		if !d.HasErrors() {
			v.Type = ty
		}
	}
	if attr, ok := content.Attributes["description"]; ok {
		s, d := attrString(attr, nil, `"the Debian mirror to bootstrap from"`)
		diags = append(diags, d...)
		v.Description = s
	}
	if attr, ok := content.Attributes["default"]; ok {
		val, d := attr.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() {
			cv, err := convert.Convert(val, v.Type)
			if err != nil {
				diags = append(diags, attrError(attr, "Invalid default value",
					fmt.Sprintf("the default of variable %q does not fit its type %s: %s.", name, typeexpr.TypeString(v.Type), err)))
				v.Value = cty.DynamicVal // reported; keeps later uses quiet
			} else {
				v.Value, v.SetBy = cv, "default"
			}
		} else {
			v.Value = cty.DynamicVal // reported; keeps later uses quiet
		}
	}
	return diags
}

// setVariables applies values from outside the definitions, lowest
// precedence first: KILN_VAR_ environment variables, *.auto.kiln.vars.hcl
// files in the estate directory (autoFiles, sorted names), Options.VarFiles
// in order, Options.Vars.
// It then reports required variables that got no value.
func setVariables(p *hclparse.Parser, dir string, autoFiles []string, opts Options, vars map[string]*Variable) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, kv := range opts.Env {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		name := strings.TrimPrefix(k, EnvPrefix)
		v, declared := vars[name]
		if !declared {
			continue // the environment holds many things; stray ones are not errors
		}
		diags = append(diags, setFromString(v, val, "env", k)...)
	}

	for _, name := range autoFiles {
		diags = append(diags, setFromFile(p, filepath.Join(dir, name), name, vars)...)
	}
	for _, f := range opts.VarFiles {
		diags = append(diags, setFromFile(p, f, f, vars)...)
	}

	for _, name := range slices.Sorted(maps.Keys(opts.Vars)) {
		v, ok := vars[name]
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undeclared variable",
				Detail: fmt.Sprintf("a value was given for variable %q, which no variable block declares; declare it with variable %q { type = string } or remove the value.", name, name)})
			continue
		}
		diags = append(diags, setFromString(v, opts.Vars[name], "option", "-var "+name)...)
	}

	for _, name := range slices.Sorted(maps.Keys(vars)) {
		v := vars[name]
		if v.Value == cty.NilVal {
			diags = append(diags, rangeError(v.Range, "Unset variable",
				fmt.Sprintf("variable %q has no default and no value was given; set one with --var %s=VALUE, a variable file, or %s%s.", name, name, EnvPrefix, name)))
			v.Value = cty.DynamicVal
		}
	}
	return diags
}

// setFromString sets a variable from text given on a command line or in the
// environment: taken literally for string variables, parsed as an HCL
// expression (e.g. ["main", "contrib"]) for other types.
func setFromString(v *Variable, s, setBy, where string) hcl.Diagnostics {
	if v.Type == cty.String || v.Type == cty.DynamicPseudoType {
		v.Value, v.SetBy = cty.StringVal(s), setBy
		return nil
	}
	if diag := checkShape([]byte(s), where); diag != nil {
		return hcl.Diagnostics{diag}
	}
	expr, diags := hclsyntax.ParseExpression([]byte(s), where, hcl.InitialPos)
	if diags.HasErrors() {
		return diags
	}
	val, diags := expr.Value(nil)
	if diags.HasErrors() {
		return diags
	}
	cv, err := convert.Convert(val, v.Type)
	if err != nil {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value for variable",
			Detail: fmt.Sprintf("%s: the value for variable %q must be %s: %s.", where, v.Name, typeexpr.TypeString(v.Type), err)}}
	}
	v.Value, v.SetBy = cv, setBy
	return nil
}

// setFromFile reads NAME = VALUE assignments from a variable file.
func setFromFile(p *hclparse.Parser, path, shown string, vars map[string]*Variable) hcl.Diagnostics {
	src, err := os.ReadFile(path)
	if err != nil {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read variable file",
			Detail: fmt.Sprintf("%s; check the path given.", err)}}
	}
	if diag := checkShape(src, shown); diag != nil {
		return hcl.Diagnostics{diag}
	}
	f, diags := p.ParseHCL(src, shown)
	if diags.HasErrors() {
		return diags
	}
	attrs, d := f.Body.JustAttributes()
	diags = append(diags, d...)
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		attr := attrs[name]
		v, ok := vars[name]
		if !ok {
			diags = append(diags, rangeError(attr.NameRange, "Undeclared variable",
				fmt.Sprintf("this file sets variable %q, which no variable block declares; declare it or remove the line.", name)))
			continue
		}
		val, d := attr.Expr.Value(&hcl.EvalContext{Functions: functions()})
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		cv, err := convert.Convert(val, v.Type)
		if err != nil {
			diags = append(diags, attrError(attr, "Invalid value for variable",
				fmt.Sprintf("variable %q must be %s: %s.", name, typeexpr.TypeString(v.Type), err)))
			continue
		}
		v.Value, v.SetBy = cv, shown
	}
	return diags
}

// evalLocals evaluates every local, each after the locals it refers to.
// A local that fails, or that takes part in a cycle, becomes unknown so
// that its uses stay quiet: the failure was reported once.
func evalLocals(attrs map[string]*hcl.Attribute, ctx *hcl.EvalContext) (map[string]cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	done := map[string]cty.Value{}
	pending := slices.Sorted(maps.Keys(attrs))
	for len(pending) > 0 {
		var next []string
		for _, name := range pending {
			if !depsDone(attrs[name], attrs, done) {
				next = append(next, name)
				continue
			}
			ctx.Variables["local"] = cty.ObjectVal(done)
			v, d := attrs[name].Expr.Value(ctx)
			diags = append(diags, d...)
			if d.HasErrors() {
				v = cty.DynamicVal
			}
			done[name] = v
		}
		if len(next) == len(pending) { // no progress: the rest wait on each other
			for _, name := range next {
				diags = append(diags, attrError(attrs[name], "Cycle in locals",
					fmt.Sprintf("local.%s depends on itself through local.%s; break the cycle.", name, strings.Join(next, ", local."))))
				done[name] = cty.DynamicVal
			}
			break
		}
		pending = next
	}
	ctx.Variables["local"] = cty.ObjectVal(done)
	return done, diags
}

func depsDone(attr *hcl.Attribute, all map[string]*hcl.Attribute, done map[string]cty.Value) bool {
	for _, tr := range attr.Expr.Variables() {
		if tr.RootName() != "local" || len(tr) < 2 {
			continue
		}
		step, ok := tr[1].(hcl.TraverseAttr)
		if !ok {
			continue
		}
		if _, exists := all[step.Name]; !exists {
			continue // evaluation reports the unknown name
		}
		if _, ok := done[step.Name]; !ok {
			return false
		}
	}
	return true
}
