package build

import (
	"context"
	"fmt"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sbom"
	"github.com/kiln-project/kiln/sign"
)

// SBOMSealer signs an SBOM document about a version and returns it as the
// attachment to keep with it; *sign.Signer is one.
type SBOMSealer interface {
	SealSBOM(v *kiln.Version, predicateType string, doc []byte) (*kiln.Attachment, error)
}

// sbomFormats are the SBOMs every build keeps, with their in-toto
// predicate types.
var sbomFormats = []struct {
	format    sbom.Format
	predicate string
}{
	{sbom.FormatSPDX, sign.PredicateSPDX},
	{sbom.FormatCycloneDX, sign.PredicateCycloneDX},
}

// readLicences reads the packages' licences from the final root
// filesystem at root for the SBOM. A failure is a warning in the build
// log: the SBOM then says NOASSERTION for every licence.
func (r *run) readLicences(root string, pkgs []kiln.Package) {
	lic, st, err := sbom.ReadLicenses(root, pkgs)
	if err != nil {
		r.warn("licences for the SBOM could not be read, so it says NOASSERTION for every package: %v", err)
		return
	}
	r.licences = lic
	r.rep.logf("licences: %d packages with a machine-readable copyright file, %d free-form, %d without one", st.Licensed, st.NotMachineReadable, st.Missing)
}

// attachSBOMs generates v's SBOM in SPDX 2.3 and CycloneDX 1.6, signs
// each as an in-toto attestation and keeps it with v.
//
// A failure does not fail the build: v is recorded with its signed
// provenance and package manifest already, from which `kiln version sbom
// v --generate` makes the same SBOM later. It is a warning in the build
// log and kiln's log naming that command, and the SBOM that failed is
// not kept (the other may be).
func (r *run) attachSBOMs(ctx context.Context, v *kiln.Version) {
	b := r.b
	if b.SBOM == nil {
		r.rep.logf("no signing key at hand: no SBOM kept with %s", v.Name)
		return
	}
	opts := sbom.Options{Licenses: r.licences, Distro: sbom.DistroOf(ctx, r.b.Registry, v)}
	for _, f := range sbomFormats {
		if err := r.attachSBOM(ctx, v, f.format, f.predicate, opts); err != nil {
			r.warn("no %s SBOM kept with %s: %v; make it later with `kiln version sbom %s --format %s --generate`", f.format, v.Name, err, v.Name, f.format)
		}
	}
}

func (r *run) attachSBOM(ctx context.Context, v *kiln.Version, f sbom.Format, predicate string, opts sbom.Options) error {
	doc, st, err := sbom.Generate(v, f, opts)
	if err != nil {
		return err
	}
	att, err := r.b.SBOM.SealSBOM(v, predicate, doc)
	if err != nil {
		return err
	}
	att.CreatedAt = r.b.Clock().UTC()
	att.Size = int64(len(att.Data))
	if err := r.b.Registry.AddAttachment(ctx, v.Ref(), att); err != nil {
		return fmt.Errorf("store it: %w", err)
	}
	r.rep.logf("%s SBOM kept as %s: %d packages from %d source packages, licence NOASSERTION for %d", f, att.Name, st.Packages, st.SourcePackages, st.NoAssertion)
	return nil
}

// warn writes a warning into the build log and kiln's log.
func (r *run) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.rep.logf("warning: %s", msg)
	r.b.Logger.Warn(msg, "image", r.img.Name)
}
