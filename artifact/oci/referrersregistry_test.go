package oci

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// referrersRegistry is a registry in memory, on loopback, that speaks
// the parts of the OCI distribution spec 1.1 kiln uses — blobs (upload,
// cross-repository mount, read, delete), manifests by tag and digest, tag
// lists — and the referrers API (GET /v2/<name>/referrers/<digest>, with
// the artifactType filter, and the OCI-Subject header on a pushed
// manifest with a subject), which docker-registry 2.8 lacks. It keeps a
// log of the requests it answered.
type referrersRegistry struct {
	Host string

	mu        sync.Mutex
	blobs     map[string][]byte          // digest → content, shared by every repository
	repoBlobs map[string]map[string]bool // repository → digests it holds
	manifests map[string]map[string]manifestEntry
	tags      map[string]map[string]string // repository → tag → digest
	uploads   map[string]*bytes.Buffer
	requests  []string // "METHOD PATH?QUERY"
}

type manifestEntry struct {
	mediaType string
	body      []byte
}

var (
	reUploads  = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/$`)
	reUpload   = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/([0-9a-f]+)$`)
	reBlob     = regexp.MustCompile(`^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$`)
	reManifest = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	reRefs     = regexp.MustCompile(`^/v2/(.+)/referrers/(sha256:[0-9a-f]{64})$`)
	reTags     = regexp.MustCompile(`^/v2/(.+)/tags/list$`)
)

func startReferrersRegistry(t *testing.T) *referrersRegistry {
	t.Helper()
	r := &referrersRegistry{blobs: map[string][]byte{}, repoBlobs: map[string]map[string]bool{},
		manifests: map[string]map[string]manifestEntry{}, tags: map[string]map[string]string{}, uploads: map[string]*bytes.Buffer{}}
	srv := httptest.NewServer(r) // 127.0.0.1
	t.Cleanup(srv.Close)
	r.Host = srv.Listener.Addr().String()
	return r
}

// requested returns the requests answered so far.
func (r *referrersRegistry) requested() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

func regError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func (r *referrersRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := req.Method + " " + req.URL.Path
	if req.URL.RawQuery != "" {
		line += "?" + req.URL.RawQuery
	}
	r.requests = append(r.requests, line)
	p := req.URL.Path
	var m []string
	match := func(re *regexp.Regexp) bool { m = re.FindStringSubmatch(p); return m != nil }
	switch {
	case p == "/v2/" || p == "/v2":
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		_, _ = io.WriteString(w, "{}")
	case match(reUploads) && req.Method == http.MethodPost:
		r.startUpload(w, req, m[1])
	case match(reUpload):
		r.upload(w, req, m[1], m[2])
	case match(reBlob):
		r.blob(w, req, m[1], m[2])
	case match(reRefs) && req.Method == http.MethodGet:
		r.referrers(w, req, m[1], m[2])
	case match(reManifest):
		r.manifest(w, req, m[1], m[2])
	case match(reTags) && req.Method == http.MethodGet:
		tags := []string{}
		for tag := range r.tags[m[1]] {
			tags = append(tags, tag)
		}
		slices.Sort(tags)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"name": m[1], "tags": tags})
	default:
		regError(w, http.StatusNotFound, "NOT_FOUND", "no route "+req.Method+" "+p)
	}
}

func (r *referrersRegistry) has(repo, d string) bool { return r.repoBlobs[repo][d] }

func (r *referrersRegistry) keep(repo, d string, b []byte) {
	r.blobs[d] = b
	if r.repoBlobs[repo] == nil {
		r.repoBlobs[repo] = map[string]bool{}
	}
	r.repoBlobs[repo][d] = true
}

func (r *referrersRegistry) startUpload(w http.ResponseWriter, req *http.Request, repo string) {
	q := req.URL.Query()
	if d, from := q.Get("mount"), q.Get("from"); d != "" && from != "" && r.has(from, d) {
		r.keep(repo, d, r.blobs[d])
		w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d)
		w.Header().Set("Docker-Content-Digest", d)
		w.WriteHeader(http.StatusCreated)
		return
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	u := hex.EncodeToString(id[:])
	r.uploads[u] = &bytes.Buffer{}
	w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+u)
	w.Header().Set("Range", "0-0")
	w.WriteHeader(http.StatusAccepted)
}

