package main

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/artifact/oci"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/sign"
)

// openArtifacts opens the artifact store cfg names: the local directory
// under cfg.DataDir, and with --artifacts oci://… the registry read
// through it (images is then non-nil).
func openArtifacts(cfg cli.Config, reg kiln.Registry, logger *slog.Logger) (*artifact.Store, kiln.ArtifactStore, *ociArtifacts, error) {
	local, err := artifact.Open(cfg.DataDir)
	if err != nil {
		return nil, nil, nil, err
	}
	if cfg.Artifacts == "" {
		return local, local, nil, nil
	}
	st, err := oci.Open(cfg.Artifacts, oci.Options{
		CredentialsFile: cfg.ArtifactsCredentials,
		CAFile:          cfg.ArtifactsCA,
		PlainHTTP:       cfg.ArtifactsPlainHTTP,
		SpoolDir:        filepath.Dir(local.Dir()), // beside the artifacts: room for the largest
		UserAgent:       "kiln/" + version,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	rt := &artifact.ReadThrough{Local: local, Remote: st}
	return local, rt, &ociArtifacts{oci: st, local: local, arts: rt, reg: reg, logger: logger}, nil
}

// ociArtifacts is the registry side of kiln's artifacts: versions pushed
// as OCI images, verified from the registry, collected.
type ociArtifacts struct {
	oci    *oci.Store
	local  *artifact.Store
	arts   *artifact.ReadThrough
	reg    kiln.Registry
	logger *slog.Logger
}

var _ cli.ArtifactRegistry = (*ociArtifacts)(nil)

func (o *ociArtifacts) String() string { return o.oci.String() }

// PushVersion uploads v's artifact to the store's repository (a no-op
// when it is there), then pushes v as REPOSITORY/IMAGE:N (and its semver
// tag) with the signed provenance from the database as a referrer.
func (o *ociArtifacts) PushVersion(ctx context.Context, v *kiln.Version) (*cli.PushedImage, error) {
	a := v.Provenance.Artifact
	if a == nil || a.External() {
		return nil, kiln.Errorf(kiln.EINVALID, "%s has no artifact kiln keeps (registered by hand, or an external image); there is nothing to push", v.Name)
	}
	att, err := o.reg.Attachment(ctx, v.Ref(), sign.EnvelopeAttachment)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		return nil, kiln.Errorf(kiln.ECONFLICT, "%s has no signed provenance; kiln pushes only signed versions", v.Name)
	}
	if err != nil {
		return nil, err
	}
	if err := o.upload(ctx, &v.Provenance); err != nil {
		return nil, fmt.Errorf("push %s: %w", v.Name, err)
	}
	atts, err := o.sbomAttestations(ctx, v)
	if err != nil {
		return nil, err
	}
	created := v.Provenance.FinishedAt
	if created.IsZero() {
		created = v.CreatedAt
	}
	var mount []string
	if b := v.Provenance.Base; b != nil {
		mount = append(mount, b.Image) // a child's lower layers are its base's
	}
	p, err := o.oci.PushVersion(ctx, &oci.Version{
		Image:        v.Image,
		Number:       v.Number,
		SemVer:       v.SemVer,
		Release:      releaseLabels(v),
		Created:      created,
		Layers:       imageLayers(a),
		MountFrom:    mount,
		Envelope:     att.Data,
		Attestations: atts,
	}, o.arts)
	if err != nil {
		return nil, err
	}
	// Again, now that the image holds the layers: for a version pushed
	// after its registration (`kiln artifact push`, no lease), a gc that
	// ran meanwhile (the blob belonged to a revoked version with the same
	// content) must not leave the store's repository, which other
	// machines read artifacts from, without it.
	if err := o.upload(ctx, &v.Provenance); err != nil {
		return nil, err
	}
	return &cli.PushedImage{Ref: p.Ref, Digest: p.Digest, Tags: p.Tags, Uploaded: p.Uploaded}, nil
}

// sbomArtifactTypes maps the in-toto predicate types of the SBOMs kiln
// keeps with a version to the artifact types of their referrers.
var sbomArtifactTypes = map[string]string{
	sign.PredicateSPDX:      oci.ArtifactTypeSPDX,
	sign.PredicateCycloneDX: oci.ArtifactTypeCycloneDX,
}

// sbomAttestations are the signed SBOMs kept with v, as the referrers to
// push beside its provenance; a version built before kiln wrote SBOMs has
// none.
func (o *ociArtifacts) sbomAttestations(ctx context.Context, v *kiln.Version) ([]oci.Attestation, error) {
	var out []oci.Attestation
	for _, pt := range []string{sign.PredicateSPDX, sign.PredicateCycloneDX} {
		att, err := o.reg.Attachment(ctx, v.Ref(), sign.SBOMAttachment(pt))
		if kiln.ErrorCode(err) == kiln.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, oci.Attestation{ArtifactType: sbomArtifactTypes[pt], PredicateType: pt, Envelope: att.Data})
	}
	return out, nil
}

