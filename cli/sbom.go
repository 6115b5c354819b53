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
		format, rootfs            string
		generate, raw, inRegistry bool
	)
	c := &cobra.Command{
		Use:   "sbom IMAGE-N",
		Short: "Print a version's SBOM (SPDX 2.3 or CycloneDX 1.6 JSON), verified against kiln's key",
		Long: `Print the software bill of materials kept with a version as a signed in-toto
attestation: every installed package with its version, architecture, source
package and package URL, licences where the package's copyright file is
machine-readable, the version it was built on, and kiln's inputs with their
digests.

With --artifacts oci://… the SBOMs are also referrers of the version's image
in the registry. --from-registry reads the SBOM from there instead of the
database; a version whose database record keeps none is looked up there
too. Either way the signature is verified against kiln's keys (its own and
those it rotated out) and the version's record before the SBOM is printed.

A version built before kiln wrote SBOMs has none; --generate makes one from
its stored package manifest, signs it and keeps it with the version (and
attaches it to the version's image in the registry).
Licences need the image's files: give the unpacked root filesystem with
--rootfs, or they are NOASSERTION.`,
		Example: "  kiln version sbom appserver-3 --format spdx > appserver-3.spdx.json\n  kiln version sbom appserver-3 --format cyclonedx --generate\n  kiln --artifacts oci://registry.example.com/kiln version sbom appserver-3 --from-registry",
		Args:    exactArgs(1, "a version name such as appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := sbom.ParseFormat("--format", format)
			if err != nil {
				return err
			}
			if rootfs != "" && !generate {
				return kiln.FieldErrorf(kiln.EINVALID, "--rootfs", "--rootfs is read only with --generate")
			}
			if inRegistry && generate {
				return kiln.FieldErrorf(kiln.EINVALID, "--from-registry", "--from-registry reads what is in the registry; --generate makes an SBOM from the database's manifest: give one of them")
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
			if inRegistry {
				if svc.Images == nil {
					return kiln.FieldErrorf(kiln.EINVALID, "--from-registry", "no registry to read the SBOM of %s from: give --artifacts oci://HOST/REPOSITORY (or KILN_ARTIFACTS)", v.Name)
				}
				return a.printRegistrySBOM(cmd, svc, v, pt, raw)
			}
			att, err := reg.Attachment(cmd.Context(), v.Ref(), sign.SBOMAttachment(pt))
			switch {
			case err == nil:
				return a.printStoredSBOM(cmd, svc, v, att.Data, raw)
			case kiln.ErrorCode(err) != kiln.ENOTFOUND:
				return err
			case !generate && svc.Images != nil:
				// The database keeps none: the registry may (a version pushed
				// from a machine whose database does).
				rerr := a.printRegistrySBOM(cmd, svc, v, pt, raw)
				if kiln.ErrorCode(rerr) != kiln.ENOTFOUND {
					return rerr
				}
				return kiln.Errorf(kiln.ENOTFOUND, "%s has no stored %s SBOM, nor one in the registry (%s); make one from its stored package manifest with `kiln version sbom %s --format %s --generate`",
					v.Name, f, svc.Images, v.Name, f)
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
	fl.BoolVar(&inRegistry, "from-registry", false, "read the SBOM attached to the version's image in the registry (--artifacts oci://…), not the database's copy")
	return c
}

// printRegistrySBOM reads the SBOM of predicate type pt attached to v's
// image in the registry and prints it verified (or, with raw, the
// envelope as it is there).
func (a *App) printRegistrySBOM(cmd *cobra.Command, svc *Services, v *kiln.Version, pt string, raw bool) error {
	env, ref, err := svc.Images.SBOM(cmd.Context(), v, pt)
	if err != nil {
		return err
	}
	if err := a.printStoredSBOM(cmd, svc, v, env, raw); err != nil {
		return kiln.Errorf(kiln.ErrorCode(err), "the SBOM attached in the registry (%s): %s", ref, kiln.ErrorMessage(err))
	}
	if raw {
		fmt.Fprintf(cmd.ErrOrStderr(), "read from the registry: %s (not verified: --envelope)\n", ref)
	} else {
		fmt.Fprintf(cmd.ErrOrStderr(), "read from the registry and verified against kiln's keys: %s\n", ref)
	}
	return nil
}

// printStoredSBOM prints the SBOM in envelope after verifying it against
// kiln's keys (its own and those it rotated out) and v's record, or the
// envelope as it is with raw.
func (a *App) printStoredSBOM(cmd *cobra.Command, svc *Services, v *kiln.Version, envelope []byte, raw bool) error {
	if raw {
		_, err := cmd.OutOrStdout().Write(append(envelope, '\n'))
		return err
	}
	if svc.Signer == nil {
		return kiln.Errorf(kiln.EINVALID, "no signing key at hand to verify the SBOM of %s; print the envelope with --envelope and verify it yourself", v.Name)
	}
	keys, _ := signerKeys(svc.Signer)
	_, doc, err := sign.VerifySBOMWith(keys, envelope, v)
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
		if svc.Images != nil {
			ref, err := svc.Images.AttachSBOM(ctx, v, att)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "not attached to its image in the registry: %s\n", kiln.ErrorMessage(err))
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "attached to its image in the registry: %s\n", ref)
			}
		}
		if raw {
			_, err := cmd.OutOrStdout().Write(append(att.Data, '\n'))
			return err
		}
	}
	_, err = cmd.OutOrStdout().Write(doc)
	return err
}
