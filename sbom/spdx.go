package sbom

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"

	kiln "github.com/kiln-project/kiln"
)

// The SPDX 2.3 document, as much of it as kiln fills. Field order is the
// order of the JSON.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
	ExtractedLicences []spdxExtracted    `json:"hasExtractedLicensingInfos,omitempty"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
	Comment  string   `json:"comment,omitempty"`
}

type spdxPackage struct {
	SPDXID           string            `json:"SPDXID"`
	Name             string            `json:"name"`
	VersionInfo      string            `json:"versionInfo,omitempty"`
	Supplier         string            `json:"supplier,omitempty"`
	DownloadLocation string            `json:"downloadLocation"`
	FilesAnalyzed    bool              `json:"filesAnalyzed"`
	Checksums        []spdxChecksum    `json:"checksums,omitempty"`
	SourceInfo       string            `json:"sourceInfo,omitempty"`
	LicenseConcluded string            `json:"licenseConcluded"`
	LicenseDeclared  string            `json:"licenseDeclared"`
	CopyrightText    string            `json:"copyrightText"`
	Comment          string            `json:"comment,omitempty"`
	ExternalRefs     []spdxExternalRef `json:"externalRefs,omitempty"`
	PrimaryPurpose   string            `json:"primaryPackagePurpose,omitempty"`
}

type spdxChecksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxExternalRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

type spdxExtracted struct {
	LicenseID     string `json:"licenseId"`
	ExtractedText string `json:"extractedText"`
	Name          string `json:"name"`
}

const (
	noAssertion = "NOASSERTION"
	spdxImageID = "SPDXRef-Image"
)

func (m *model) spdx() *spdxDocument {
	v := m.v
	d := &spdxDocument{
		SPDXVersion: "SPDX-2.3",
		DataLicense: "CC0-1.0",
		SPDXID:      "SPDXRef-DOCUMENT",
		Name:        v.Ref().String(),
		CreationInfo: spdxCreationInfo{
			Created:  m.created,
			Creators: []string{"Tool: kiln"},
			Comment:  "The installed Debian packages of " + v.Ref().String() + " as its provenance records them, with kiln's inputs to the build.",
		},
	}
	img := spdxPackage{
		SPDXID:           spdxImageID,
		Name:             v.Image,
		VersionInfo:      strconv.Itoa(v.Number),
		DownloadLocation: noAssertion,
		LicenseConcluded: noAssertion,
		LicenseDeclared:  noAssertion,
		CopyrightText:    noAssertion,
		PrimaryPurpose:   "OPERATING_SYSTEM",
		Comment:          "kiln image version " + v.Ref().String() + ", method " + string(v.Provenance.Method),
	}
	if m.digest != "" {
		img.Checksums = []spdxChecksum{{Algorithm: "SHA256", Value: m.digest}}
	}
	d.Packages = append(d.Packages, img)
	rel := func(a, typ, b string) {
		d.Relationships = append(d.Relationships, spdxRelationship{Element: a, Type: typ, Related: b})
	}
	rel(d.SPDXID, "DESCRIBES", spdxImageID)

	for _, b := range m.built {
		id := "SPDXRef-Version-" + spdxIDPart(b.ref.String())
		d.Packages = append(d.Packages, spdxPackage{
			SPDXID: id, Name: b.ref.Image, VersionInfo: strconv.Itoa(b.ref.Number),
			DownloadLocation: noAssertion, LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
			PrimaryPurpose: "OPERATING_SYSTEM",
			Comment:        fmt.Sprintf("the %s version %s was built on; its own SBOM lists its packages", b.kind, b.ref),
		})
		rel(spdxImageID, "DESCENDANT_OF", id)
	}
	for i, s := range m.inputs {
		id := fmt.Sprintf("SPDXRef-Input-%d", i+1)
		p := spdxPackage{
			SPDXID: id, Name: s.Ref,
			DownloadLocation: noAssertion, LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
			PrimaryPurpose: inputPurpose(s.Kind),
			Comment:        "kiln build input of kind " + string(s.Kind),
		}
		if s.Digest != "" {
			p.Checksums = []spdxChecksum{{Algorithm: "SHA256", Value: strings.TrimPrefix(s.Digest, "sha256:")}}
		}
		d.Packages = append(d.Packages, p)
		rel(spdxImageID, "GENERATED_FROM", id)
	}
	srcIDs := make(map[[2]string]string, len(m.sources))
	for _, s := range m.sources {
		id := "SPDXRef-DebianSource-" + spdxIDPart(s.name+"-"+s.version)
		srcIDs[[2]string{s.name, s.version}] = id
		d.Packages = append(d.Packages, spdxPackage{
			SPDXID: id, Name: s.name, VersionInfo: s.version, Supplier: "Organization: Debian",
			DownloadLocation: noAssertion, LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
			PrimaryPurpose: "SOURCE",
			ExternalRefs:   []spdxExternalRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: s.purl}},
		})
	}
	for _, p := range m.pkgs {
		id := "SPDXRef-Debian-" + spdxIDPart(p.Name+"-"+p.Architecture)
		lic := noAssertion
		if p.licence != "" {
			lic = p.licence
		}
		d.Packages = append(d.Packages, spdxPackage{
			SPDXID: id, Name: p.Name, VersionInfo: p.Version, Supplier: "Organization: Debian",
			DownloadLocation: noAssertion, LicenseConcluded: noAssertion, LicenseDeclared: lic, CopyrightText: noAssertion,
			SourceInfo:   "built package from: " + p.srcName + " " + p.srcVersion,
			ExternalRefs: []spdxExternalRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: p.purl}},
		})
		rel(spdxImageID, "CONTAINS", id)
		rel(id, "GENERATED_FROM", srcIDs[[2]string{p.srcName, p.srcVersion}])
	}
	for _, r := range m.licenceRefs {
		d.ExtractedLicences = append(d.ExtractedLicences, spdxExtracted{
			LicenseID:     r,
			Name:          strings.TrimPrefix(r, "LicenseRef-"),
			ExtractedText: "A licence Debian names " + strings.TrimPrefix(r, "LicenseRef-") + " in the machine-readable copyright file of the packages that use it (/usr/share/doc/PACKAGE/copyright); it has no SPDX identifier.",
		})
	}
	return d
}

func inputPurpose(k kiln.SourceKind) string {
	switch k {
	case kiln.SourceOrigin:
		return "OPERATING_SYSTEM"
	case kiln.SourceDefinition, kiln.SourceConfig:
		return "FILE"
	}
	return "OTHER"
}

// spdxIDPart makes s fit an SPDX id (letters, digits, '.' and '-'). When
// characters had to be replaced, a short hash of s keeps ids of different
// names apart (libstdc++6 and libstdc--6).
func spdxIDPart(s string) string {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('-')
		changed = true
	}
	if changed {
		sum := sha256.Sum256([]byte(s))
		fmt.Fprintf(&b, "-%x", sum[:4])
	}
	return b.String()
}