// sbomPredicate is the predicate type of an SBOM attachment's name; ""
// for any other attachment.
func sbomPredicate(name string) string {
	for _, pt := range []string{sign.PredicateSPDX, sign.PredicateCycloneDX} {
		if sign.SBOMAttachment(pt) == name {
			return pt
		}
	}
	return ""
}

// AttachSBOM attaches a signed SBOM to v's image REPOSITORY/IMAGE:N.
func (o *ociArtifacts) AttachSBOM(ctx context.Context, v *kiln.Version, att *kiln.Attachment) (string, error) {
	pt := sbomPredicate(att.Name)
	if pt == "" {
		return "", kiln.Errorf(kiln.EINVALID, "attachment %s of %s is not an SBOM kiln pushes to the registry", att.Name, v.Name)
	}
	ref, err := o.oci.Attach(ctx, v.Image, strconv.Itoa(v.Number), oci.Attestation{ArtifactType: sbomArtifactTypes[pt], PredicateType: pt, Envelope: att.Data})
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		return "", kiln.Errorf(kiln.ENOTFOUND, "%s has no image %s:%d in %s to attach its SBOM to; run `kiln artifact push %s`, which pushes the image with its SBOMs", v.Name, v.Image, v.Number, o.oci.ImageURL(v.Image), v.Name)
	}
	return ref, err
}

// SBOM reads the signed SBOM of predicateType attached to v's image.
func (o *ociArtifacts) SBOM(ctx context.Context, v *kiln.Version, predicateType string) ([]byte, string, error) {
	at := sbomArtifactTypes[predicateType]
	if at == "" {
		return nil, "", kiln.Errorf(kiln.EINVALID, "SBOM predicate type %q is not one kiln pushes", predicateType)
	}
	env, ref, err := o.oci.Attestation(ctx, v.Image, strconv.Itoa(v.Number), at)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		return nil, "", kiln.Errorf(kiln.ENOTFOUND, "%s has no %s SBOM in the registry (%s:%d in %s): %s; push it with `kiln artifact push %s` from a machine whose database keeps it",
			v.Name, sbomFormatName(predicateType), v.Image, v.Number, o.oci.ImageURL(v.Image), kiln.ErrorMessage(err), v.Name)
	}
	return env, ref, err
}

func sbomFormatName(predicateType string) string {
	if predicateType == sign.PredicateCycloneDX {
		return "cyclonedx"
	}
	return "spdx"
}

// upload puts every blob of p's content into the store's repository (a
// no-op for one already there).
func (o *ociArtifacts) upload(ctx context.Context, p *kiln.Provenance) error {
	for _, d := range p.ContentDigests() {
		if _, err := o.oci.PutFrom(ctx, o.arts, d); err != nil {
			return err
		}
	}
	return nil
}

// imageLayers are the OCI image layers of artifact a: a layered
// artifact's layers one to one (the media types are OCI's), a single tar
// as one uncompressed layer.
func imageLayers(a *kiln.Artifact) []oci.Layer {
	if !a.Layered() {
		return []oci.Layer{{Digest: a.Digest, Size: a.Size}}
	}
	out := make([]oci.Layer, len(a.Layers))
	for i, l := range a.Layers {
		out[i] = oci.Layer{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, DiffID: l.DiffID}
	}
	return out
}

