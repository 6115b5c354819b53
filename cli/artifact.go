package cli

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
)

// ArtifactRegistry is the OCI registry kiln keeps its artifacts in
// (--artifacts oci://HOST[:PORT]/REPOSITORY): every registered version is
// an image there with its signed provenance attached. nil with the local
// directory (the default).
type ArtifactRegistry interface {
	// String returns the registry's oci:// URL.
	String() string
	// PushVersion pushes v (its artifact, then its image, provenance and
	// tags); pushing a version already there is a no-op.
	PushVersion(ctx context.Context, v *kiln.Version) (*PushedImage, error)
	// CheckVersion pulls v's image from the registry, reads every blob
	// checking its digest, and checks the provenance attached there
	// against keys and v's record.
	CheckVersion(ctx context.Context, v *kiln.Version, keys []crypto.PublicKey) (*ImageCheck, error)
	// AttachSBOM attaches a signed SBOM kept with v (an attachment named
	// by sign.SBOMAttachment) to v's image as a referrer, and returns the
	// referrer's oci:// ref.
	AttachSBOM(ctx context.Context, v *kiln.Version, att *kiln.Attachment) (string, error)
	// SBOM returns the signed SBOM of predicateType (a DSSE envelope)
	// attached to v's image in the registry, and the referrer's ref;
	// ENOTFOUND when there is none. Verifying it is the caller's job.
	SBOM(ctx context.Context, v *kiln.Version, predicateType string) ([]byte, string, error)
}

// PushedImage says where a version's image is.
type PushedImage struct {
	Ref      string   `json:"ref"`
	Digest   string   `json:"digest"`
	Tags     []string `json:"tags"`
	Uploaded int64    `json:"uploaded"`
}

// ImageCheck is what `kiln version verify` read from the registry.
type ImageCheck struct {
	Ref    string   `json:"ref"`
	Layers []string `json:"layers"`
	Bytes  int64    `json:"bytes"`
}

// ImageVerifier checks a version in an OCI registry with nothing but
// the registry and the public keys: `kiln version verify oci://…` (or
// --from-registry) on a machine without kiln's database or data
// directory. cmd/kiln provides it; ref is
// oci://HOST[:PORT]/REPOSITORY/IMAGE:N (or @sha256:…). With signatureOnly
// the layers are compared with the signed artifact but not read.
type ImageVerifier func(ctx context.Context, cfg Config, ref string, keys []crypto.PublicKey, signatureOnly bool) (*RegistryVerification, error)

// RegistryVerification is what an ImageVerifier read and checked: the
// image, its signed provenance, and every blob the signature covers.
type RegistryVerification struct {
	// Version is the version the signed statement names (appserver-3).
	Version string `json:"version"`
	Image   string `json:"image"`
	Number  int    `json:"number"`
	SemVer  string `json:"semver,omitempty"`
	// Ref is the image's manifest, oci://HOST/REPOSITORY/IMAGE@sha256:…
	Ref string `json:"ref"`
	// Provenance is the referrer holding the signed envelope.
	Provenance string `json:"provenance"`
	// KeyID is the key whose signature verified.
	KeyID string `json:"key_id"`
	// Artifact is the signed artifact digest (a layered artifact's layer
	// list, or the one tar).
	Artifact string `json:"artifact"`
	// Layers, bottom first, and the disk images (qcow2, raw) the
	// statement signs, as checked.
	Layers     []VerifiedBlob `json:"layers"`
	DiskImages []VerifiedBlob `json:"disk_images"`
	// ContentRead says whether every blob was read and hashed (false with
	// --signature-only); Bytes is how many bytes were.
	ContentRead bool  `json:"content_read"`
	Bytes       int64 `json:"bytes"`
}

// VerifiedBlob is one blob of a RegistryVerification.
type VerifiedBlob struct {
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type,omitempty"`
	DiffID    string `json:"diff_id,omitempty"`
	// Format is a disk image's (qcow2, raw).
	Format string `json:"format,omitempty"`
}

// ArtifactCollector deletes the artifacts no registered, non-revoked
// version references (kiln artifact gc).
type ArtifactCollector interface {
	CollectArtifacts(ctx context.Context, opts GCOptions) (*GCReport, error)
}

// GCOptions say what `kiln artifact gc` does.
type GCOptions struct {
	// DryRun reports and deletes nothing.
	DryRun bool
	// Grace keeps content younger than this (and younger than the oldest
	// build still running on this machine): a build's artifact exists
	// before its version is registered.
	Grace time.Duration
}

