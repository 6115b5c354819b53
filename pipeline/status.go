package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/definition"
)

// Reason is one input that changed since an image's latest version.
type Reason struct {
	// Trigger is the pipeline trigger it falls under: source, origin,
	// base, packages — or "none" when there is no version yet, "failed"
	// when the latest version failed.
	Trigger string `json:"trigger"`
	Message string `json:"message"`
}

// ImageStatus says whether an image is up to date and, if not, why.
type ImageStatus struct {
	Image    string `json:"image"`
	Pipeline string `json:"pipeline"`
	// Latest is the newest version, LatestReady the newest ready one.
	Latest      *kiln.VersionRef `json:"latest,omitempty"`
	LatestState kiln.Status      `json:"latest_status,omitempty"`
	LatestReady *kiln.VersionRef `json:"latest_ready,omitempty"`
	UpToDate    bool             `json:"up_to_date"`
	Reasons     []Reason         `json:"reasons,omitempty"`
	// Updates lists packages the mirror has newer versions of, when
	// checked.
	Updates []debian.PackageUpdate `json:"updates,omitempty"`
	// Run is the image's newest run, if any.
	Run      *kiln.Run `json:"run,omitempty"`
	Schedule string    `json:"schedule,omitempty"`
	NextRun  time.Time `json:"next_run,omitzero"`
}

// Checker finds out what changed since each image's latest version.
type Checker struct {
	Registry kiln.Registry
	Runs     kiln.RunStore
	HTTP     *http.Client
	// CacheDir keeps downloaded package indexes by Release digest.
	CacheDir string
	// Packages also compares the manifests with the mirror's package
	// index (a download of the index when the mirror moved).
	Packages bool
}

// Check returns the status of every image of est, in build order. An image
// is up to date when its latest version was made from the same definition,
// files and origin (the same test the build stage makes), the newest ready
// version of its base, and — when checked — no package has an update.
func (c *Checker) Check(ctx context.Context, est *definition.Estate) ([]*ImageStatus, error) {
	releases := map[string]*debian.Release{}
	var out []*ImageStatus
	for _, name := range est.Order {
		img := est.Images[name]
		p := est.PipelineFor(name)
		st := &ImageStatus{Image: name, Pipeline: p.Name, Schedule: p.Schedule}
		if p.Schedule != "" {
			if s, err := definition.CronSchedule(p.Schedule); err == nil {
				st.NextRun = s.Next(time.Now()).UTC()
			}
		}
		if c.Runs != nil {
			if runs, _, err := c.Runs.ListRuns(ctx, kiln.RunFilter{Image: name, Limit: 1}); err == nil && len(runs) > 0 {
				st.Run = runs[0]
			}
		}
		if err := c.check(ctx, est, img, st, releases); err != nil {
			return nil, fmt.Errorf("status of %s: %w", name, err)
		}
		st.UpToDate = len(st.Reasons) == 0
		out = append(out, st)
	}
	return out, nil
}