// releaseLabels are the /etc/kiln-release fields kiln knows from the
// record, for the image's labels.
func releaseLabels(v *kiln.Version) map[string]string {
	m := map[string]string{
		"image":   v.Image,
		"version": strconv.Itoa(v.Number),
		"name":    v.Name,
		"method":  string(v.Provenance.Method),
	}
	if v.SemVer != "" {
		m["semver"] = v.SemVer
	}
	if !v.Provenance.FinishedAt.IsZero() {
		m["build_time"] = v.Provenance.FinishedAt.UTC().Format(time.RFC3339)
	}
	if p := v.Provenance.Parent; p != nil {
		m["parent"] = p.String()
	}
	if b := v.Provenance.Base; b != nil {
		m["base"] = b.String()
	}
	for _, s := range v.Provenance.Sources {
		if s.Kind == kiln.SourceDefinition && s.Digest != "" {
			m["definition_digest"] = s.Digest
		}
	}
	return m
}

// CheckVersion pulls v's image, reads every blob checking its digest and
// size, and checks the provenance attached in the registry against keys
// and v's record; the blob the artifact store reads by digest must be
// there too.
func (o *ociArtifacts) CheckVersion(ctx context.Context, v *kiln.Version, keys []crypto.PublicKey) (*cli.ImageCheck, error) {
	a := v.Provenance.Artifact
	if a == nil || a.External() {
		return nil, kiln.Errorf(kiln.EINVALID, "%s has no artifact kiln keeps; there is nothing to verify", v.Name)
	}
	tag := strconv.Itoa(v.Number)
	p, err := o.oci.Verify(ctx, v.Image, tag)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND && strings.Contains(kiln.ErrorMessage(err), "does not exist") {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "%s has no image %s:%s in %s: it was built before the registry was configured, or the push after its registration did not finish; run `kiln artifact push %s` where its artifact is", v.Name, v.Image, tag, o.oci.ImageURL(v.Image), v.Name)
	}
	if err != nil {
		return nil, err
	}
	at := fmt.Sprintf("%s:%s in %s (%s)", v.Image, tag, o.oci.ImageURL(v.Image), p.Digest)
	if p.Number != v.Number {
		return nil, kiln.Errorf(kiln.ECONFLICT, "%s says it is version %d, not %d; another kiln pushes to this repository: give each its own oci:// repository", at, p.Number, v.Number)
	}
	var got, want []string
	for _, l := range p.Layers {
		got = append(got, l.Digest)
	}
	for _, l := range imageLayers(a) {
		want = append(want, l.Digest)
	}
	if !slices.Equal(got, want) {
		return nil, kiln.Errorf(kiln.ECONFLICT, "%s has layers %v, but %s's signed artifact %s has %v; the image is not this version's: delete the tag in the registry and run `kiln artifact push %s`", at, got, v.Name, a.Digest, want, v.Name)
	}
	if p.Envelope == nil {
		return nil, kiln.Errorf(kiln.ECONFLICT, "%s has no signed provenance attached (no referrer of type %s, nor a sha256-… tag); run `kiln artifact push %s` to attach it; it will not be launched from the registry without it", at, oci.ArtifactTypeDSSE, v.Name)
	}
	if err := sign.VerifyVersionWith(keys, p.Envelope, v); err != nil {
		return nil, fmt.Errorf("the provenance attached to %s: %w", at, err)
	}
	for _, d := range v.Provenance.ContentDigests() {
		if _, err := o.oci.Stat(ctx, d); err != nil {
			return nil, fmt.Errorf("%s's content as the artifact store reads it (%s): %w; run `kiln artifact push %s`", v.Name, d, err, v.Name)
		}
	}
	c := &cli.ImageCheck{Ref: p.Ref}
	for _, l := range p.Layers {
		c.Layers = append(c.Layers, l.Digest)
		c.Bytes += l.Size
	}
	return c, nil
}