// GCItem is one thing gc deleted (or would delete).
type GCItem struct {
	// Where is "local" or the registry's URL.
	Where string `json:"where"`
	// Kind is "artifact" (a local file or a registry blob) or "image" (a
	// version's manifest, its tags and provenance).
	Kind    string `json:"kind"`
	Ref     string `json:"ref"`
	Version string `json:"version,omitempty"`
	Size    int64  `json:"size,omitempty"`
	Reason  string `json:"reason"`
}

// GCReport says what gc did.
type GCReport struct {
	DryRun bool     `json:"dry_run"`
	Items  []GCItem `json:"items"`
	// Freed is the bytes of the local artifacts and registry blobs deleted.
	Freed int64    `json:"freed"`
	Kept  int      `json:"kept"`
	Notes []string `json:"notes,omitempty"`
}

// artifactCmd is `kiln artifact`: the artifact store (local directory or
// OCI registry) as a whole.
func (a *App) artifactCmd() *cobra.Command {
	c := group("artifact", "Push versions to the artifact registry, or delete what no version needs")
	c.AddCommand(a.artifactGCCmd(), a.artifactPushCmd())
	return c
}

func (a *App) artifactGCCmd() *cobra.Command {
	var opts GCOptions
	c := &cobra.Command{
		Use:   "gc",
		Short: "Delete artifacts and registry images that no registered, non-revoked version references",
		Long: "Deletes, locally and in the registry (--artifacts oci://…), what no registered, non-revoked version references:\n" +
			"local artifact files (layer tarballs the build cache names stay: kiln cache prune removes those), and in the registry\n" +
			"the images (manifest, tags, provenance) of revoked versions and tags no version of this database has, and their layer blobs.\n" +
			"Content younger than --grace, or than the oldest build running on this machine, is kept: a build's artifact exists\n" +
			"before its version is registered. The registry frees the space only when its own garbage collection runs\n" +
			"(docker-registry: `registry garbage-collect --delete-untagged CONFIG` with deletes enabled; see docs/registry.md).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON); err != nil {
				return err
			}
			if opts.Grace < 0 {
				return kiln.FieldErrorf(kiln.EINVALID, "--grace", "%s is negative; give a duration such as 1h", opts.Grace)
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			if svc.ArtifactGC == nil {
				return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln has no artifact store to collect; run kiln artifact gc on a machine with the data directory")
			}
			rep, err := svc.ArtifactGC.CollectArtifacts(cmd.Context(), opts)
			if rep == nil {
				return err
			}
			rerr := a.render(cmd.OutOrStdout(), rep, func(w io.Writer) error {
				printGC(w, rep)
				return nil
			})
			if err != nil {
				return err
			}
			return rerr
		},
	}
	c.Flags().BoolVar(&opts.DryRun, "dry-run", false, "list what would be deleted and delete nothing")
	c.Flags().DurationVar(&opts.Grace, "grace", time.Hour, "keep content younger than this (builds in flight on other machines)")
	return c
}

func printGC(w io.Writer, rep *GCReport) {
	verb := "deleted"
	if rep.DryRun {
		verb = "would delete"
	}
	if len(rep.Items) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "WHERE\tKIND\tREF\tVERSION\tSIZE\tREASON")
		for _, it := range rep.Items {
			size := ""
			if it.Size > 0 {
				size = build.FormatBytes(it.Size)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Where, it.Kind, it.Ref, it.Version, size, it.Reason)
		}
		_ = tw.Flush()
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
	fmt.Fprintf(w, "%s %d item(s), %s; kept %d\n", verb, len(rep.Items), build.FormatBytes(rep.Freed), rep.Kept)
}

func (a *App) artifactPushCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "push IMAGE-N",
		Short: "Push a registered version to the artifact registry as an OCI image with its signed provenance",
		Long: "Pushes a version's artifact, its OCI image (REPOSITORY/IMAGE:N and its semver tag) and its signed provenance to the\n" +
			"registry given by --artifacts oci://…. Builds do this when they register a version; use it for versions built before\n" +
			"the registry was configured, or after a push that did not finish. Pushing a version already there is a no-op.",
		Args: exactArgs(1, "a version name such as appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			if svc.Images == nil {
				return kiln.Errorf(kiln.EINVALID, "no artifact registry is configured; give --artifacts oci://HOST[:PORT]/REPOSITORY (or KILN_ARTIFACTS)")
			}
			v, err := svc.Registry.FindVersion(cmd.Context(), ref)
			if err != nil {
				return err
			}
			p, err := svc.Images.PushVersion(cmd.Context(), v)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), p, func(w io.Writer) error {
				fmt.Fprintf(w, "%s: pushed %s (tags %v, %s uploaded)\n", v.Name, p.Ref, p.Tags, build.FormatBytes(p.Uploaded))
				return nil
			})
		},
	}
}
