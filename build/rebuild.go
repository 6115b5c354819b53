package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/platform/local/bake"
)

// rebuildState is what a run rebuilding a recorded version needs.
type rebuildState struct {
	version *kiln.Version
	// pins is a host file of apt preferences pinning the recorded
	// package versions (bake.PinFile).
	pins       string
	pinsDigest string
	// built is what the rebuild would have registered.
	built *kiln.NewVersion
}

// pinsDigest is the digest of a rebuild's pins ("" for a normal build), so
// a layer made with pins never stands in for one made without.
func (r *run) pinsDigest() string {
	if r.rebuild == nil {
		return ""
	}
	return r.rebuild.pinsDigest
}

// RebuildOptions change one rebuild check.
type RebuildOptions struct {
	// Progress receives the build's events (and its steps' output when
	// Verbose).
	Progress io.Writer
	Verbose  bool
	// MaxFiles bounds the differing files the report details (default 20).
	MaxFiles int
}

// Rebuild bakes version ref again from its recorded provenance — the
// estate's definition, files and scripts (which must have the recorded
// digests), its SOURCE_DATE_EPOCH, version number, base or parent, and
// its package versions pinned from the recorded manifest — with no step
// cache, and compares the artifact with the recorded one. Nothing is
// registered; the rebuilt artifact is deleted unless it is the recorded
// one. The report says identical, or what differs and which step wrote
// each differing file.
func (b *Builder) Rebuild(ctx context.Context, est *definition.Estate, ref kiln.VersionRef, opts RebuildOptions) (*RebuildReport, error) {
	if b.Logger == nil || b.Clock == nil {
		bb := *b
		if bb.Logger == nil {
			bb.Logger = slog.New(slog.DiscardHandler)
		}
		if bb.Clock == nil {
			bb.Clock = time.Now
		}
		b = &bb
	}
	start := time.Now()
	v, err := b.Registry.FindVersion(ctx, ref)
	if err != nil {
		return nil, err
	}
	p := &v.Provenance
	switch {
	case p.External():
		return nil, kiln.Errorf(kiln.EINVALID, "%s was registered, not built by kiln (recorded by %s); there is nothing to rebuild", v.Name, p.RecordedBy)
	case p.Artifact == nil || p.Artifact.External():
		return nil, kiln.Errorf(kiln.EINVALID, "%s has no artifact in kiln's store to compare a rebuild with", v.Name)
	case p.SourceDateEpoch == 0:
		return nil, kiln.Errorf(kiln.EINVALID, "%s was built before kiln made reproducible bakes: its provenance records no SOURCE_DATE_EPOCH, so a rebuild cannot reproduce it; build a new version (`kiln build`) and check that one", v.Name)
	}
	img, ok := est.Images[v.Image]
	if !ok {
		return nil, kiln.Errorf(kiln.EINVALID, "the estate in %s defines no image %q; run the rebuild in the estate %s was built from", est.Dir, v.Image, v.Name)
	}
	if err := sameRecordedInputs(ctx, est, img, v); err != nil {
		return nil, err
	}
	bb := *b
	agentNote := ""
	recordedAgent := agentSource(p.Sources)
	switch {
	case recordedAgent == nil:
		bb.AgentBinary = "" // built without the agent: rebuild without it
	case b.AgentBinary == "":
		return nil, kiln.Errorf(kiln.EINVALID, "%s was built with the kiln agent (%s) but this kiln installs none; rebuild where the agent binary is available", v.Name, recordedAgent.Digest)
	default:
		if d, err := fileDigest(b.AgentBinary); err == nil && d != recordedAgent.Digest {
			agentNote = fmt.Sprintf("this kiln's agent binary (%s) is not the one %s was built with (%s): /usr/local/bin/kiln will differ; rebuild with the kiln release that built it", d, v.Name, recordedAgent.Digest)
		}
	}

	if err := os.MkdirAll(filepath.Join(b.DataDir, "build"), 0o700); err != nil {
		return nil, err
	}
	pinDir, err := os.MkdirTemp(filepath.Join(b.DataDir, "build"), ".rebuild-pins-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(pinDir)
	pins := bake.PinFile(p.Packages)
	pinPath := filepath.Join(pinDir, "pins.pref")
	if err := os.WriteFile(pinPath, pins, 0o644); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pins)

	bopts := Options{NoCache: true, Force: true, Progress: opts.Progress, Verbose: opts.Verbose, BuiltBy: "rebuild check"}
	if p.Base != nil {
		bopts.Bases = map[string]kiln.VersionRef{p.Base.Image: *p.Base}
	}
	rep := &reporter{image: img.Name, progress: opts.Progress, verbose: opts.Verbose}
	res := &Result{Image: img.Name}
	r := &run{b: &bb, est: est, img: img, opts: bopts, rep: rep, res: res,
		rebuild: &rebuildState{version: v, pins: pinPath, pinsDigest: "sha256:" + hex.EncodeToString(sum[:])}}
	if err := r.build(ctx); err != nil {
		return &RebuildReport{Version: ref, Log: rep.bytes()}, fmt.Errorf("rebuild %s: %w", v.Name, err)
	}
	report := &RebuildReport{
		Version:  ref,
		Recorded: p.Artifact.Digest,
		Rebuilt:  r.artifact.Digest,
		Epoch:    r.epoch,
		From:     r.epochFrom,
		recorded: p.Artifact,
		rebuilt:  r.artifact,
	}
	report.Identical = report.Recorded == report.Rebuilt
	if agentNote != "" {
		report.Notes = append(report.Notes, agentNote)
	}
	if note := releaseNote(v, r.sources); note != "" {
		report.Notes = append(report.Notes, note)
	}
	report.Packages = packageDiffs(p.Packages, r.rebuild.built.Provenance.Packages)
	if len(report.Packages) > 0 {
		report.Notes = append(report.Notes, "the mirror no longer offers every recorded package version (snapshot.debian.org is not used); the rebuilt image has others, listed under packages")
	}
	if !report.Identical {
		if err := r.compareArtifacts(ctx, report, opts.MaxFiles); err != nil {
			report.Notes = append(report.Notes, "the artifacts could not be compared file by file: "+err.Error())
		}
		if err := b.Artifacts.Delete(context.WithoutCancel(ctx), report.Rebuilt); err != nil && kiln.ErrorCode(err) != kiln.ENOTFOUND {
			b.Logger.Warn("rebuilt artifact not deleted", "digest", report.Rebuilt, "err", err)
		}
	}
	if r.finalKey != "" && !report.Identical {
		_ = os.RemoveAll(r.cache.tree(r.finalKey)) // no version stacks on it
	}
	report.Elapsed = time.Since(start)
	report.Log = rep.bytes()
	return report, nil
}