// publishing is the builder's registry with the OCI store: a version's
// artifact is uploaded before the version is recorded (so no version
// ever names content the registry lacks, whatever kills the process), and
// its image and provenance are pushed once it is recorded and signed.
type publishing struct {
	kiln.Registry
	images *ociArtifacts
	// leases keep the content from artifact gc on any machine between
	// its upload and its version's record (bloblease.go).
	leases kiln.BlobLeases
}

// publishTimeout bounds the upload of one version's content; it is not
// cut short by Ctrl-C (registration is not left half-done).
const publishTimeout = 30 * time.Minute

// recordTimeout bounds recording a version once its content is uploaded.
const recordTimeout = time.Minute

func (p *publishing) CreateVersion(ctx context.Context, nv *kiln.NewVersion) (*kiln.Version, error) {
	a := nv.Provenance.Artifact
	if a == nil || a.External() {
		return p.Registry.CreateVersion(ctx, nv)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	// Leased before anything is checked in the registry, released once
	// the version (which keeps the content from then on) is recorded and
	// pushed, or on failure.
	holder := processName("kiln build of " + nv.Image)
	mark, err := leaseContent(pctx, p.leases, holder, nv.Provenance.ContentDigests())
	if err != nil {
		return nil, fmt.Errorf("push the artifact of %s to the registry before registering it: %w", nv.Image, err)
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		defer rcancel()
		if err := p.leases.ReleaseBlobs(rctx, holder); err != nil {
			p.images.logger.Warn("could not release the build's leases on its content; they end by themselves", "holder", holder, "within", leaseTime, "err", kiln.ErrorMessage(err))
		}
	}()
	if err := p.images.upload(pctx, &nv.Provenance); err != nil {
		return nil, fmt.Errorf("push the artifact of %s to the registry before registering it: %w", nv.Image, err)
	}
	if mark.Running {
		// A gc was deleting blobs when the lease was written: it may not
		// have seen the lease, and may delete what the upload found there.
		// Once it has ended, check (upload) again.
		if err := waitForGC(pctx, p.leases, mark, p.images.logger); err != nil {
			return nil, fmt.Errorf("push the artifact of %s to the registry before registering it: %w", nv.Image, err)
		}
		if err := p.images.upload(pctx, &nv.Provenance); err != nil {
			return nil, fmt.Errorf("push the artifact of %s to the registry before registering it: %w", nv.Image, err)
		}
	}
	ra, err := p.images.oci.Stat(pctx, a.Digest)
	if err != nil {
		return nil, fmt.Errorf("push the artifact of %s to the registry before registering it: %w", nv.Image, err)
	}
	cp := *nv
	art := *a
	art.Ref = ra.Ref // where it lives now; digest, size and layers as built
	cp.Provenance.Artifact = &art
	// The upload took as long as it took; recording the version gets a
	// bounded time of its own, whatever deadline the caller's had.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer rcancel()
	v, err := p.Registry.CreateVersion(rctx, &cp)
	if err != nil {
		return nil, err
	}
	// The version is recorded and its content is in the registry: a
	// failure from here on leaves it usable (launches pull the artifact
	// by digest) without its image, which `kiln artifact push` completes.
	if img, err := p.images.PushVersion(pctx, v); err != nil {
		p.images.logger.Warn("the version is registered and its artifact is in the registry, but its image could not be pushed; run `kiln artifact push "+v.Name+"`",
			"version", v.Name, "err", kiln.ErrorMessage(err))
	} else {
		p.images.logger.Info("pushed the version's image", "version", v.Name, "ref", img.Ref, "tags", img.Tags)
	}
	return v, nil
}

// AddAttachment keeps a with the version and, for an SBOM (a build keeps
// them once the version is recorded, after its image was pushed),
// attaches it to the version's image as a referrer. A failure to attach
// is logged: the SBOM is kept, and `kiln artifact push` completes the
// image.
func (p *publishing) AddAttachment(ctx context.Context, ref kiln.VersionRef, a *kiln.Attachment) error {
	if err := p.Registry.AddAttachment(ctx, ref, a); err != nil {
		return err
	}
	if sbomPredicate(a.Name) == "" {
		return nil
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	v, err := p.FindVersion(pctx, ref)
	if err == nil {
		var r string
		if r, err = p.images.AttachSBOM(pctx, v, a); err == nil {
			p.images.logger.Info("attached the version's SBOM to its image", "version", v.Name, "sbom", a.Name, "ref", r)
			return nil
		}
	}
	p.images.logger.Warn("the SBOM is kept with the version, but could not be attached to its image in the registry; run `kiln artifact push "+ref.String()+"`",
		"version", ref.String(), "sbom", a.Name, "err", kiln.ErrorMessage(err))
	return nil
}

// collector is `kiln artifact gc`: the local store, and the registry when
// there is one.
type collector struct {
	dataDir string
	local   *artifact.Store
	images  *ociArtifacts // nil: local only
	reg     kiln.Registry
	leases  kiln.BlobLeases // builds' leases and the gc mark; needed with images
	logger  *slog.Logger
	audit   kiln.AuditLog
	now     func() time.Time
}

var _ cli.ArtifactCollector = (*collector)(nil)

func (c *collector) CollectArtifacts(ctx context.Context, opts cli.GCOptions) (*cli.GCReport, error) {
	rep := &cli.GCReport{DryRun: opts.DryRun, Items: []cli.GCItem{}}
	holds, err := build.HeldArtifacts(c.dataDir)
	if err != nil {
		return nil, err
	}
	cutoff := c.now().Add(-opts.Grace)
	if holds.Running > 0 {
		if holds.OldestStart.Before(cutoff) {
			cutoff = holds.OldestStart
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d build(s) running on this machine: content younger than %s is kept", holds.Running, cutoff.UTC().Format(time.RFC3339)))
	}
	// A registry that refuses deletes (docker-registry's default) stops
	// gc before anything is deleted, here or there.
	if c.images != nil {
		if err := c.checkDeletes(ctx); err != nil {
			if !opts.DryRun {
				return nil, fmt.Errorf("artifact gc: %w", err)
			}
			rep.Notes = append(rep.Notes, "a real gc would stop before deleting anything: "+kiln.ErrorMessage(err))
		}
	}
	live, versions, err := c.liveVersions(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.collectLocal(ctx, rep, live, holds.Cache, cutoff); err != nil {
		return rep, err
	}
	if c.images != nil {
		if err := c.collectRegistry(ctx, rep, versions, cutoff); err != nil {
			return rep, c.record(ctx, rep, err)
		}
	}
	return rep, c.record(ctx, rep, nil)
}

// checkDeletes asks the registry, without deleting anything, whether it
// lets kiln delete in the store's repository and in every image's.
func (c *collector) checkDeletes(ctx context.Context) error {
	st := c.images.oci
	if err := st.CheckDeletes(ctx, ""); err != nil {
		return err
	}
	imgs, err := c.reg.ListImages(ctx)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		if err := st.CheckDeletes(ctx, img.Name); err != nil {
			return err
		}
	}
	return nil
}

// liveVersions returns the artifact digests of registered, non-revoked
// versions, and every version by "image-N".
func (c *collector) liveVersions(ctx context.Context) (map[string]bool, map[string]*kiln.Version, error) {
	vs, _, err := c.reg.ListVersions(ctx, kiln.VersionFilter{})
	if err != nil {
		return nil, nil, fmt.Errorf("list versions to keep their artifacts: %w", err)
	}
	live := map[string]bool{}
	all := map[string]*kiln.Version{}
	for _, v := range vs {
		all[v.Name] = v
		if a := v.Provenance.Artifact; a != nil && a.Digest != "" && v.Status != kiln.StatusRevoked {
			for _, d := range v.Provenance.ContentDigests() {
				live[d] = true // layers, layer list, disk images
			}
		}
	}
	return live, all, nil
}

func (c *collector) collectLocal(ctx context.Context, rep *cli.GCReport, live, cache map[string]bool, cutoff time.Time) error {
	ents, err := os.ReadDir(c.local.Dir())
	if err != nil {
		return fmt.Errorf("artifact gc: %w", err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := "sha256:" + e.Name()
		if kiln.ValidateDigest("", d) != nil {
			continue // temporary files: Cleanup's
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		switch {
		case live[d], cache[d]:
			rep.Kept++
			continue
		case fi.ModTime().After(cutoff):
			rep.Kept++
			continue
		}
		rep.Items = append(rep.Items, cli.GCItem{Where: "local", Kind: "artifact", Ref: artifact.RefPrefix + d, Size: fi.Size(),
			Reason: "no registered, non-revoked version or build-cache layer references it"})
		rep.Freed += fi.Size()
		if !rep.DryRun {
			if err := c.local.Delete(ctx, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// collectRegistry deletes, image by image, the manifests the tags of
// revoked versions (or of versions this database does not have) name,
// with their provenance and tags, then the layer blobs of revoked
// versions that no live version shares. The versions are read again just
// before blobs go, so a version registered meanwhile keeps its content.
func (c *collector) collectRegistry(ctx context.Context, rep *cli.GCReport, versions map[string]*kiln.Version, cutoff time.Time) error {
	st := c.images.oci
	imgs, err := c.reg.ListImages(ctx)
	if err != nil {
		return err
	}
	dead := map[string]map[string]int64{} // artifact digest → image → size
	mark := func(image, d string, size int64) {
		if dead[d] == nil {
			dead[d] = map[string]int64{}
		}
		dead[d][image] = size
	}
	for _, v := range versions {
		if a := v.Provenance.Artifact; v.Status == kiln.StatusRevoked && a != nil && a.Digest != "" {
			mark(v.Image, a.Digest, a.Size)
			for _, l := range a.Layers {
				mark(v.Image, l.Digest, l.Size)
			}
			for _, d := range v.Provenance.Artifacts {
				mark(v.Image, d.Digest, d.Size)
			}
		}
	}
	for _, img := range imgs {
		tags, err := st.Tags(ctx, img.Name)
		if err != nil {
			return err
		}
		for _, tag := range tags {
			n, err := strconv.Atoi(tag)
			if err != nil || n < 1 {
				continue // semver tags and sha256-… referrer tags go with their manifest
			}
			name := fmt.Sprintf("%s-%d", img.Name, n)
			v := versions[name]
			reason := ""
			switch {
			case v == nil:
				reason = "no version " + name + " is registered in this database"
			case v.Status == kiln.StatusRevoked:
				reason = name + " is revoked"
			default:
				rep.Kept++
				continue
			}
			md, err := st.Resolve(ctx, img.Name, tag)
			if kiln.ErrorCode(err) == kiln.ENOTFOUND {
				continue
			}
			if err != nil {
				return err
			}
			p, err := st.PullVersion(ctx, img.Name, md)
			if kiln.ErrorCode(err) == kiln.EINVALID {
				// Not an image kiln pushed: someone else's, left alone.
				rep.Kept++
				rep.Notes = append(rep.Notes, fmt.Sprintf("kept %s:%s: %s", st.ImageURL(img.Name), tag, kiln.ErrorMessage(err)))
				continue
			}
			if err != nil {
				return err
			}
			if v == nil && p.Created.After(cutoff) {
				rep.Kept++ // a version being registered by a build elsewhere
				continue
			}
			for _, l := range p.Layers {
				mark(img.Name, l.Digest, l.Size)
			}
			rep.Items = append(rep.Items, cli.GCItem{Where: st.String(), Kind: "image", Ref: st.ImageURL(img.Name) + "@" + md, Version: name, Reason: reason})
			if !rep.DryRun {
				if err := st.DeleteVersion(ctx, img.Name, md); err != nil {
					return err
				}
			}
		}
	}
	if len(dead) == 0 {
		return nil
	}
	// The gc mark, then the builds' leases, then the versions again
	// (bloblease.go says why in this order). A dry run deletes nothing
	// and takes no mark.
	holder := processName("kiln artifact gc")
	if !rep.DryRun {
		if _, err := c.leases.BeginBlobGC(ctx, holder, gcMarkTime); err != nil {
			return err
		}
		defer func() {
			ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
			defer cancel()
			if err := c.leases.EndBlobGC(ectx, holder); err != nil {
				c.logger.Warn("could not end artifact gc's mark; builds wait for it until it ends by itself", "holder", holder, "within", gcMarkTime, "err", kiln.ErrorMessage(err))
			}
		}()
	}
	leased, err := c.leases.LeasedBlobs(ctx)
	if err != nil {
		return err
	}
	live, _, err := c.liveVersions(ctx) // again: builds may have registered meanwhile
	if err != nil {
		return err
	}
	for _, d := range slices.Sorted(maps.Keys(dead)) {
		if live[d] {
			continue
		}
		if leased[d] {
			rep.Kept++
			rep.Notes = append(rep.Notes, fmt.Sprintf("kept %s@%s: a build is uploading or registering a version with it (a lease on it in the database)", st.Location(), d))
			continue
		}
		if err := c.collectBlob(ctx, rep, holder, d, dead[d]); err != nil {
			return err
		}
	}
	rep.Notes = append(rep.Notes, "the registry frees the bytes of deleted manifests and blobs when its own garbage collection runs (docker-registry: registry garbage-collect --delete-untagged; see docs/registry.md)")
	return nil
}

// collectBlob deletes blob d from the image repositories in images (image
// → size) and the store's own repository, under the gc mark of holder:
// renewed first, and the deletes given half its time, so none is in flight
// once it has ended.
func (c *collector) collectBlob(ctx context.Context, rep *cli.GCReport, holder, d string, images map[string]int64) error {
	st := c.images.oci
	if !rep.DryRun {
		if err := c.leases.RenewBlobGC(ctx, holder, gcMarkTime); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, gcMarkTime/2)
	defer cancel()
	var size int64
	present := false
	for _, image := range append([]string{""}, slices.Sorted(maps.Keys(images))...) {
		ok, err := st.HasLayer(ctx, image, d)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		present = true
		if image == "" {
			continue // the store's own repository: Delete below
		}
		size = images[image]
		if !rep.DryRun {
			if err := st.DeleteLayer(ctx, image, d); err != nil {
				return err
			}
		}
	}
	if !present {
		return nil // collected before
	}
	if size == 0 {
		for _, sz := range images {
			size = sz
		}
	}
	rep.Items = append(rep.Items, cli.GCItem{Where: st.String(), Kind: "artifact", Ref: st.Location().String() + "@" + d, Size: size,
		Reason: "only revoked or unregistered versions reference it"})
	rep.Freed += size
	if !rep.DryRun {
		if err := st.Delete(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// record writes the gc to the audit log (not for a dry run), and returns
// err, or the audit's failure.
func (c *collector) record(ctx context.Context, rep *cli.GCReport, err error) error {
	if rep.DryRun || c.audit == nil || (len(rep.Items) == 0 && err == nil) {
		return err
	}
	counts := map[string]int{}
	for _, it := range rep.Items {
		k := it.Kind
		if it.Where != "local" {
			k = "registry " + k
		} else {
			k = "local " + k
		}
		counts[k]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d %s(s)", counts[k], k))
	}
	detail := fmt.Sprintf("deleted %s, %d bytes", strings.Join(parts, ", "), rep.Freed)
	if err != nil {
		detail += "; stopped: " + kiln.ErrorMessage(err)
	}
	target := "local"
	if c.images != nil {
		target = c.images.String()
	}
	if aerr := c.audit.AppendAudit(context.WithoutCancel(ctx), &kiln.AuditEntry{Action: "artifact.gc", Target: target, Detail: detail}); aerr != nil && err == nil {
		return fmt.Errorf("artifact gc: record it in the audit log: %w", aerr)
	}
	return err
}
