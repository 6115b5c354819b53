package oci

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/kiln-project/kiln"
)

// PutFrom uploads the artifact d of src to the store's repository unless
// it is there already, streaming it from src (whose reader checks the
// digest) without a spool copy: the digest is known. It returns the
// artifact as the registry holds it.
func (s *Store) PutFrom(ctx context.Context, src kiln.ArtifactStore, d string) (*kiln.Artifact, error) {
	if err := kiln.ValidateDigest("digest", d); err != nil {
		return nil, err
	}
	a, err := src.Stat(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("upload artifact %s to %s: %w", d, s.loc, err)
	}
	repo, err := s.repo(ctx, s.loc.Repository)
	if err != nil {
		return nil, err
	}
	desc := ocispec.Descriptor{MediaType: mediaTypeBlob, Digest: digest.Digest(d), Size: a.Size}
	ok, err := repo.Blobs().Exists(ctx, desc)
	if err != nil {
		return nil, s.fail(err, "check artifact %s in %s", d, s.loc)
	}
	if !ok {
		rc, err := src.Open(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("upload artifact %s to %s: %w", d, s.loc, err)
		}
		// The HTTP client closes a body that can be closed: hide Close,
		// so the source's own digest check runs here (the registry checks
		// the digest of what it receives too).
		err = repo.Blobs().Push(ctx, desc, struct{ io.Reader }{rc})
		if cerr := rc.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return nil, s.fail(err, "upload artifact %s to %s", d, s.loc)
		}
	}
	return &kiln.Artifact{Ref: s.ref(d), Digest: d, Size: a.Size}, nil
}

// Verify pulls a version (manifest, config, provenance) and reads every
// layer, checking each blob's digest and size: it fails on the first
// blob that is missing or does not match. Nothing is kept.
func (s *Store) Verify(ctx context.Context, image, reference string) (*Pulled, error) {
	p, err := s.PullVersion(ctx, image, reference)
	if err != nil {
		return nil, err
	}
	name := s.loc.image(image)
	repo, err := s.repo(ctx, name)
	if err != nil {
		return nil, err
	}
	for i, l := range p.Layers {
		what := fmt.Sprintf("layer %d (%s) of %s:%s in %s", i+1, l.Digest, image, reference, s.url(name))
		rc, err := s.openBlob(ctx, repo, l.descriptor(), what)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, s.fail(err, "read %s", what)
		}
	}
	return p, nil
}

// Tags lists the tags of an image's repository, sorted; an image never
// pushed has none.
func (s *Store) Tags(ctx context.Context, image string) ([]string, error) {
	if err := kiln.ValidateImageName(image); err != nil {
		return nil, err
	}
	name := s.loc.image(image)
	repo, err := s.repo(ctx, name)
	if err != nil {
		return nil, err
	}
	var tags []string
	err = repo.Tags(ctx, "", func(ts []string) error {
		tags = append(tags, ts...)
		return nil
	})
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		if kiln.ErrorCode(s.fail(err, "")) == kiln.ENOTFOUND {
			return nil, nil
		}
		return nil, s.fail(err, "list the tags of %s", s.url(name))
	}
	sort.Strings(tags)
	return tags, nil
}

// Resolve returns the manifest digest a tag (or digest) of an image
// names; ENOTFOUND when it names nothing.
func (s *Store) Resolve(ctx context.Context, image, reference string) (string, error) {
	if err := kiln.ValidateImageName(image); err != nil {
		return "", err
	}
	name := s.loc.image(image)
	repo, err := s.repo(ctx, name)
	if err != nil {
		return "", err
	}
	desc, err := repo.Manifests().Resolve(ctx, reference)
	if errors.Is(err, errdef.ErrNotFound) {
		return "", kiln.Errorf(kiln.ENOTFOUND, "%s:%s does not exist in %s", image, reference, s.url(name))
	}
	if err != nil {
		return "", s.fail(err, "look up %s:%s in %s", image, reference, s.url(name))
	}
	return desc.Digest.String(), nil
}

