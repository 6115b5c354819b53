package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/packer"
)

func (a *App) versionImportCmd() *cobra.Command {
	cmd := group("import", "Record images other tools built as versions of method external")
	cmd.AddCommand(a.versionImportPackerCmd())
	return cmd
}

func (a *App) versionImportPackerCmd() *cobra.Command {
	var (
		image    string
		dryRun   bool
		packages []string
	)
	c := &cobra.Command{
		Use:   "packer-manifest FILE",
		Short: "Record the builds of a Packer manifest (packer-manifest.json) as versions",
		Long: `Record every build of a Packer manifest — what Packer's manifest
post-processor writes — as a version of method external: its artifact is an
external reference packer:BUILDER:ARTIFACT_ID (e.g.
packer:amazon-ebs:us-east-1:ami-0abc…) with no digest, its build time is the
version's, and custom_data become tags, with packer_build_name,
packer_builder_type and packer_run_uuid. Versions are numbered in build-time
order and start as candidate; move them on with kiln version status.

The whole manifest is checked first and recorded in one transaction, here
or through --server (one request, one transaction on the server): a
malformed manifest is refused naming the file and the JSON path, and nothing
is imported. Builds imported before (same run uuid and build name) are
skipped, so the command can run after every Packer run.

--packages ARTIFACT_ID=FILE gives the build with that artifact id its
package manifest (` + PackageQuery + `
output, run on the image by a Packer provisioner), so exposure sees it;
a manifest whose builds are all new may take --packages FILE when it has one
build. Without it, give one later with kiln version packages set.

kiln keeps the record, not the image: an external version is not
verified or launched by kiln. Servers made from it check in with
kiln agent checkin --artifact ARTIFACT_ID (docs/supply-chain.md).`,
		Example: "  kiln version import packer-manifest packer-manifest.json --image web\n" +
			"  kiln version import packer-manifest packer-manifest.json --image web --packages us-east-1:ami-0abc123=packages.tsv",
		Args: exactArgs(1, "the manifest file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			file := args[0]
			f, err := os.Open(file)
			if err != nil {
				return kiln.FieldErrorf(kiln.EINVALID, file, "cannot read the manifest: %v", err)
			}
			defer f.Close()
			m, err := packer.Parse(filepath.Base(file), f)
			if err != nil {
				return err
			}
			if image != "" {
				if err := kiln.ValidateImageName(image); err != nil {
					return kiln.FieldErrorf(kiln.EINVALID, "--image", "%s", kiln.ErrorMessage(err))
				}
			}
			nvs, err := m.Versions(filepath.Base(file), packer.Options{Image: image})
			if err != nil {
				return err
			}
			manifests, err := buildPackages(m, packages)
			if err != nil {
				return err
			}
			reg, err := a.registry(cmd)
			if err != nil {
				return err
			}
			imp, ok := reg.(kiln.VersionImporter)
			if !ok {
				return kiln.Errorf(kiln.EUNAVAILABLE, "this registry cannot record the builds all or nothing, so nothing was imported")
			}
			checked := map[string]bool{}
			var todo []*kiln.NewVersion
			w := cmd.ErrOrStderr()
			for _, nv := range nvs {
				if !checked[nv.Image] {
					if _, err := reg.FindImage(ctx, nv.Image); kiln.ErrorCode(err) == kiln.ENOTFOUND {
						return kiln.Errorf(kiln.ENOTFOUND, "image %s does not exist, so nothing was imported; create it with `kiln image create %s`, or record the builds under another image with --image", nv.Image, nv.Image)
					} else if err != nil {
						return err
					}
					checked[nv.Image] = true
				}
				if nv.Tags["packer_run_uuid"] != "" {
					_, n, err := reg.ListVersions(ctx, kiln.VersionFilter{Image: nv.Image, Limit: 1, Tags: kiln.Tags{
						"packer_run_uuid": nv.Tags["packer_run_uuid"], "packer_build_name": nv.Tags["packer_build_name"]}})
					if err != nil {
						return err
					}
					if n > 0 {
						fmt.Fprintf(w, "skipped build %s of run %s: imported before\n", nv.Tags["packer_build_name"], nv.Tags["packer_run_uuid"])
						if _, given := manifests[nv.Provenance.Artifact.Ref]; given {
							fmt.Fprintf(w, "  its --packages were not recorded; give them with kiln version packages set %s-N FILE\n", nv.Image)
						}
						continue
					}
				}
				nv.Provenance.BuiltBy = "packer (recorded by " + kiln.ActorFrom(ctx) + ")"
				nv.Provenance.Packages = manifests[nv.Provenance.Artifact.Ref]
				todo = append(todo, nv)
			}
			if len(todo) == 0 {
				fmt.Fprintf(w, "nothing new to import from %s\n", file)
				return nil
			}
			if dryRun {
				return a.printImported(cmd, todo, nil)
			}
			// One transaction, here or on the server: all or nothing.
			vs, err := imp.CreateVersions(ctx, todo)
			if err != nil {
				return err
			}
			return a.printImported(cmd, todo, vs)
		},
	}
	c.Flags().StringVar(&image, "image", "", "record every build as a version of this image (default: each build's name)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "check the manifest and show what would be recorded, without recording it")
	c.Flags().StringArrayVar(&packages, "packages", nil, "ARTIFACT_ID=FILE: the package manifest of the build with that artifact id (dpkg-query -W output or a JSON array); FILE alone for a manifest of one build (repeatable)")
	return c
}

func (a *App) printImported(cmd *cobra.Command, nvs []*kiln.NewVersion, vs []*kiln.Version) error {
	if a.cfg.Output == FormatJSON {
		if vs == nil {
			return writeJSON(cmd.OutOrStdout(), nvs)
		}
		return writeJSON(cmd.OutOrStdout(), vs)
	}
	t := newTable(cmd.OutOrStdout(), "VERSION", "ARTIFACT", "SIZE", "BUILT")
	for i, nv := range nvs {
		name := nv.Image + " (dry run)"
		if vs != nil {
			name = vs[i].Name
		}
		p := nv.Provenance
		t.row(name, p.Artifact.Ref, strconv.FormatInt(p.Artifact.Size, 10), p.FinishedAt.UTC().Format(time.RFC3339))
	}
	return t.flush()
}

// buildPackages reads the --packages values of an import: the package
// manifest of each build, by the build's artifact reference. Every value
// must name a build of the manifest, and one build only.
func buildPackages(m *packer.Manifest, values []string) (map[string][]kiln.Package, error) {
	out := map[string][]kiln.Package{}
	for _, val := range values {
		id, file, ok := strings.Cut(val, "=")
		var matches []packer.Build
		if !ok {
			file = val
			if len(m.Builds) != 1 {
				return nil, kiln.FieldErrorf(kiln.EINVALID, "--packages", "%q names no build and the manifest has %d; write ARTIFACT_ID=FILE, e.g. %s=%s", val, len(m.Builds), m.Builds[0].ArtifactID, val)
			}
			matches = m.Builds
		} else {
			for _, b := range m.Builds {
				// The artifact id, one region's part of a multi-region
				// AMI, or the whole reference: what a check-in may name.
				if slices.Contains(kiln.ExternalNames(packer.ArtifactRef(b.BuilderType, b.ArtifactID)), id) {
					matches = append(matches, b)
				}
			}
		}
		switch {
		case len(matches) == 0:
			ids := make([]string, 0, len(m.Builds))
			for _, b := range m.Builds {
				if !slices.Contains(ids, b.ArtifactID) {
					ids = append(ids, b.ArtifactID)
				}
			}
			return nil, kiln.FieldErrorf(kiln.EINVALID, "--packages", "no build of the manifest has artifact id %q; it has %s", id, strings.Join(ids, ", "))
		case len(matches) > 1:
			return nil, kiln.FieldErrorf(kiln.EINVALID, "--packages", "%d builds of the manifest have artifact id %q, so it does not say which build the packages are of; import them and use kiln version packages set IMAGE-N FILE", len(matches), id)
		}
		ref := packer.ArtifactRef(matches[0].BuilderType, matches[0].ArtifactID)
		if _, dup := out[ref]; dup {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "--packages", "build %s is given packages twice", matches[0].ArtifactID)
		}
		pkgs, err := readPackagesAs("--packages", file)
		if err != nil {
			return nil, err
		}
		out[ref] = pkgs
	}
	return out, nil
}

