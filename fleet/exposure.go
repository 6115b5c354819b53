package fleet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
)

// BuildExposure lists the versions in us that exposed says are exposed,
// with the instances on them; fixedIn names, per image, the first version
// without the problem (a missing image has no fix yet). findings, when
// given, are shown per version. Revoked versions (revoked themselves or
// through a revoked base or parent) are listed as well, whatever exposed
// says: they must be replaced in any case, and a note counts them.
func BuildExposure(us []*kiln.Usage, exposed func(kiln.VersionRef) bool, fixedIn map[string]kiln.VersionRef,
	findings map[kiln.VersionRef][]string, env string) *kiln.Exposure {
	var keep []*kiln.Usage
	for _, u := range us {
		if u.Status == kiln.StatusRevoked || (exposed != nil && exposed(u.Ref())) {
			keep = append(keep, u)
		}
	}
	rs := rows(keep, nil)
	out := &kiln.Exposure{Environment: env, Rows: []*kiln.ExposureRow{}, FixedIn: []kiln.VersionRef{}}
	revoked, revokedVersions := 0, 0
	for _, r := range rs {
		er := &kiln.ExposureRow{ReportRow: *r}
		ref := kiln.VersionRef{Image: r.Image, Number: r.Number}
		if f, ok := fixedIn[r.Image]; ok {
			er.FixedIn = f.String()
		}
		er.Findings = findings[ref]
		if r.Status == kiln.StatusRevoked {
			er.Findings = append([]string{RevokedFinding}, er.Findings...)
			revoked += r.Instances
			revokedVersions++
		}
		out.Rows = append(out.Rows, er)
		out.Versions++
		out.Instances += r.Instances
	}
	for _, img := range slices.Sorted(maps.Keys(fixedIn)) {
		out.FixedIn = append(out.FixedIn, fixedIn[img])
	}
	if revoked > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d instances on %d revoked versions are listed too: a revoked version (itself or through its base) is replaced in any case (`kiln version show IMAGE-N` names the revoked ancestor; `kiln fleet refresh` plans the rollouts)", revoked, revokedVersions))
	}
	return out
}

// RevokedFinding is the finding of a row on a revoked version.
const RevokedFinding = "revoked: replace it"

// ExposedRevoked lists the instances in env ("" for all) on revoked
// versions: revoked themselves or through a revoked base or parent.
func (s *Service) ExposedRevoked(ctx context.Context, env string) (*kiln.Exposure, error) {
	us, err := s.Fleet.Usage(ctx, kiln.UsageFilter{Environment: env})
	if err != nil {
		return nil, fmt.Errorf("fleet exposed: %w", err)
	}
	e := BuildExposure(us, nil, nil, nil, env)
	e.Notes = nil // every row is a revoked version: the note would only repeat it
	return e, nil
}

// ExposedFixedIn lists the instances in env ("" for all) on a version
// earlier than the fixed-in version of its image: an image-level statement
// such as "fixed in basic-linux-2, appserver-3". Images not named are not
// affected.
func (s *Service) ExposedFixedIn(ctx context.Context, fixedIn []kiln.VersionRef, env string) (*kiln.Exposure, error) {
	if len(fixedIn) == 0 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "fixed-in", "no fixed-in version given; e.g. --fixed-in basic-linux-2,appserver-3")
	}
	us, err := s.Fleet.Usage(ctx, kiln.UsageFilter{Environment: env})
	if err != nil {
		return nil, fmt.Errorf("fleet exposed: %w", err)
	}
	return exposedFixedIn(us, fixedIn, env), nil
}

func exposedFixedIn(us []*kiln.Usage, fixedIn []kiln.VersionRef, env string) *kiln.Exposure {
	fix := map[string]kiln.VersionRef{}
	for _, f := range fixedIn {
		fix[f.Image] = f
	}
	return BuildExposure(us, func(r kiln.VersionRef) bool {
		exp, _ := advisory.Exposed(fixedIn, r)
		return exp
	}, fix, nil, env)
}

// ExposedTo lists the instances in env exposed to the stored advisory id.
// Its fixed-in statement decides for the images it names; its package
// entries are matched against the manifest of every version of every other
// image, with the Debian release of each version taken from its origin (or
// its base's), and FirstFixed says which version first has the fix.
func (s *Service) ExposedTo(ctx context.Context, id, env string) (*kiln.Exposure, error) {
	adv, err := s.Advisories.FindAdvisory(ctx, id)
	if err != nil {
		return nil, err
	}
	us, err := s.Fleet.Usage(ctx, kiln.UsageFilter{Environment: env})
	if err != nil {
		return nil, fmt.Errorf("fleet exposed: %w", err)
	}
	if !adv.Withdrawn.IsZero() {
		out := BuildExposure(nil, nil, nil, nil, env)
		out.Advisory = adv.ID
		out.Notes = append(out.Notes, fmt.Sprintf("advisory %s was withdrawn on %s; nothing is exposed", adv.ID, adv.Withdrawn.Format("2006-01-02")))
		return out, nil
	}
	imageLevel := map[string]kiln.VersionRef{}
	fix := map[string]kiln.VersionRef{}
	for _, f := range adv.FixedIn {
		imageLevel[f.Image], fix[f.Image] = f, f
	}
	exposed := map[kiln.VersionRef]bool{}
	findings := map[kiln.VersionRef][]string{}
	var notes []string
	if len(adv.Packages) > 0 {
		if notes, err = s.matchPackages(ctx, adv, fix, exposed, findings); err != nil {
			return nil, err
		}
	}
	out := BuildExposure(us, func(r kiln.VersionRef) bool {
		if f, named := imageLevel[r.Image]; named {
			return r.Number < f.Number
		}
		return exposed[r]
	}, fix, findings, env)
	out.Advisory = adv.ID
	unknown := 0
	for _, u := range us {
		if _, named := imageLevel[u.Image]; !u.Known && !named && len(adv.Packages) > 0 {
			unknown += u.Instances
		}
	}
	if unknown > 0 {
		notes = append(notes, fmt.Sprintf("%d instances run versions the registry does not know; their packages cannot be checked", unknown))
	}
	out.Notes = append(out.Notes, notes...)
	return out, nil
}