func (c *Checker) check(ctx context.Context, est *definition.Estate, img *definition.Image, st *ImageStatus, releases map[string]*debian.Release) error {
	if r, err := c.Registry.LatestVersion(ctx, img.Name, kiln.StatusReady); err == nil {
		ref := r.Ref()
		st.LatestReady = &ref
	}
	latest, err := c.Registry.LatestVersion(ctx, img.Name, "")
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		st.Reasons = append(st.Reasons, Reason{"none", "no version yet"})
		return nil
	}
	if err != nil {
		return err
	}
	ref := latest.Ref()
	st.Latest, st.LatestState = &ref, latest.Status
	prov := &latest.Provenance
	recorded := map[string]kiln.Source{}
	for _, s := range prov.Sources {
		recorded[string(s.Kind)+"|"+s.Ref] = s
	}
	if s, ok := recorded[string(kiln.SourceDefinition)+"|"+img.File]; !ok || s.Digest != img.Digest {
		st.Reasons = append(st.Reasons, Reason{"source", fmt.Sprintf("definition %s changed since %s (%s → %s)", img.File, latest.Name, short(s.Digest), short(img.Digest))})
	}
	for _, f := range configFiles(img) {
		d, err := fileDigest(f[1])
		if err != nil {
			return kiln.Errorf(kiln.EINVALID, "%s: cannot read %s: %v", img.File, f[0], err)
		}
		if s, ok := recorded[string(kiln.SourceConfig)+"|"+f[0]]; !ok || s.Digest != d {
			st.Reasons = append(st.Reasons, Reason{"source", fmt.Sprintf("%s changed since %s", f[0], latest.Name)})
		}
	}
	switch {
	case img.Base != nil:
		want := kiln.VersionRef{Image: img.Base.Image, Number: img.Base.Number}
		if img.Base.Number == 0 {
			b, err := c.Registry.LatestVersion(ctx, img.Base.Image, kiln.StatusReady)
			if kiln.ErrorCode(err) == kiln.ENOTFOUND {
				st.Reasons = append(st.Reasons, Reason{"base", fmt.Sprintf("base %s has no ready version yet", img.Base.Image)})
				break
			}
			if err != nil {
				return err
			}
			want = b.Ref()
		}
		if prov.Base == nil || *prov.Base != want {
			was := "nothing"
			if prov.Base != nil {
				was = prov.Base.String()
			}
			st.Reasons = append(st.Reasons, Reason{"base", fmt.Sprintf("base %s is ready; %s was built on %s", want, latest.Name, was)})
		}
	case img.Debian != nil:
		key := img.Debian.Mirror + " " + img.Debian.Suite
		rel, ok := releases[key]
		if !ok {
			if rel, err = debian.FetchRelease(ctx, c.HTTP, img.Debian.Mirror, img.Debian.Suite); err != nil {
				return err
			}
			releases[key] = rel
		}
		origin := ""
		for _, s := range prov.Sources {
			if s.Kind == kiln.SourceOrigin {
				origin = s.Digest
			}
		}
		if origin != rel.Digest {
			st.Reasons = append(st.Reasons, Reason{"origin", fmt.Sprintf("the mirror's Release file of %s changed since %s (now dated %s)", img.Debian.Suite, latest.Name, rel.Date.UTC().Format(time.RFC3339))})
		}
	}
	aptReasons, err := c.aptSourceReasons(ctx, img, latest, releases) // aptsource.go
	if err != nil {
		return err
	}
	st.Reasons = append(st.Reasons, aptReasons...)
	// Package updates: for an image built on another too, from the
	// archive its packages come from.
	if d := debianOf(est, img); c.Packages && d != nil {
		key := d.Mirror + " " + d.Suite
		rel, ok := releases[key]
		if !ok {
			if rel, err = debian.FetchRelease(ctx, c.HTTP, d.Mirror, d.Suite); err != nil {
				return err
			}
			releases[key] = rel
		}
		full, err := c.Registry.FindVersion(ctx, ref)
		if err != nil {
			return err
		}
		ups, err := c.updates(ctx, d, rel, full.Provenance.Packages)
		if err != nil {
			return err
		}
		st.Updates = ups
		if len(ups) > 0 {
			st.Reasons = append(st.Reasons, Reason{"packages", "updates available: " + FormatUpdates(ups, 5)})
		}
	}
	if latest.Status == kiln.StatusFailed {
		st.Reasons = append(st.Reasons, Reason{"failed", latest.Name + " failed; fix the definition (or run with --force) to build again"})
	}
	return nil
}

// configFiles lists the files and scripts an image's steps use, as
// [name in the definition, absolute path].
func configFiles(img *definition.Image) [][2]string {
	var out [][2]string
	seen := map[string]bool{}
	for _, st := range img.Steps {
		switch st.Kind {
		case definition.StepFile:
			if !seen[st.Source] {
				seen[st.Source] = true
				out = append(out, [2]string{st.Source, st.Path})
			}
		case definition.StepShell:
			for i, s := range st.Scripts {
				if !seen[s] {
					seen[s] = true
					out = append(out, [2]string{s, st.ScriptPaths[i]})
				}
			}
		}
	}
	return out
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func short(d string) string {
	if d == "" {
		return "none"
	}
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}
