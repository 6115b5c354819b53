package definition

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/kiln-project/kiln"
)

// EnvironmentPolicy is one top-level `environment "NAME"` block: how kiln
// serve looks after the environment on its own.
//
//	environment "prod" {
//	  refresh {
//	    auto         = true
//	    min_severity = "high"
//	  }
//	}
type EnvironmentPolicy struct {
	Name  string
	File  string
	Range hcl.Range
	// Refresh is the environment's automatic refresh; zero (Auto false)
	// when the block has none.
	Refresh RefreshPolicy
}

// RefreshPolicy says when kiln serve refreshes an environment by itself:
// when an advisory at or above MinSeverity, in a triage state Include
// counts, exposes instances there, it does what `kiln fleet refresh
// --advisory ID --env NAME --apply` does (building the fix first when no
// ready version has it).
type RefreshPolicy struct {
	Auto bool
	// MinSeverity is the lowest severity that starts a refresh (default
	// "high"; one of Severities).
	MinSeverity string
	// Include names the finding states that count (scan's include values);
	// empty: what Debian itself ships a DSA/DLA for.
	Include []string
	Range   hcl.Range
}

// DefaultRefreshSeverity is min_severity when the refresh block does not
// say.
const DefaultRefreshSeverity = "high"

var environmentPolicySchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "refresh"}},
}

var refreshSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "auto"}, {Name: "min_severity"}, {Name: "include"}},
}

// decodeEnvironments reads the top-level environment blocks; a name may
// be declared once in the whole estate.
func (l *loader) decodeEnvironments(blocks hcl.Blocks, into map[string]*EnvironmentPolicy) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, b := range blocks {
		name := b.Labels[0]
		if err := kiln.ValidateEnvironment("environment", name); err != nil {
			diags = append(diags, rangeError(b.LabelRanges[0], "Invalid environment name", kilnMessage(err)))
			continue
		}
		if prev, ok := into[name]; ok {
			diags = append(diags, rangeError(b.LabelRanges[0], "Duplicate environment",
				fmt.Sprintf("environment %q is already declared at %s; merge the two blocks.", name, pos(prev.Range))))
			continue
		}
		rng := blockRange(b)
		env := &EnvironmentPolicy{Name: name, File: rng.Filename, Range: rng}
		content, d := b.Body.Content(environmentPolicySchema)
		diags = append(diags, d...)
		for i, rb := range content.Blocks.OfType("refresh") {
			if i > 0 {
				diags = append(diags, rangeError(rb.DefRange, "Duplicate refresh block",
					fmt.Sprintf("environment %q already has a refresh block at %s; keep one.", name, pos(env.Refresh.Range))))
				continue
			}
			env.Refresh, d = l.decodeRefresh(rb)
			diags = append(diags, d...)
		}
		into[name] = env
	}
	return diags
}

func (l *loader) decodeRefresh(b *hcl.Block) (RefreshPolicy, hcl.Diagnostics) {
	rp := RefreshPolicy{MinSeverity: DefaultRefreshSeverity, Range: blockRange(b)}
	content, diags := b.Body.Content(refreshSchema)
	attrs := content.Attributes
	if a, ok := attrs["auto"]; ok {
		v, d := evalAttr(a, l.ctx, cty.Bool, "true")
		diags = append(diags, d...)
		if v != cty.NilVal {
			rp.Auto = v.True()
		}
	}
	if a, ok := attrs["min_severity"]; ok {
		s, d := attrString(a, l.ctx, `"high"`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if !slices.Contains(Severities, s) {
				diags = append(diags, attrError(a, "Invalid severity", fmt.Sprintf("min_severity %q is not known; use one of %s.", s, strings.Join(Severities, ", "))))
			}
			rp.MinSeverity = s
		}
	}
	if a, ok := attrs["include"]; ok {
		inc, d := attrStrings(a, l.ctx, `["no-dsa"]`)
		diags = append(diags, d...)
		for _, n := range inc {
			if !slices.Contains(ScanIncludes, n) {
				diags = append(diags, attrError(a, "Invalid include", fmt.Sprintf("include %q is not a finding state; use %s.", n, strings.Join(ScanIncludes, ", "))))
			}
		}
		rp.Include = inc
	}
	if _, ok := attrs["auto"]; !ok && len(attrs) > 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Refresh without auto",
			Detail:  "this refresh block sets a threshold but not auto = true, so kiln serve never refreshes the environment by itself; add auto = true, or remove the block.",
			Subject: b.DefRange.Ptr()})
	}
	return rp, diags
}

// AutoRefresh lists the environments whose refresh is automatic, by name.
func (e *Estate) AutoRefresh() []*EnvironmentPolicy {
	var out []*EnvironmentPolicy
	for _, name := range slices.Sorted(maps.Keys(e.Environments)) {
		if env := e.Environments[name]; env.Refresh.Auto {
			out = append(out, env)
		}
	}
	return out
}
