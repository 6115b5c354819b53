package definition

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"gopkg.in/yaml.v3"
)

// resolvePath turns a path written in a definition into the absolute,
// symlink-free path of a regular file inside the estate directory. Paths
// are relative to the estate directory; absolute paths, paths with ".."
// that leave it, and symlinks that point outside it are refused, so a
// definition can only ever ship files that live in its estate.
func (l *loader) resolvePath(rel string, rng hcl.Range, what string) (string, *hcl.Diagnostic) {
	switch {
	case rel == "":
		return "", rangeError(rng, "Empty path", fmt.Sprintf("the %s path is empty; write a path relative to the estate directory, e.g. files/motd.", what))
	case strings.ContainsRune(rel, 0):
		return "", rangeError(rng, "Invalid path", fmt.Sprintf("the %s path contains a NUL byte.", what))
	case filepath.IsAbs(rel):
		return "", rangeError(rng, "Absolute path",
			fmt.Sprintf("%s path %q is absolute; write it relative to the estate directory %s and keep the file inside it.", what, rel, l.dir))
	}
	clean := filepath.Clean(rel)
	if clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", rangeError(rng, "Path outside the estate",
			fmt.Sprintf("%s path %q leaves the estate directory; copy the file into the estate and refer to it from there.", what, rel))
	}
	full := filepath.Join(l.dir, clean)
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", rangeError(rng, "File not found",
				fmt.Sprintf("%s %q does not exist (looked for %s); check the path, which is relative to the estate directory.", what, rel, full))
		}
		return "", rangeError(rng, "Cannot read file", fmt.Sprintf("%s %q: %s.", what, rel, err))
	}
	if !within(l.dir, real) {
		shown := real
		if r, err := filepath.Rel(l.dir, real); err == nil {
			shown = r
		}
		return "", rangeError(rng, "Path outside the estate",
			fmt.Sprintf("%s %q is a symlink to %s, outside the estate directory; copy the file into the estate instead of linking to it.", what, rel, shown))
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", rangeError(rng, "Cannot read file", fmt.Sprintf("%s %q: %s.", what, rel, err))
	}
	if !fi.Mode().IsRegular() {
		return "", rangeError(rng, "Not a regular file",
			fmt.Sprintf("%s %q is a %s; name a regular file.", what, rel, fileKind(fi.Mode())))
	}
	return real, nil
}

// within reports whether path is dir or below it; both are clean and absolute.
func within(dir, path string) bool {
	if path == dir {
		return true
	}
	prefix := dir
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	return strings.HasPrefix(path, prefix)
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// checkVarsFile reports a test vars file that is not a YAML or JSON
// mapping, which goss (and kiln's templates) could not use.
func checkVarsFile(path, rel string, rng hcl.Range) *hcl.Diagnostic {
	data, err := os.ReadFile(path)
	if err != nil {
		return rangeError(rng, "Cannot read file", fmt.Sprintf("test vars file %q: %s.", rel, err))
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return rangeError(rng, "Invalid test vars file",
			fmt.Sprintf("test vars file %q is not a YAML or JSON mapping of names to values: %s.", rel, strings.TrimPrefix(err.Error(), "yaml: ")))
	}
	return nil
}