func (r *referrersRegistry) upload(w http.ResponseWriter, req *http.Request, repo, id string) {
	buf := r.uploads[id]
	if buf == nil {
		regError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "no upload "+id)
		return
	}
	if _, err := io.Copy(buf, req.Body); err != nil {
		regError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err.Error())
		return
	}
	switch req.Method {
	case http.MethodPatch:
		w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
		w.Header().Set("Range", "0-"+strconv.Itoa(buf.Len()-1))
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPut:
		d := req.URL.Query().Get("digest")
		if got := digest.FromBytes(buf.Bytes()).String(); got != d {
			regError(w, http.StatusBadRequest, "DIGEST_INVALID", "content is "+got+", not "+d)
			return
		}
		delete(r.uploads, id)
		r.keep(repo, d, buf.Bytes())
		w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d)
		w.Header().Set("Docker-Content-Digest", d)
		w.WriteHeader(http.StatusCreated)
	default:
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", req.Method)
	}
}

func (r *referrersRegistry) blob(w http.ResponseWriter, req *http.Request, repo, d string) {
	if !r.has(repo, d) {
		regError(w, http.StatusNotFound, "BLOB_UNKNOWN", d)
		return
	}
	switch req.Method {
	case http.MethodHead, http.MethodGet:
		b := r.blobs[d]
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Header().Set("Docker-Content-Digest", d)
		if req.Method == http.MethodGet {
			_, _ = w.Write(b)
		}
	case http.MethodDelete:
		delete(r.repoBlobs[repo], d)
		w.WriteHeader(http.StatusAccepted)
	default:
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", req.Method)
	}
}

func (r *referrersRegistry) manifest(w http.ResponseWriter, req *http.Request, repo, ref string) {
	if r.manifests[repo] == nil {
		r.manifests[repo] = map[string]manifestEntry{}
		r.tags[repo] = map[string]string{}
	}
	d := ref
	if _, err := digest.Parse(ref); err != nil {
		d = r.tags[repo][ref]
	}
	switch req.Method {
	case http.MethodHead, http.MethodGet:
		e, ok := r.manifests[repo][d]
		if !ok {
			regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", ref)
			return
		}
		w.Header().Set("Content-Type", e.mediaType)
		w.Header().Set("Content-Length", strconv.Itoa(len(e.body)))
		w.Header().Set("Docker-Content-Digest", d)
		if req.Method == http.MethodGet {
			_, _ = w.Write(e.body)
		}
	case http.MethodPut:
		b, err := io.ReadAll(req.Body)
		if err != nil {
			regError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
			return
		}
		var man ocispec.Manifest
		if err := json.Unmarshal(b, &man); err != nil {
			regError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
			return
		}
		for _, l := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
			if l.Digest != "" && !r.has(repo, l.Digest.String()) {
				regError(w, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", l.Digest.String())
				return
			}
		}
		got := digest.FromBytes(b).String()
		if _, err := digest.Parse(ref); err == nil && ref != got {
			regError(w, http.StatusBadRequest, "DIGEST_INVALID", "manifest is "+got+", not "+ref)
			return
		}
		r.manifests[repo][got] = manifestEntry{mediaType: req.Header.Get("Content-Type"), body: b}
		if ref != got {
			r.tags[repo][ref] = got
		}
		if man.Subject != nil {
			w.Header().Set("OCI-Subject", man.Subject.Digest.String())
		}
		w.Header().Set("Location", "/v2/"+repo+"/manifests/"+got)
		w.Header().Set("Docker-Content-Digest", got)
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		if _, ok := r.manifests[repo][d]; !ok {
			regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", ref)
			return
		}
		delete(r.manifests[repo], d)
		for tag, td := range r.tags[repo] {
			if td == d {
				delete(r.tags[repo], tag)
			}
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", req.Method)
	}
}

// referrers answers the OCI 1.1 referrers API: an image index of the
// manifests in repo whose subject is d (an empty one for a subject
// nothing refers to), filtered by artifactType when asked.
func (r *referrersRegistry) referrers(w http.ResponseWriter, req *http.Request, repo, d string) {
	want := req.URL.Query().Get("artifactType")
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	for md, e := range r.manifests[repo] {
		var man ocispec.Manifest
		if json.Unmarshal(e.body, &man) != nil || man.Subject == nil || man.Subject.Digest.String() != d {
			continue
		}
		at := man.ArtifactType
		if at == "" {
			at = man.Config.MediaType
		}
		if want != "" && at != want {
			continue
		}
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: e.mediaType, Digest: digest.Digest(md), Size: int64(len(e.body)), ArtifactType: at, Annotations: man.Annotations})
	}
	slices.SortFunc(idx.Manifests, func(a, b ocispec.Descriptor) int { return bytes.Compare([]byte(a.Digest), []byte(b.Digest)) })
	if want != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	_ = json.NewEncoder(w).Encode(idx)
}