// ImageURL returns oci://HOST/REPOSITORY/IMAGE.
func (s *Store) ImageURL(image string) string { return s.url(s.loc.image(image)) }

// DeleteLayer removes a layer blob from an image's repository (the
// registry drops the repository's link; its own garbage collection frees
// the bytes once nothing links them). Deleting a missing blob is not an
// error.
func (s *Store) DeleteLayer(ctx context.Context, image, d string) error {
	if err := kiln.ValidateImageName(image); err != nil {
		return err
	}
	if err := kiln.ValidateDigest("digest", d); err != nil {
		return err
	}
	name := s.loc.image(image)
	repo, err := s.repo(ctx, name)
	if err != nil {
		return err
	}
	err = repo.Blobs().Delete(ctx, ocispec.Descriptor{Digest: digest.Digest(d)})
	if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		if kiln.ErrorCode(s.fail(err, "")) == kiln.ENOTFOUND {
			return nil
		}
		return s.fail(err, "delete layer %s from %s", d, s.url(name))
	}
	return nil
}

// HasLayer reports whether an image's repository (image "" for the
// store's own repository) links the blob d.
func (s *Store) HasLayer(ctx context.Context, image, d string) (bool, error) {
	name := s.loc.Repository
	if image != "" {
		if err := kiln.ValidateImageName(image); err != nil {
			return false, err
		}
		name = s.loc.image(image)
	}
	repo, err := s.repo(ctx, name)
	if err != nil {
		return false, err
	}
	ok, err := repo.Blobs().Exists(ctx, ocispec.Descriptor{Digest: digest.Digest(d)})
	if err != nil {
		return false, s.fail(err, "check blob %s in %s", d, s.url(name))
	}
	return ok, nil
}

// CheckDeletes asks the registry whether it lets kiln delete in an
// image's repository (image "" for the store's own) without deleting
// anything: it deletes a blob no one can have (a random digest). A
// registry that allows deletes answers 404 (or accepts); one that has
// them disabled answers 405, which docker-registry does by default; an
// account without delete rights gets 401 or 403. The error says what to
// configure.
func (s *Store) CheckDeletes(ctx context.Context, image string) error {
	name := s.loc.Repository
	if image != "" {
		if err := kiln.ValidateImageName(image); err != nil {
			return err
		}
		name = s.loc.image(image)
	}
	repo, err := s.repo(ctx, name)
	if err != nil {
		return err
	}
	var nonce [32]byte
	_, _ = rand.Read(nonce[:])
	probe := digest.FromBytes(nonce[:])
	err = repo.Blobs().Delete(ctx, ocispec.Descriptor{Digest: probe})
	if err == nil || errors.Is(err, errdef.ErrNotFound) {
		return nil
	}
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.StatusCode {
		case http.StatusNotFound:
			return nil
		case http.StatusMethodNotAllowed:
			return &kiln.Error{Code: kiln.EUNAVAILABLE, Err: err, Message: fmt.Sprintf(
				"registry %s does not allow deletes (DELETE %s answered %d %s); nothing was deleted. Enable deletes in the registry and run gc again: for docker-registry (distribution) set `storage: delete: enabled: true` in its config.yml (Debian: /etc/docker/registry/config.yml) and restart it; for Harbor, Zot, ECR, GHCR or Artifactory allow deleting manifests and blobs in %s and give kiln's account delete rights",
				s.url(name), resp.URL.Redacted(), resp.StatusCode, http.StatusText(resp.StatusCode), name)}
		case http.StatusUnauthorized, http.StatusForbidden:
			return &kiln.Error{Code: kiln.EFORBIDDEN, Err: err, Message: fmt.Sprintf(
				"registry %s does not let kiln's account delete in %s (DELETE %s answered %d %s); nothing was deleted. Give the account delete rights on %s (besides pull and push), or run gc with credentials that have them (--artifacts-credentials)",
				s.url(name), name, resp.URL.Redacted(), resp.StatusCode, http.StatusText(resp.StatusCode), name)}
		}
	}
	return s.fail(err, "check that %s allows deletes (nothing was deleted)", s.url(name))
}
