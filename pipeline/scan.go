package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strings"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
	"github.com/kiln-project/kiln/definition"
)

// ScanResult is what the scan stage found in one version.
type ScanResult struct {
	Version kiln.VersionRef `json:"version"`
	Release string          `json:"release"`
	// Advisories is how many advisories name a source package of the
	// version; Packages how many packages were checked.
	Advisories int `json:"advisories"`
	Packages   int `json:"packages"`
	// Affected are the findings at or above the policy's severity;
	// Ignored counts affected findings below it.
	Affected []advisory.Finding `json:"affected"`
	Ignored  int                `json:"ignored"`
	// Triaged counts affected findings left out by Debian's triage (no-dsa,
	// unimportant, end-of-life…) that the policy's include does not name.
	Triaged int `json:"triaged,omitempty"`
}

// Summary is one line for the stage's detail.
func (s *ScanResult) Summary() string {
	if len(s.Affected) == 0 {
		msg := fmt.Sprintf("no affected packages among %d (%d advisories for them in kiln)", s.Packages, s.Advisories)
		if s.Ignored > 0 {
			msg += fmt.Sprintf("; %d finding(s) below the minimum severity", s.Ignored)
		}
		if s.Triaged > 0 {
			msg += fmt.Sprintf("; %d finding(s) Debian issues no DSA/DLA for (no-dsa, unimportant, end-of-life)", s.Triaged)
		}
		return msg
	}
	pk := map[string]bool{}
	for _, f := range s.Affected {
		pk[f.Package] = true
	}
	ids := map[string]bool{}
	for _, f := range s.Affected {
		ids[f.Advisory] = true
	}
	names := make([]string, 0, len(ids))
	for id := range ids {
		names = append(names, id)
	}
	sort.Strings(names)
	if len(names) > 5 {
		names = append(names[:5], "…")
	}
	return fmt.Sprintf("%d package(s) of %s affected by %d advisory(ies): %s", len(pk), s.Version, len(ids), strings.Join(names, ", "))
}

// Lines lists the findings, one per line, for the run log.
func (s *ScanResult) Lines() []string {
	var out []string
	for _, f := range s.Affected {
		out = append(out, fmt.Sprintf("%s: %s %s (%s) — %s", f.Advisory, f.Package, f.Installed, f.Severity, f.Reason))
	}
	return out
}

// Scan matches a version's packages against the advisories in store that
// name their source packages, for the Debian release the version was made
// from, and keeps the affected findings whose triage state the policy
// includes (by default what Debian would ship a DSA/DLA for) at or above
// its minimum severity. A nil store or an empty release scans nothing (and says so).
func Scan(ctx context.Context, store kiln.AdvisoryStore, v *kiln.Version, release string, policy definition.ScanPolicy) (*ScanResult, error) {
	res := &ScanResult{Version: v.Ref(), Release: release, Packages: len(v.Provenance.Packages), Affected: []advisory.Finding{}}
	if store == nil || release == "" {
		return res, nil
	}
	sources := advisory.Sources{}
	names := map[string]bool{}
	for _, p := range v.Provenance.Packages {
		src := p.Name
		if p.Source != "" {
			src = p.Source
			sources[p.Name] = advisory.SourceRef{Name: p.Source, Version: p.SourceVersion}
		}
		names[src] = true
	}
	if _, total, err := store.ListAdvisories(ctx, kiln.AdvisoryFilter{Limit: 1}); err != nil {
		return nil, fmt.Errorf("scan %s: %w", v.Name, err)
	} else if total == 0 {
		return res, nil
	}
	advs, err := candidates(ctx, store, sortedKeys(names))
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", v.Name, err)
	}
	res.Advisories = len(advs)
	ix, err := advisory.NewIndex(advs, release)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", v.Name, err)
	}
	minRank := 0
	if policy.MinSeverity != "" {
		minRank = advisory.SeverityRank(policy.MinSeverity)
	}
	include, err := advisory.ParseInclude("scan.include", policy.Include)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", v.Name, err)
	}
	counted, triaged := advisory.Counted(ix.Match(v.Provenance.Packages, sources), include)
	res.Triaged = triaged
	for _, f := range counted {
		if advisory.SeverityRank(f.Severity) < minRank {
			res.Ignored++
			continue
		}
		res.Affected = append(res.Affected, f)
	}
	return res, nil
}

// candidates are the whole advisories naming one of the source packages
// names: in one batch when the store reads many packages at once
// (kiln.AdvisoriesByPackage), else one list per package and one read per
// advisory.
func candidates(ctx context.Context, store kiln.AdvisoryStore, names []string) ([]*kiln.Advisory, error) {
	if b, ok := store.(kiln.AdvisoriesByPackage); ok {
		return b.AdvisoriesForPackages(ctx, names)
	}
	var advs []*kiln.Advisory
	seen := map[string]bool{}
	for _, n := range names {
		list, _, err := store.ListAdvisories(ctx, kiln.AdvisoryFilter{Package: n})
		if err != nil {
			return nil, fmt.Errorf("advisories for %s: %w", n, err)
		}
		for _, a := range list {
			if seen[a.ID] {
				continue
			}
			seen[a.ID] = true
			full, err := store.FindAdvisory(ctx, a.ID)
			if err != nil {
				return nil, err
			}
			advs = append(advs, full)
		}
	}
	return advs, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
