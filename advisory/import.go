package advisory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-project/kiln"
)

// Format is an advisory file format ImportPath recognises.
type Format string

const (
	FormatOSV           Format = "osv"            // one OSV record per file
	FormatDebianTracker Format = "debian-tracker" // the tracker's whole-archive export
)

// osvKeys are the OSV schema's top-level keys; a file whose first key is
// one of them is an OSV record, anything else is taken as tracker JSON
// (whose top-level keys are source package names).
var osvKeys = map[string]bool{
	"schema_version": true, "id": true, "modified": true, "published": true,
	"withdrawn": true, "aliases": true, "upstream": true, "related": true,
	"summary": true, "details": true, "severity": true, "affected": true,
	"references": true, "credits": true, "database_specific": true,
}

// DetectFormat tells an OSV record from a tracker export by the first key
// of the top-level object, without reading the rest.
func DetectFormat(data []byte) Format {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return FormatOSV // let the OSV parser report what is wrong
	}
	t, err := dec.Token()
	if err != nil {
		return FormatOSV
	}
	if k, _ := t.(string); osvKeys[k] {
		return FormatOSV
	}
	return FormatDebianTracker
}

// ParseFile reads one advisory file of either format.
func ParseFile(name string, data []byte) ([]*kiln.Advisory, Format, error) {
	switch f := DetectFormat(data); f {
	case FormatDebianTracker:
		advs, err := ParseDebianTracker(name, data)
		return advs, f, err
	default:
		a, err := ParseOSV(name, data)
		if err != nil {
			return nil, f, err
		}
		return []*kiln.Advisory{a}, f, nil
	}
}

// ImportPath reads advisories from a file, or from every *.json file
// directly inside a directory (subdirectories are not read). It is all or
// nothing: the first bad file is reported by name, with line, column and
// JSON field, and nothing is returned. The same advisory id from the same
// source in two files is also refused, naming both.
func ImportPath(ctx context.Context, path string) ([]*kiln.Advisory, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, kiln.FieldErrorf(kiln.ENOTFOUND, path, "cannot read advisories: %v", err)
	}
	files := []string{path}
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, path, "cannot list the directory: %v", err)
		}
		files = files[:0]
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		if len(files) == 0 {
			return nil, kiln.FieldErrorf(kiln.EINVALID, path, "the directory has no *.json files; give an OSV record, a directory of them, or the tracker's JSON export")
		}
		sort.Strings(files)
	}
	var out []*kiln.Advisory
	seen := map[string]string{} // source/id → file
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("import %s: %w", path, err)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, f, "cannot read the file: %v", err)
		}
		advs, _, err := ParseFile(f, data)
		if err != nil {
			return nil, err
		}
		for _, a := range advs {
			key := string(a.Source) + "/" + a.ID
			if prev, dup := seen[key]; dup {
				return nil, kiln.FieldErrorf(kiln.ECONFLICT, f, "advisory %s is also in %s; keep one copy", a.ID, prev)
			}
			seen[key] = f
		}
		out = append(out, advs...)
	}
	return out, nil
}
