package sbom

import (
	"strconv"
	"strings"

	kiln "github.com/kiln-project/kiln"
)

// The CycloneDX 1.6 document, as much of it as kiln fills. Field order is
// the order of the JSON.
type cdxDocument struct {
	BOMFormat    string           `json:"bomFormat"`
	SpecVersion  string           `json:"specVersion"`
	SerialNumber string           `json:"serialNumber,omitempty"`
	Version      int              `json:"version"`
	Metadata     cdxMetadata      `json:"metadata"`
	Components   []cdxComponent   `json:"components"`
	Dependencies []cdxDependency  `json:"dependencies,omitempty"`
	Formulation  []cdxFormulation `json:"formulation,omitempty"`
}

type cdxMetadata struct {
	Timestamp string       `json:"timestamp"`
	Tools     cdxTools     `json:"tools"`
	Component cdxComponent `json:"component"`
}

type cdxTools struct {
	Components []cdxComponent `json:"components"`
}

type cdxComponent struct {
	Type        string        `json:"type"`
	BOMRef      string        `json:"bom-ref,omitempty"`
	Supplier    *cdxSupplier  `json:"supplier,omitempty"`
	Name        string        `json:"name"`
	Version     string        `json:"version,omitempty"`
	Description string        `json:"description,omitempty"`
	Hashes      []cdxHash     `json:"hashes,omitempty"`
	Licenses    []cdxLicence  `json:"licenses,omitempty"`
	PURL        string        `json:"purl,omitempty"`
	Pedigree    *cdxPedigree  `json:"pedigree,omitempty"`
	Properties  []cdxProperty `json:"properties,omitempty"`
}

type cdxSupplier struct {
	Name string `json:"name"`
}

type cdxHash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type cdxLicence struct {
	Expression string `json:"expression"`
}

type cdxPedigree struct {
	Ancestors []cdxComponent `json:"ancestors"`
}

type cdxProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type cdxDependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}

type cdxFormulation struct {
	BOMRef     string         `json:"bom-ref"`
	Components []cdxComponent `json:"components"`
}

func (m *model) cyclonedx() *cdxDocument {
	v := m.v
	imgRef := "kiln:version:" + v.Ref().String()
	img := cdxComponent{
		Type: "operating-system", BOMRef: imgRef, Name: v.Image, Version: strconv.Itoa(v.Number),
		Description: "kiln image version " + v.Ref().String() + ", method " + string(v.Provenance.Method),
	}
	if m.digest != "" {
		img.Hashes = []cdxHash{{Alg: "SHA-256", Content: m.digest}}
	}
	// The versions it was built on are its pedigree.
	for _, b := range m.built {
		if img.Pedigree == nil {
			img.Pedigree = &cdxPedigree{}
		}
		img.Pedigree.Ancestors = append(img.Pedigree.Ancestors, cdxComponent{
			Type: "operating-system", Name: b.ref.Image, Version: strconv.Itoa(b.ref.Number),
			Properties: []cdxProperty{{Name: "kiln:built-on", Value: b.kind}},
		})
	}
	d := &cdxDocument{
		BOMFormat: "CycloneDX", SpecVersion: "1.6", Version: 1,
		Metadata: cdxMetadata{
			Timestamp: m.created,
			Tools:     cdxTools{Components: []cdxComponent{{Type: "application", Name: "kiln"}}},
			Component: img,
		},
		Components: []cdxComponent{},
	}
	debian := &cdxSupplier{Name: "Debian"}
	dep := cdxDependency{Ref: imgRef, DependsOn: []string{}}
	for _, p := range m.pkgs {
		c := cdxComponent{
			Type: "library", BOMRef: p.purl, Supplier: debian, Name: p.Name, Version: p.Version, PURL: p.purl,
			Properties: []cdxProperty{{Name: "kiln:architecture", Value: p.Architecture}},
			// A binary package's source package is its ancestor.
			Pedigree: &cdxPedigree{Ancestors: []cdxComponent{{
				Type: "library", Name: p.srcName, Version: p.srcVersion,
				PURL: purl(p.srcName, p.srcVersion, "source", m.distro),
			}}},
		}
		if p.licence != "" {
			c.Licenses = []cdxLicence{{Expression: p.licence}}
		}
		d.Components = append(d.Components, c)
		dep.DependsOn = append(dep.DependsOn, p.purl)
	}
	// The image is made of its packages: an image "depends on" what it
	// contains, the only whole-to-part link CycloneDX's graph has.
	d.Dependencies = []cdxDependency{dep}
	if len(m.inputs) > 0 {
		f := cdxFormulation{BOMRef: "kiln:inputs:" + v.Ref().String()}
		for _, s := range m.inputs {
			c := cdxComponent{
				Type: "file", Name: s.Ref,
				Properties: []cdxProperty{{Name: "kiln:source-kind", Value: string(s.Kind)}},
			}
			if s.Kind == kiln.SourceOrigin {
				c.Type = "operating-system"
			}
			if s.Digest != "" {
				c.Hashes = []cdxHash{{Alg: "SHA-256", Content: strings.TrimPrefix(s.Digest, "sha256:")}}
			}
			f.Components = append(f.Components, c)
		}
		d.Formulation = []cdxFormulation{f}
	}
	return d
}
