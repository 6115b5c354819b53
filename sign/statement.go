package sign

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

const (
	// StatementType is the _type of an in-toto Statement v1.
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateType names kiln's provenance predicate (see Predicate). It is
	// an identifier, not a page that must resolve.
	PredicateType = "https://kiln.dev/provenance/v1"
	// PayloadType is the DSSE payload type of an in-toto statement.
	PayloadType = "application/vnd.in-toto+json"
)

// Statement is an in-toto Statement v1 about one version's artifact. Its
// field order is the order of the encoded JSON.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject names an artifact the statement is about: Name is the version
// name ("appserver-3") for its root filesystem artifact and the version name
// with the format as extension ("appserver-3.qcow2") for each further
// artifact (disk images); Digest maps "sha256" to the artifact's hex digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate is what kiln attests about a version: which version it is and
// its provenance record as the registry keeps it.
type Predicate struct {
	Image      string          `json:"image"`
	Number     int             `json:"number"`
	SemVer     string          `json:"semver,omitempty"`
	Provenance kiln.Provenance `json:"provenance"`
}

// NewStatement returns the statement kiln signs for v. The provenance is
// normalized the way the registry stores it (times in UTC to the
// microsecond, packages sorted by name and architecture, empty lists
// rather than null), so a version read back from the database yields the
// same statement as the one just recorded.
//
// EINVALID when v has no artifact or its digest is malformed: there is
// nothing to sign.
func NewStatement(v *kiln.Version) (*Statement, error) {
	if v == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "no version given to sign")
	}
	name := v.Ref().String()
	a := v.Provenance.Artifact
	if a == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "version %s has no artifact, so there is nothing to sign; record the artifact with the version", name)
	}
	if err := kiln.ValidateDigest("artifact.digest", a.Digest); err != nil {
		return nil, err
	}
	p := normalize(v.Provenance)
	subjects := []Subject{{
		Name:   name,
		Digest: map[string]string{"sha256": strings.TrimPrefix(a.Digest, "sha256:")},
	}}
	for i, x := range p.Artifacts {
		if err := kiln.ValidateDigest(fmt.Sprintf("artifacts[%d].digest", i), x.Digest); err != nil {
			return nil, err
		}
		subjects = append(subjects, Subject{
			Name:   SubjectName(v.Ref(), x.Format),
			Digest: map[string]string{"sha256": strings.TrimPrefix(x.Digest, "sha256:")},
		})
	}
	return &Statement{
		Type:          StatementType,
		Subject:       subjects,
		PredicateType: PredicateType,
		Predicate: Predicate{
			Image:      v.Image,
			Number:     v.Number,
			SemVer:     v.SemVer,
			Provenance: p,
		},
	}, nil
}

// SubjectName is the in-toto subject name of a version's artifact of
// format f: the version's name for its root filesystem, "appserver-3.qcow2"
// for a disk image.
func SubjectName(ref kiln.VersionRef, f kiln.ArtifactFormat) string {
	if f == "" || f == kiln.FormatRootfs {
		return ref.String()
	}
	return ref.String() + "." + string(f)
}

// Marshal returns the statement's JSON: encoding/json of the structs
// above, so fields come in declaration order, map keys sorted, no
// insignificant whitespace. The same version always gives the same bytes.
func (st *Statement) Marshal() ([]byte, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode statement: %w", err)
	}
	return b, nil
}

// decodeStatement parses a signed payload strictly: one JSON object, no
// unknown fields (a field kiln does not know is a claim it cannot check).
func decodeStatement(payload []byte) (*Statement, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var st Statement
	if err := dec.Decode(&st); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the statement's JSON object")
	}
	st.Predicate.Provenance = normalize(st.Predicate.Provenance)
	return &st, nil
}

// normalize returns a deep copy of p in the form the registry stores.
func normalize(p kiln.Provenance) kiln.Provenance {
	n := p
	if p.Parent != nil {
		r := *p.Parent
		n.Parent = &r
	}
	if p.Base != nil {
		r := *p.Base
		n.Base = &r
	}
	if p.Artifact != nil {
		a := *p.Artifact
		a.Layers = slices.Clone(p.Artifact.Layers)
		n.Artifact = &a
	}
	if len(p.Artifacts) > 0 {
		n.Artifacts = slices.Clone(p.Artifacts)
		slices.SortStableFunc(n.Artifacts, func(a, b kiln.Artifact) int { return strings.Compare(string(a.Format), string(b.Format)) })
	} else {
		n.Artifacts = nil
	}
	n.Sources = append([]kiln.Source{}, p.Sources...)
	n.Packages = append([]kiln.Package{}, p.Packages...)
	slices.SortStableFunc(n.Packages, func(a, b kiln.Package) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := strings.Compare(a.Architecture, b.Architecture); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	n.StartedAt = storedTime(p.StartedAt)
	n.FinishedAt = storedTime(p.FinishedAt)
	return n
}

// storedTime is t as both store dialects keep it: UTC, whole microseconds.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// maxDiffs bounds how many differences a mismatch message lists.
const maxDiffs = 3

// diffPredicates lists where the signed predicate and the registry's
// differ, as "path: signed X, registry Y", at most maxDiffs of them.
func diffPredicates(signed, registry *Predicate) ([]string, error) {
	var a, b any
	for _, x := range []struct {
		p   *Predicate
		out *any
	}{{signed, &a}, {registry, &b}} {
		raw, err := json.Marshal(x.p)
		if err != nil {
			return nil, fmt.Errorf("encode predicate: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(x.out); err != nil {
			return nil, fmt.Errorf("decode predicate: %w", err)
		}
	}
	var out []string
	diffJSON("", a, b, &out)
	return out, nil
}

// diffJSON walks two decoded JSON values and appends the paths where they
// differ, depth first, stopping at maxDiffs.
func diffJSON(path string, a, b any, out *[]string) {
	if len(*out) >= maxDiffs {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, dup := av[k]; !dup {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			x, inA := av[k]
			y, inB := bv[k]
			switch {
			case !inA:
				*out = append(*out, fmt.Sprintf("%s: absent from the signed statement, registry %s", p, show(y)))
			case !inB:
				*out = append(*out, fmt.Sprintf("%s: signed %s, absent from the registry", p, show(x)))
			default:
				diffJSON(p, x, y, out)
			}
			if len(*out) >= maxDiffs {
				return
			}
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok {
			break
		}
		for i := range min(len(av), len(bv)) {
			diffJSON(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i], out)
			if len(*out) >= maxDiffs {
				return
			}
		}
		if len(av) != len(bv) {
			*out = append(*out, fmt.Sprintf("%s: %d entries signed, %d in the registry", path, len(av), len(bv)))
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, fmt.Sprintf("%s: signed %s, registry %s", path, show(a), show(b)))
	}
}

// show renders a JSON value for a message, cut to a readable length.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	const limit = 80
	if r := []rune(string(b)); len(r) > limit {
		return string(r[:limit]) + "…"
	}
	return string(b)
}