// sameRecordedInputs checks that the estate's definition, files and
// scripts for img are the ones v was built from.
func sameRecordedInputs(ctx context.Context, est *definition.Estate, img *definition.Image, v *kiln.Version) error {
	now, err := sources(ctx, est, img)
	if err != nil {
		return err
	}
	recorded := map[string]string{}
	commit := ""
	for _, s := range v.Provenance.Sources {
		switch s.Kind {
		case kiln.SourceDefinition, kiln.SourceConfig:
			recorded[string(s.Kind)+"|"+s.Ref] = s.Digest
		case kiln.SourceOther:
			if strings.HasPrefix(s.Ref, "git:") {
				commit = strings.TrimPrefix(s.Ref, "git:")
			}
		}
	}
	where := "the estate as it was when " + v.Name + " was built"
	if commit != "" {
		where = "the estate at git commit " + commit + " (recorded in " + v.Name + "'s provenance)"
	}
	seen := 0
	for _, s := range now {
		if s.Kind != kiln.SourceDefinition && s.Kind != kiln.SourceConfig {
			continue
		}
		d, ok := recorded[string(s.Kind)+"|"+s.Ref]
		switch {
		case !ok:
			return kiln.FieldErrorf(kiln.EINVALID, s.Ref, "%s was not an input of %s; check out %s and rebuild from there", s.Ref, v.Name, where)
		case d != s.Digest:
			return kiln.FieldErrorf(kiln.EINVALID, s.Ref, "%s has digest %s, but %s was built from %s; check out %s and rebuild from there", s.Ref, s.Digest, v.Name, d, where)
		}
		seen++
	}
	if seen != len(recorded) {
		for k := range recorded {
			found := false
			for _, s := range now {
				if string(s.Kind)+"|"+s.Ref == k {
					found = true
				}
			}
			if !found {
				_, ref, _ := strings.Cut(k, "|")
				return kiln.FieldErrorf(kiln.EINVALID, ref, "%s was an input of %s but the estate's image no longer uses it; check out %s and rebuild from there", ref, v.Name, where)
			}
		}
	}
	return nil
}

// agentSource is the recorded kiln agent source, nil when none.
func agentSource(srcs []kiln.Source) *kiln.Source {
	for i, s := range srcs {
		if s.Kind == kiln.SourceOther && strings.HasPrefix(s.Ref, "kiln-agent:") {
			return &srcs[i]
		}
	}
	return nil
}

// releaseNote says when the mirror's Release file is no longer the one
// the version was built from.
func releaseNote(v *kiln.Version, now []kiln.Source) string {
	for _, s := range now {
		if s.Kind != kiln.SourceOrigin {
			continue
		}
		for _, rs := range v.Provenance.Sources {
			if rs.Kind == kiln.SourceOrigin && rs.Ref == s.Ref && rs.Digest != s.Digest {
				return fmt.Sprintf("the mirror's Release file changed since %s was built (recorded %s, now %s); packages were pinned to the recorded versions", v.Name, rs.Digest, s.Digest)
			}
		}
	}
	return ""
}
