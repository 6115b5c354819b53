package web

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
)

// versionsPerPage is the version history's page size.
const versionsPerPage = 50

type imagesData struct {
	Images []*kiln.Image
	// Lineage maps an image built on another to its latest version's base.
	Lineage map[string]*kiln.Lineage
	// InUse counts the instances of each image, all versions.
	InUse map[string]int
}

func (s *Server) imagesPage(w http.ResponseWriter, r *http.Request) {
	const title = "Images"
	ctx := r.Context()
	imgs, err := s.cfg.Registry.ListImages(ctx)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	ls, err := s.cfg.Registry.Lineage(ctx)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	us, err := s.cfg.Fleet.Usage(ctx, kiln.UsageFilter{})
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	d := imagesData{Images: imgs, Lineage: map[string]*kiln.Lineage{}, InUse: map[string]int{}}
	for _, l := range ls {
		d.Lineage[l.Child.Image] = l
	}
	for _, u := range us {
		d.InUse[u.Image] += u.Instances
	}
	s.render(w, r, http.StatusOK, "images", page{Title: title, Nav: "images", Data: d})
}

// versionRow is one line of an image's version history.
type versionRow struct {
	*kiln.Version
	InUse int
	// BaseOutOfDate is set when a newer ready version of the base image
	// exists than the one this version was built on.
	BaseOutOfDate bool
	LatestBase    *kiln.VersionRef
}

type imageData struct {
	Image    *kiln.Image
	Versions []versionRow
	Pager    pager
	// LatestReady is the image's newest ready version, 0 when none.
	LatestReady int
	Lineage     *kiln.Lineage
}

func (s *Server) imagePage(w http.ResponseWriter, r *http.Request) {
	title := "Image " + r.PathValue("image")
	ctx := r.Context()
	img, err := s.cfg.Registry.FindImage(ctx, r.PathValue("image"))
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	offset, err := intParam(r.URL.Query(), "offset")
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	vs, total, err := s.cfg.Registry.ListVersions(ctx, kiln.VersionFilter{Image: img.Name, Limit: versionsPerPage, Offset: offset})
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	inUse, err := s.inUse(ctx, img.Name)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	d := imageData{Image: img, Pager: newPager(r.URL, offset, versionsPerPage, total)}
	if d.LatestReady, err = s.latestReady(ctx, img.Name); err != nil {
		s.fail(w, r, title, err)
		return
	}
	bases := map[string]int{}
	for _, v := range vs {
		row := versionRow{Version: v, InUse: inUse[v.Number]}
		if b := v.Provenance.Base; b != nil {
			n, seen := bases[b.Image]
			if !seen {
				if n, err = s.latestReady(ctx, b.Image); err != nil {
					s.fail(w, r, title, err)
					return
				}
				bases[b.Image] = n
			}
			if n > b.Number {
				row.BaseOutOfDate, row.LatestBase = true, &kiln.VersionRef{Image: b.Image, Number: n}
			}
		}
		d.Versions = append(d.Versions, row)
	}
	s.render(w, r, http.StatusOK, "image", page{Title: title, Nav: "images", Data: d})
}

// latestReady returns the number of image's newest ready version, 0 when
// it has none.
func (s *Server) latestReady(ctx context.Context, image string) (int, error) {
	v, err := s.cfg.Registry.LatestVersion(ctx, image, kiln.StatusReady)
	switch {
	case err == nil:
		return v.Number, nil
	case kiln.ErrorCode(err) == kiln.ENOTFOUND:
		return 0, nil
	}
	return 0, err
}

// inUse counts the instances of each version of image, all environments.
func (s *Server) inUse(ctx context.Context, image string) (map[int]int, error) {
	us, err := s.cfg.Fleet.Usage(ctx, kiln.UsageFilter{Image: image})
	if err != nil {
		return nil, err
	}
	m := map[int]int{}
	for _, u := range us {
		m[u.Number] += u.Instances
	}
	return m, nil
}

type versionData struct {
	versionRow
	History     []*kiln.HistoryEntry
	Attachments []*kiln.Attachment
	// SBOMs are the API's links to the version's stored SBOMs, SPDX
	// first; none for a version built before kiln wrote them.
	SBOMs []sbomLink
	// Checked says whether rebuild checks are kept; Reproductions are
	// the version's checks, newest first.
	Checked       bool
	Reproductions []*kiln.Reproduction
}

// sbomLink is one stored SBOM of a version: its format's name and where
// the API serves the document and its signed envelope.
type sbomLink struct {
	Label, URL, EnvelopeURL string
}

func (s *Server) versionPage(w http.ResponseWriter, r *http.Request) {
	image := r.PathValue("image")
	title := "Version " + image + "-" + r.PathValue("number")
	ctx := r.Context()
	n, err := strconv.Atoi(r.PathValue("number"))
	if err != nil || n < 1 {
		s.fail(w, r, title, kiln.FieldErrorf(kiln.EINVALID, "number", "%q is not a version number; versions are numbered 1, 2, 3…", r.PathValue("number")))
		return
	}
	ref := kiln.VersionRef{Image: image, Number: n}
	v, err := s.cfg.Registry.FindVersion(ctx, ref)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	d := versionData{versionRow: versionRow{Version: v}}
	inUse, err := s.inUse(ctx, image)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	d.InUse = inUse[n]
	if b := v.Provenance.Base; b != nil {
		latest, err := s.latestReady(ctx, b.Image)
		if err != nil {
			s.fail(w, r, title, err)
			return
		}
		if latest > b.Number {
			d.BaseOutOfDate, d.LatestBase = true, &kiln.VersionRef{Image: b.Image, Number: latest}
		}
	}
	if d.History, err = s.cfg.Registry.History(ctx, ref); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if d.Attachments, err = s.cfg.Registry.ListAttachments(ctx, ref); err != nil {
		s.fail(w, r, title, err)
		return
	}
	d.SBOMs = sbomLinks(ref, d.Attachments)
	if s.cfg.Reproductions != nil {
		d.Checked = true
		if d.Reproductions, err = s.cfg.Reproductions.ListReproductions(ctx, ref); err != nil {
			s.fail(w, r, title, err)
			return
		}
	}
	s.render(w, r, http.StatusOK, "version", page{Title: v.Name, Nav: "images", Data: d})
}

// sbomLinks are the links to the SBOMs among a version's attachments.
func sbomLinks(ref kiln.VersionRef, as []*kiln.Attachment) []sbomLink {
	var out []sbomLink
	for _, f := range []struct{ format, label string }{{"spdx", "SPDX 2.3"}, {"cyclonedx", "CycloneDX 1.6"}} {
		name := api.SBOMAttachments[f.format]
		if !slices.ContainsFunc(as, func(a *kiln.Attachment) bool { return a.Name == name }) {
			continue
		}
		u := "/api/v1/images/" + url.PathEscape(ref.Image) + "/versions/" + strconv.Itoa(ref.Number) + "/sbom?format=" + f.format
		out = append(out, sbomLink{Label: f.label, URL: u, EnvelopeURL: u + "&envelope=true"})
	}
	return out
}
