package definition

import (
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/kiln-project/kiln"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// evalAttr evaluates attr and converts it to ty. The returned value is
// cty.NilVal when anything was wrong; the diagnostics say what.
// example is shown to the user as the expected form.
func evalAttr(attr *hcl.Attribute, ctx *hcl.EvalContext, ty cty.Type, example string) (cty.Value, hcl.Diagnostics) {
	v, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if v.IsNull() {
		return cty.NilVal, append(diags, attrError(attr, "Null value",
			fmt.Sprintf("%s must be set to a value, e.g. %s = %s; remove the attribute to use the default.", attr.Name, attr.Name, example)))
	}
	if !v.IsWhollyKnown() {
		// The context holds no unknown values except those standing in for
		// a variable, local or expression that failed and was reported:
		// stay quiet rather than report the same problem twice.
		return cty.NilVal, diags
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NilVal, append(diags, attrError(attr, "Incorrect attribute type",
			fmt.Sprintf("%s must be %s, e.g. %s = %s; got %s.", attr.Name, friendlyType(ty), attr.Name, example, friendlyType(v.Type()))))
	}
	if ty.IsCollectionType() {
		for it := cv.ElementIterator(); it.Next(); {
			k, e := it.Element()
			if e.IsNull() {
				key := k.GoString()
				if k.Type() == cty.String {
					key = fmt.Sprintf("%q", k.AsString())
				} else if k.Type() == cty.Number {
					key = k.AsBigFloat().Text('f', 0)
				}
				return cty.NilVal, append(diags, attrError(attr, "Null value",
					fmt.Sprintf("element %s of %s is null; every element must be %s.", key, attr.Name, friendlyType(ty.ElementType()))))
			}
		}
	}
	return cv, diags
}

func friendlyType(ty cty.Type) string {
	switch {
	case ty == cty.String:
		return "a string"
	case ty == cty.Number:
		return "a number"
	case ty == cty.Bool:
		return "a bool"
	case ty.IsListType() || ty.IsTupleType() || ty.IsSetType():
		if ty.IsListType() && ty.ElementType() == cty.String {
			return "a list of strings"
		}
		return "a list"
	case ty.IsMapType() || ty.IsObjectType():
		if ty.IsMapType() && ty.ElementType() == cty.String {
			return "a map of strings"
		}
		return "a map or object"
	case ty == cty.DynamicPseudoType:
		return "any value"
	}
	return ty.FriendlyName()
}

func attrString(attr *hcl.Attribute, ctx *hcl.EvalContext, example string) (string, hcl.Diagnostics) {
	v, diags := evalAttr(attr, ctx, cty.String, example)
	if v == cty.NilVal {
		return "", diags
	}
	return v.AsString(), diags
}

func attrStrings(attr *hcl.Attribute, ctx *hcl.EvalContext, example string) ([]string, hcl.Diagnostics) {
	v, diags := evalAttr(attr, ctx, cty.List(cty.String), example)
	if v == cty.NilVal {
		return nil, diags
	}
	out := make([]string, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		out = append(out, e.AsString())
	}
	return out, diags
}

func attrStringMap(attr *hcl.Attribute, ctx *hcl.EvalContext, example string) (map[string]string, hcl.Diagnostics) {
	v, diags := evalAttr(attr, ctx, cty.Map(cty.String), example)
	if v == cty.NilVal {
		return nil, diags
	}
	out := make(map[string]string, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		out[k.AsString()] = e.AsString()
	}
	return out, diags
}

// attrInt reads a whole number in [min, max].
func attrInt(attr *hcl.Attribute, ctx *hcl.EvalContext, example string, min, max int64) (int64, hcl.Diagnostics) {
	v, diags := evalAttr(attr, ctx, cty.Number, example)
	if v == cty.NilVal {
		return 0, diags
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != 0 || n < min || n > max {
		return 0, append(diags, attrError(attr, "Invalid number",
			fmt.Sprintf("%s must be a whole number from %d to %d, e.g. %s = %s.", attr.Name, min, max, attr.Name, example)))
	}
	return n, diags
}

func attrError(attr *hcl.Attribute, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  attr.Expr.Range().Ptr(),
		Context:  attr.Range.Ptr(),
	}
}

func rangeError(rng hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()}
}

// kilnMessage returns the message of a *kiln.Error without its field
// prefix (the diagnostic's position says where), or err's text.
func kilnMessage(err error) string {
	var ke *kiln.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return err.Error()
}
