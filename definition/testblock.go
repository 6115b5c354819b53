package definition

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiln-project/kiln"
)

// TestPolicy is a pipeline's `test { … }` block: where the test stage
// boots its temporary instance.
type TestPolicy struct {
	// Platform is the driver the test instance runs on
	// (kiln.LaunchPlatforms: "local", "vm"); empty is the default, local.
	// The VM platform boots the version's disk image: the image line
	// declares a disk format.
	Platform string
}

var testSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "platform"}},
}

// decodeTests reads a pipeline's test blocks (at most one) into p.Test.
func (l *loader) decodeTests(p *Pipeline, blocks hcl.Blocks) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for i, b := range blocks {
		if i > 0 {
			diags = append(diags, rangeError(b.DefRange, "Duplicate test block",
				fmt.Sprintf("pipeline %q already has a test block at %s; merge them into one.", p.Name, pos(blockRange(blocks[0])))))
			continue
		}
		content, d := b.Body.Content(testSchema)
		diags = append(diags, d...)
		if a, ok := content.Attributes["platform"]; ok {
			p.Test.Platform, d = attrString(a, l.ctx, `"vm"`)
			diags = append(diags, d...)
			if err := kiln.ValidatePlatform("platform", p.Test.Platform); err != nil {
				diags = append(diags, attrError(a, "Unknown platform",
					fmt.Sprintf("platform %q is not one kiln runs instances on; use %s.", p.Test.Platform, strings.Join(kiln.LaunchPlatforms, " or "))))
			}
		}
	}
	return diags
}