// matchPackages matches adv's package entries against every version of the
// images fix does not name, filling exposed, findings and fix (with the
// first fixed version found by advisory.FirstFixed).
func (s *Service) matchPackages(ctx context.Context, adv *kiln.Advisory, fix map[string]kiln.VersionRef,
	exposed map[kiln.VersionRef]bool, findings map[kiln.VersionRef][]string) ([]string, error) {
	var names []string
	for _, p := range adv.Packages {
		names = append(names, p.Name)
	}
	// base-files says the release of a version whose origin does not
	// (Release): without it such versions were matched as DefaultRelease.
	if !slices.Contains(names, "base-files") {
		names = append(names, "base-files")
	}
	ms, err := s.Fleet.Manifests(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("fleet exposed: %w", err)
	}
	byRef := make(map[kiln.VersionRef]*kiln.PackageManifest, len(ms))
	for _, m := range ms {
		byRef[m.Version] = m
	}
	var notes []string
	defaulted, triagedVersions := 0, 0
	indexes := map[string]*advisory.Index{}
	lines := map[string][]advisory.VersionManifest{}
	var order []string
	for _, m := range ms {
		if _, named := fix[m.Version.Image]; named {
			continue
		}
		rel, ok := Release(m, byRef)
		if !ok {
			rel = s.DefaultRelease
			defaulted++
		}
		rel = advisory.Release(rel)
		ix := indexes[rel]
		if ix == nil {
			if ix, err = advisory.NewIndex([]*kiln.Advisory{adv}, rel); err != nil {
				return nil, err
			}
			indexes[rel] = ix
		}
		srcs := Sources(m.Packages)
		counted, triaged := advisory.Counted(ix.Match(m.Packages, srcs), s.Include)
		for _, f := range counted {
			exposed[m.Version] = true
			findings[m.Version] = append(findings[m.Version], f.Package+" "+f.Installed+": "+f.Reason)
		}
		triagedVersions += min(triaged, 1)
		if _, seen := lines[m.Version.Image]; !seen {
			order = append(order, m.Version.Image)
		}
		lines[m.Version.Image] = append(lines[m.Version.Image], advisory.VersionManifest{Version: m.Version, Release: rel, Packages: m.Packages, Sources: srcs})
	}
	for _, img := range order {
		vs := lines[img]
		anyExposed := false
		for _, v := range vs {
			anyExposed = anyExposed || exposed[v.Version]
		}
		if !anyExposed {
			continue
		}
		f, ok, err := advisory.FirstFixed(adv, vs)
		if err != nil {
			return nil, err
		}
		if ok {
			fix[img] = f
		} else {
			notes = append(notes, fmt.Sprintf("no version of %s has the fix yet (newest: %s)", img, vs[len(vs)-1].Version))
		}
	}
	if triagedVersions > 0 {
		notes = append(notes, fmt.Sprintf("%d versions have findings Debian issues no DSA/DLA for (counted: %s); add them with --include no-dsa,unimportant,end-of-life",
			triagedVersions, s.Include))
	}
	if defaulted > 0 {
		notes = append(notes, fmt.Sprintf("%d versions do not say their Debian release; matched as %s", defaulted, s.DefaultRelease))
	}
	return notes, nil
}

// Sources maps each binary package whose manifest entry names its source
// package to that source.
func Sources(pkgs []kiln.Package) advisory.Sources {
	srcs := advisory.Sources{}
	for _, p := range pkgs {
		if p.Source != "" {
			srcs[p.Name] = advisory.SourceRef{Name: p.Source, Version: p.SourceVersion}
		}
	}
	return srcs
}

// Release returns the Debian release a version was built from: the suite
// of a Debian origin ("bookworm@http://deb.debian.org/debian"), else the
// release of the version it was built on (origin naming a version, base,
// then parent), else what the last one's base-files says. ok is false
// when none of them tells.
func Release(m *kiln.PackageManifest, byRef map[kiln.VersionRef]*kiln.PackageManifest) (string, bool) {
	for range 64 { // bounds a cycle, which the registry cannot hold anyway
		if suite, _, ok := strings.Cut(m.Origin, "@"); ok && suite != "" && !strings.ContainsAny(suite, "/.") {
			return advisory.Release(suite), true
		}
		var next *kiln.PackageManifest
		if r, err := kiln.ParseVersionRef("origin", m.Origin); err == nil {
			next = byRef[r]
		}
		if next == nil && m.Base != nil {
			next = byRef[*m.Base]
		}
		if next == nil && m.Parent != nil {
			next = byRef[*m.Parent]
		}
		if next == nil {
			// An origin that names no suite (a tarball, an import):
			// the image's own base-files says which release it is.
			r := advisory.ReleaseOfPackages(m.Packages)
			return r, r != ""
		}
		m = next
	}
	return "", false
}

// ExposureOf is ExposedFixedIn on usage rows already read (for metrics).
func ExposureOf(us []*kiln.Usage, fixedIn []kiln.VersionRef, env string) *kiln.Exposure {
	return exposedFixedIn(us, fixedIn, env)
}
