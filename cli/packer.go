package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
		image  string
		dryRun bool
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

The whole manifest is checked first and recorded in one transaction: a
malformed manifest is refused naming the file and the JSON path, and nothing
is imported. Builds imported before (same run uuid and build name) are
skipped, so the command can run after every Packer run.

kiln keeps the record, not the image: an external version is not signed,
verified or launched by kiln.`,
		Example: "  kiln version import packer-manifest packer-manifest.json --image web",
		Args:    exactArgs(1, "the manifest file"),
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
			reg, err := a.registry(cmd)
			if err != nil {
				return err
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
						continue
					}
				}
				nv.Provenance.BuiltBy = "packer (recorded by " + kiln.ActorFrom(ctx) + ")"
				todo = append(todo, nv)
			}
			if len(todo) == 0 {
				fmt.Fprintf(w, "nothing new to import from %s\n", file)
				return nil
			}
			if dryRun {
				return a.printImported(cmd, todo, nil)
			}
			var vs []*kiln.Version
			if imp, ok := reg.(kiln.VersionImporter); ok {
				// One transaction: all or nothing.
				if vs, err = imp.CreateVersions(ctx, todo); err != nil {
					return err
				}
			} else {
				// Through a server: every build was checked above; a
				// failure part-way leaves the earlier ones recorded, and
				// running the command again skips them.
				for i, nv := range todo {
					v, err := reg.CreateVersion(ctx, nv)
					if err != nil {
						return fmt.Errorf("build %d of %d (%d recorded; run the command again to record the rest): %w", i+1, len(todo), i, err)
					}
					vs = append(vs, v)
				}
			}
			return a.printImported(cmd, todo, vs)
		},
	}
	c.Flags().StringVar(&image, "image", "", "record every build as a version of this image (default: each build's name)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "check the manifest and show what would be recorded, without recording it")
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
