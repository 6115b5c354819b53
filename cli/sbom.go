package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sbom"
	"github.com/kiln-project/kiln/sign"
)

// sbomPredicate maps an SBOM format to its in-toto predicate type.
func sbomPredicate(f sbom.Format) string {
	if f == sbom.FormatCycloneDX {
		return sign.PredicateCycloneDX
	}
	return sign.PredicateSPDX
}

func (a *App) versionSBOMCmd() *cobra.Command {
	var (
		format, rootfs string
		generate, raw  bool
	)
	c := &cobra.Command{
		Use:   "sbom IMAGE-N",
		Short: "Print a version's SBOM (SPDX 2.3 or CycloneDX 1.6 JSON), verified against kiln's key",
		Long: `Print the software bill of materials kept with a version as a signed in-toto
attestation: every installed package with its version, architecture, source
package and package URL, licences where the package's copyright file is
machine-readable, the version it was built on, and kiln's inputs with their
digests.

A version built before kiln wrote SBOMs has none; --generate makes one from
its stored package manifest, signs it and keeps it with the version.
Licences need the image's files: give the unpacked root filesystem with
--rootfs, or they are NOASSERTION.`,
		Example: "  kiln version sbom appserver-3 --format spdx > appserver-3.spdx.json\n  kiln version sbom appserver-3 --format cyclonedx --generate",
		Args:    exactArgs(1, "a version name such as appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := sbom.ParseFormat("--format", format)
			if err != nil {
				return err
			}
			if rootfs != "" && !generate {
				return kiln.FieldErrorf(kiln.EINVALID, "--rootfs", "--rootfs is read only with --generate")
			}
			reg, v, err := a.findVersion(cmd, args[0])
			if err != nil {
				return err
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			pt := sbomPredicate(f)
			att, err := reg.Attachment(cmd.Context(), v.Ref(), sign.SBOMAttachment(pt))
			switch {
			case err == nil:
				return a.printStoredSBOM(cmd, svc, v, att, raw)
			case kiln.ErrorCode(err) != kiln.ENOTFOUND:
				return err
			case !generate:
				return kiln.Errorf(kiln.ENOTFOUND, "%s has no stored %s SBOM (it was recorded before kiln wrote SBOMs, or not built by kiln); make one from its stored package manifest with `kiln version sbom %s --format %s --generate`",
					v.Name, f, v.Name, f)
			}
			return a.generateSBOM(cmd, svc, reg, v, f, rootfs, raw)
		},
	}
	fl := c.Flags()
	fl.StringVar(&format, "format", "spdx", "SBOM format: spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.6 JSON)")
	fl.BoolVar(&generate, "generate", false, "when the version has no stored SBOM, make one from its stored manifest, sign it and keep it with the version")
	fl.StringVar(&rootfs, "rootfs", "", "with --generate: the version's unpacked root filesystem, to read licences from /usr/share/doc/*/copyright")
	fl.BoolVar(&raw, "envelope", false, "print the signed DSSE envelope instead of the SBOM document")
	return c
}

func (a *App) printStoredSBOM(cmd *cobra.Command, svc *Services, v *kiln.Version, att *kiln.Attachment, raw bool) error {
	if raw {
		_, err := cmd.OutOrStdout().Write(append(att.Data, '\n'))
		return err
	}
	if svc.Signer == nil {
		return kiln.Errorf(kiln.EINVALID, "no signing key at hand to verify the SBOM of %s; print the envelope with --envelope and verify it yourself", v.Name)
	}
	_, doc, err := sign.VerifySBOM(svc.Signer.Public(), att.Data, v)
	if err != nil {
		return err
	}
	_, err = cmd.OutOrStdout().Write(doc)
	return err
}

func (a *App) generateSBOM(cmd *cobra.Command, svc *Services, reg kiln.Registry, v *kiln.Version, f sbom.Format, rootfs string, raw bool) error {
	ctx := cmd.Context()
	opts := sbom.Options{Distro: sbom.DistroOf(ctx, reg, v)}
	if rootfs != "" {
		lic, st, err := sbom.ReadLicenses(rootfs, v.Provenance.Packages)
		if err != nil {
			return kiln.FieldErrorf(kiln.EINVALID, "--rootfs", "%v", err)
		}
		opts.Licenses = lic
		fmt.Fprintf(cmd.ErrOrStderr(), "licences: %d packages with a machine-readable copyright file, %d free-form, %d without one\n", st.Licensed, st.NotMachineReadable, st.Missing)
	}
	doc, st, err := sbom.Generate(v, f, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d packages from %d source packages, %d inputs; licence NOASSERTION for %d of %d packages\n",
		v.Name, st.Packages, st.SourcePackages, st.Inputs, st.NoAssertion, st.Packages)
	a1 := v.Provenance.Artifact
	switch {
	case a1 == nil || a1.External():
		fmt.Fprintf(cmd.ErrOrStderr(), "%s has no artifact digest to bind a signature to: the SBOM is printed, not signed or kept\n", v.Name)
	case svc.Signer == nil:
		fmt.Fprintf(cmd.ErrOrStderr(), "no signing key at hand: the SBOM is printed, not signed or kept\n")
	default:
		att, err := svc.Signer.SealSBOM(v, sbomPredicate(f), doc)
		if err != nil {
			return err
		}
		if err := reg.AddAttachment(ctx, v.Ref(), att); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "kept with %s as %s\n", v.Name, att.Name)
		if raw {
			_, err := cmd.OutOrStdout().Write(append(att.Data, '\n'))
			return err
		}
	}
	_, err = cmd.OutOrStdout().Write(doc)
	return err
}
