package definition

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"
)

// VolatileFile is where a built image lists the volatile patterns of its
// definition (its own and its bases'), one a line: the build writes it next
// to /etc/kiln-release, and drift detection reads it from the image's root
// filesystem, so every version carries the rule it was built with.
const VolatileFile = "/etc/kiln/volatile"

// maxVolatile bounds the patterns of one image, and maxVolatileFile the
// size of a VolatileFile drift detection reads.
const (
	maxVolatile     = 256
	maxVolatileFile = 64 << 10
)

// ValidateVolatile checks one volatile pattern: a clean absolute path whose
// segments are path.Match patterns or "**" (any number of segments), that
// does not match every path. The error says what to write instead.
func ValidateVolatile(pattern string) error {
	const how = `write a clean absolute path such as "/var/lib/nginx" or "/srv/app/*/cache"`
	switch {
	case pattern == "":
		return fmt.Errorf("the pattern is empty; %s", how)
	case !strings.HasPrefix(pattern, "/"):
		return fmt.Errorf("%q is not absolute; %s", pattern, how)
	case strings.ContainsAny(pattern, "\x00\n\r"):
		return fmt.Errorf("%q holds a NUL or line break; %s", pattern, how)
	case pattern == "/":
		return fmt.Errorf(`"/" would ignore every change; name the directories services write at run time, e.g. "/var/lib/nginx"`)
	}
	if strings.HasSuffix(pattern, "/") || strings.Contains(pattern, "//") {
		return fmt.Errorf("%q has an empty path segment (a trailing or doubled /); %s", pattern, how)
	}
	wild := true
	for _, seg := range strings.Split(pattern[1:], "/") {
		switch {
		case seg == "." || seg == "..":
			return fmt.Errorf("%q holds a %q segment; patterns match paths as the image has them, so %s", pattern, seg, how)
		case seg == "**":
			continue
		case strings.Contains(seg, "**"):
			return fmt.Errorf("%q uses ** inside the segment %q; ** stands alone between slashes (/var/**/cache), * matches within one segment", pattern, seg)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("%q: the segment %q is not a valid pattern (%w); escape [ ] * ? with \\ to match them literally, and close every [", pattern, seg, err)
		}
		if seg != "*" {
			wild = false
		}
	}
	if wild {
		return fmt.Errorf("%q matches every path, so no drift would ever show; name the directories services write at run time, e.g. \"/var/lib/nginx\"", pattern)
	}
	return nil
}

// MatchVolatile reports whether the absolute path p matches pattern, a
// pattern ValidateVolatile accepts: each segment as path.Match, "**" for
// zero or more whole segments. It does not look at p's parents; drift
// detection checks a directory before what is in it and skips it whole
// when it matches. An invalid pattern matches nothing.
func MatchVolatile(pattern, p string) bool {
	if !strings.HasPrefix(pattern, "/") || !strings.HasPrefix(p, "/") {
		return false
	}
	ps := strings.Split(pattern[1:], "/")
	ns := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	// ok[j] reports whether the patterns segments seen so far match ns[:j].
	ok := make([]bool, len(ns)+1)
	ok[0] = true
	for _, seg := range ps {
		next := make([]bool, len(ns)+1)
		if seg == "**" {
			reach := false
			for j := range ok {
				reach = reach || ok[j]
				next[j] = reach
			}
		} else {
			for j := 1; j <= len(ns); j++ {
				if ok[j-1] {
					m, err := path.Match(seg, ns[j-1])
					next[j] = m && err == nil
				}
			}
		}
		ok = next
	}
	return ok[len(ns)]
}

// Volatile returns the volatile patterns of image name: its base's (and
// theirs, down the chain) followed by its own, without repeats. This is
// what the build writes to VolatileFile: an image built on nginx's image
// runs the same services.
func (e *Estate) Volatile(name string) []string {
	if e == nil {
		return nil
	}
	var chain []*Image
	for img := e.Images[name]; img != nil && len(chain) <= len(e.Images); {
		chain = append(chain, img)
		if img.Base == nil {
			break
		}
		img = e.Images[img.Base.Image]
	}
	var out []string
	for i := len(chain) - 1; i >= 0; i-- {
		for _, p := range chain[i].Volatile {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// FormatVolatile renders patterns as the content of VolatileFile.
func FormatVolatile(image string, patterns []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by kiln from the volatile attribute of image %q and its bases.\n", image)
	b.WriteString("# Drift detection counts changes under these paths but does not report them.\n")
	for _, p := range patterns {
		b.WriteString(p + "\n")
	}
	return b.Bytes()
}

// ParseVolatile reads the content of a VolatileFile: one pattern a line,
// blank lines and lines starting with # skipped. A pattern that is not
// valid is an error naming its line.
func ParseVolatile(content []byte) ([]string, error) {
	if len(content) > maxVolatileFile {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d kiln writes at most", VolatileFile, len(content), maxVolatileFile)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 4096), maxVolatileFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := ValidateVolatile(line); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", VolatileFile, n, err)
		}
		out = append(out, line)
	}
	return out, sc.Err()
}