func (a *App) versionPackagesCmd() *cobra.Command {
	cmd := group("packages", "The package manifest of a version kiln did not build")
	cmd.AddCommand(&cobra.Command{
		Use:   "set IMAGE-N FILE",
		Short: "Give an external (imported) version its package manifest, once",
		Long: `Record the installed packages of a version of method external — an
image Packer built, imported with kiln version import packer-manifest — so
that kiln fleet exposed and scans see it. FILE is the output of

  ` + PackageQuery + `

run on the image (a Packer provisioner, or a server made from it), or a JSON
array of {name, version, architecture, source, source_version}.

A version's manifest never changes: a version kiln built has the manifest
its build read, and an external version takes one once. The change is
audited and shown in kiln version history. An external version is not
signed: the manifest is your word, as the rest of its record is.`,
		Example: "  kiln version packages set web-3 packages.tsv",
		Args:    exactArgs(2, "the version (IMAGE-N) and the manifest file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := kiln.ParseVersionRef("IMAGE-N", args[0])
			if err != nil {
				return err
			}
			pkgs, err := readPackagesAs("FILE", args[1])
			if err != nil {
				return err
			}
			if len(pkgs) == 0 {
				return kiln.FieldErrorf(kiln.EINVALID, "FILE", "%s lists no packages; it is the output of %s", args[1], PackageQuery)
			}
			reg, err := a.registry(cmd)
			if err != nil {
				return err
			}
			pr, ok := reg.(kiln.PackageRecorder)
			if !ok {
				return kiln.Errorf(kiln.EUNAVAILABLE, "this registry cannot record package manifests")
			}
			v, err := pr.SetPackages(cmd.Context(), ref, pkgs)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), v, func(_ io.Writer) error {
				cmd.Printf("%s: %d packages recorded\n", v.Name, len(v.Provenance.Packages))
				return nil
			})
		},
	})
	return cmd
}
