// Package packer reads the manifest Packer's manifest post-processor writes
// (packer-manifest.json) and turns its builds into kiln versions of method
// external: kiln keeps the record, Packer keeps building. It is pure: it
// imports only the root package and the standard library, and reads
// nothing but the bytes it is given.
package packer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// MaxManifest bounds a manifest file; real ones are a few KiB.
const MaxManifest = 16 << 20

// Manifest is a Packer manifest: its builds, appended run after run.
type Manifest struct {
	Builds      []Build
	LastRunUUID string
}

// Build is one build of a Packer run.
type Build struct {
	// Index is the build's position in the manifest's builds array.
	Index       int
	Name        string
	BuilderType string
	// BuildTime is when Packer finished the build.
	BuildTime  time.Time
	ArtifactID string
	RunUUID    string
	Files      []File
	CustomData map[string]string
}

// File is an output file Packer recorded.
type File struct {
	Name string
	Size int64
}

// The JSON shapes; custom_data values and sizes are checked by hand so
// the error names the field.
type rawManifest struct {
	Builds      *[]json.RawMessage `json:"builds"`
	LastRunUUID *string            `json:"last_run_uuid"`
}

type rawBuild struct {
	Name        *string                    `json:"name"`
	BuilderType *string                    `json:"builder_type"`
	BuildTime   json.RawMessage            `json:"build_time"`
	Files       []rawFile                  `json:"files"`
	ArtifactID  *string                    `json:"artifact_id"`
	RunUUID     *string                    `json:"packer_run_uuid"`
	CustomData  map[string]json.RawMessage `json:"custom_data"`
}

type rawFile struct {
	Name *string         `json:"name"`
	Size json.RawMessage `json:"size"`
}

var builderTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Parse reads a manifest. file names it in errors, which are EINVALID
// with Field "FILE: $.builds[2].artifact_id" (a JSON path) or "FILE:LINE:COL"
// for JSON syntax, and say what is wrong. Unknown fields are ignored:
// Packer adds fields over time.
func Parse(file string, r io.Reader) (*Manifest, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(data) > MaxManifest {
		return nil, kiln.FieldErrorf(kiln.EINVALID, file, "the manifest is larger than %d bytes; is it a Packer manifest?", MaxManifest)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, file, "the file is empty; Packer's manifest post-processor writes a JSON object with a builds array")
	}
	fail := func(path, format string, args ...any) error {
		return kiln.FieldErrorf(kiln.EINVALID, file+": "+path, format, args...)
	}
	var raw rawManifest
	if err := decodeStrict(data, &raw); err != nil {
		return nil, syntaxError(file, data, "$", err)
	}
	if raw.Builds == nil {
		return nil, fail("$.builds", "missing; a Packer manifest has a builds array (is this the manifest post-processor's output?)")
	}
	if len(*raw.Builds) == 0 {
		return nil, fail("$.builds", "is empty; there is nothing to import")
	}
	m := &Manifest{}
	if raw.LastRunUUID != nil {
		m.LastRunUUID = *raw.LastRunUUID
	}
	for i, rb := range *raw.Builds {
		path := fmt.Sprintf("$.builds[%d]", i)
		var b rawBuild
		if err := decodeStrict(rb, &b); err != nil {
			return nil, syntaxError(file, rb, path, err)
		}
		build := Build{Index: i}
		req := func(field string, v *string) (string, error) {
			if v == nil || strings.TrimSpace(*v) == "" {
				return "", fail(path+"."+field, "missing or empty; every build in a Packer manifest has one")
			}
			return *v, nil
		}
		if build.Name, err = req("name", b.Name); err != nil {
			return nil, err
		}
		if build.BuilderType, err = req("builder_type", b.BuilderType); err != nil {
			return nil, err
		}
		if !builderTypeRE.MatchString(build.BuilderType) {
			return nil, fail(path+".builder_type", "%q is not a Packer builder type (lowercase letters, digits, '-', e.g. amazon-ebs)", build.BuilderType)
		}
		if build.ArtifactID, err = req("artifact_id", b.ArtifactID); err != nil {
			return nil, err
		}
		if len(build.ArtifactID) > 2048 {
			return nil, fail(path+".artifact_id", "is %d bytes; the limit is 2048", len(build.ArtifactID))
		}
		if len(b.BuildTime) == 0 || string(b.BuildTime) == "null" {
			return nil, fail(path+".build_time", "missing; Packer writes the build's Unix time")
		}
		secs, err := strconv.ParseInt(string(b.BuildTime), 10, 64)
		if err != nil || secs <= 0 || secs > 1<<40 {
			return nil, fail(path+".build_time", "is %s %s; want the Unix time of the build in seconds, e.g. 1602512423", jsonKind(b.BuildTime), b.BuildTime)
		}
		build.BuildTime = time.Unix(secs, 0).UTC()
		if b.RunUUID != nil {
			build.RunUUID = *b.RunUUID
		}
		for j, f := range b.Files {
			fp := fmt.Sprintf("%s.files[%d]", path, j)
			if f.Name == nil || *f.Name == "" {
				return nil, fail(fp+".name", "missing or empty")
			}
			file := File{Name: *f.Name}
			if len(f.Size) > 0 && string(f.Size) != "null" {
				n, err := strconv.ParseInt(string(f.Size), 10, 64)
				if err != nil || n < 0 {
					return nil, fail(fp+".size", "is %s %s; want a size in bytes", jsonKind(f.Size), f.Size)
				}
				file.Size = n
			}
			build.Files = append(build.Files, file)
		}
		if len(b.CustomData) > 0 {
			build.CustomData = make(map[string]string, len(b.CustomData))
			for k, v := range b.CustomData {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return nil, fail(fmt.Sprintf("%s.custom_data.%s", path, k), "is %s; custom_data values are strings (Packer's manifest post-processor writes map[string]string)", jsonKind(v))
				}
				build.CustomData[k] = s
			}
		}
		m.Builds = append(m.Builds, build)
	}
	return m, nil
}

// decodeStrict decodes one JSON value and refuses trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// syntaxError turns a decoding error into one naming the JSON path (type
// errors) or line and column (syntax errors).
func syntaxError(file string, data []byte, path string, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col := position(data, int64(len(data)))
		return kiln.FieldErrorf(kiln.EINVALID, fmt.Sprintf("%s:%d:%d", file, line, col), "not valid JSON: the file ends in the middle of a value (truncated?)")
	case errors.As(err, &se):
		line, col := position(data, se.Offset)
		return kiln.FieldErrorf(kiln.EINVALID, fmt.Sprintf("%s:%d:%d", file, line, col), "not valid JSON: %v", se)
	case errors.As(err, &te):
		p := path
		if te.Field != "" {
			p += "." + te.Field
		}
		return kiln.FieldErrorf(kiln.EINVALID, file+": "+p, "is a JSON %s; want %s", te.Value, kindOf(te.Type.String()))
	}
	return kiln.FieldErrorf(kiln.EINVALID, file+": "+path, "%v", err)
}

func kindOf(goType string) string {
	switch {
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "Number"), strings.Contains(goType, "int"):
		return "a number"
	case strings.HasPrefix(goType, "[]"), strings.HasPrefix(goType, "*[]"):
		return "an array"
	case strings.HasPrefix(goType, "map"):
		return "an object"
	}
	return "an object"
}

func jsonKind(v json.RawMessage) string {
	switch t := bytes.TrimSpace(v); {
	case len(t) == 0:
		return "empty"
	case t[0] == '{':
		return "an object"
	case t[0] == '[':
		return "an array"
	case t[0] == 'n':
		return "null"
	case t[0] == 't' || t[0] == 'f':
		return "a boolean"
	case t[0] == '"':
		return "a string"
	}
	return "the number"
}

// position returns the 1-based line and column of byte offset off.
func position(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// Options are how builds become versions.
type Options struct {
	// Image is the image line every build is recorded under; empty uses
	// each build's name.
	Image string
}

// Versions turns a manifest's builds into new versions of method external,
// in build-time order (manifest order for equal times): the artifact is
// an external reference "packer:BUILDER:ARTIFACT_ID" with no digest and the
// total size of the build's files; custom_data become tags, with
// packer_build_name, packer_builder_type and packer_run_uuid. Every version is
// validated; the first error names the build ("FILE: $.builds[2]…").
func (m *Manifest) Versions(file string, opts Options) ([]*kiln.NewVersion, error) {
	builds := make([]Build, len(m.Builds))
	copy(builds, m.Builds)
	sort.SliceStable(builds, func(i, j int) bool { return builds[i].BuildTime.Before(builds[j].BuildTime) })
	var out []*kiln.NewVersion
	for _, b := range builds {
		path := fmt.Sprintf("%s: $.builds[%d]", file, b.Index)
		image := opts.Image
		if image == "" {
			image = b.Name
			if err := kiln.ValidateImageName(image); err != nil {
				return nil, kiln.FieldErrorf(kiln.EINVALID, path+".name", "build name %q is not a valid kiln image name; give the image with --image NAME", b.Name)
			}
		}
		var size int64
		for _, f := range b.Files {
			size += f.Size
		}
		nv := &kiln.NewVersion{
			Image: image,
			Tags:  kiln.Tags{},
			Provenance: kiln.Provenance{
				Method:     kiln.MethodExternal,
				Artifact:   &kiln.Artifact{Ref: ArtifactRef(b.BuilderType, b.ArtifactID), Size: size},
				BuiltBy:    "packer",
				StartedAt:  b.BuildTime,
				FinishedAt: b.BuildTime,
			},
		}
		for k, v := range b.CustomData {
			if err := kiln.ValidateTag(path+".custom_data."+k, k, v); err != nil {
				return nil, err
			}
			nv.Tags[k] = v
		}
		for k, v := range map[string]string{"packer_build_name": b.Name, "packer_builder_type": b.BuilderType, "packer_run_uuid": b.RunUUID} {
			if v == "" {
				continue
			}
			if _, set := b.CustomData[k]; set {
				return nil, kiln.FieldErrorf(kiln.EINVALID, path+".custom_data."+k, "custom_data key %s is the tag kiln records the build's %s under; rename it in the Packer template", k, strings.TrimPrefix(k, "packer_"))
			}
			if err := kiln.ValidateTag(path, k, v); err != nil {
				return nil, err
			}
			nv.Tags[k] = v
		}
		if len(nv.Tags) > kiln.MaxTags {
			return nil, kiln.FieldErrorf(kiln.EINVALID, path+".custom_data", "%d tags with kiln's three; the limit is %d", len(nv.Tags), kiln.MaxTags)
		}
		if err := nv.Validate(); err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, path, "%s", kiln.ErrorMessage(err))
		}
		out = append(out, nv)
	}
	return out, nil
}

// ArtifactRef is the external reference of a Packer artifact:
// "packer:amazon-ebs:us-east-1:ami-0abc…".
func ArtifactRef(builderType, artifactID string) string {
	return "packer:" + builderType + ":" + artifactID
}
