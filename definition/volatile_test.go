package definition_test

import (
	"path"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/definition"
)

func TestMatchVolatile(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"/var/lib/nginx", "/var/lib/nginx", true},
		{"/var/lib/nginx", "/var/lib/nginx/body", false}, // drift skips the directory whole; the matcher does not look at parents
		{"/var/lib/nginx", "/var/lib/nginx-extra", false},
		{"/var/lib/nginx", "/var/lib", false},
		{"/var/lib/nginx/**", "/var/lib/nginx", true},
		{"/var/lib/nginx/**", "/var/lib/nginx/body", true},
		{"/var/lib/nginx/**", "/var/lib/nginx/body/00/1", true},
		{"/var/lib/nginx/*", "/var/lib/nginx/body", true},
		{"/var/lib/nginx/*", "/var/lib/nginx/body/00", false},
		{"/var/lib/nginx/*", "/var/lib/nginx", false},
		{"/srv/*/cache", "/srv/app/cache", true},
		{"/srv/*/cache", "/srv/app/x/cache", false},
		{"/srv/**/cache", "/srv/cache", true},
		{"/srv/**/cache", "/srv/a/b/c/cache", true},
		{"/srv/**/cache", "/srv/a/b/c/cache/x", false},
		{"/**/*.pid", "/run/app.pid", true},
		{"/**/*.pid", "/opt/app/run/app.pid", true},
		{"/**/*.pid", "/opt/app/run/app.pidx", false},
		{"/srv/sessions/*.tmp", "/srv/sessions/a.tmp", true},
		{"/srv/[ab]*", "/srv/apple", true},
		{"/srv/[ab]*", "/srv/cherry", false},
		{"/srv/\\*", "/srv/*", true},
		{"/srv/\\*", "/srv/x", false},
		{"/a/**/**/b", "/a/b", true},
		{"/a/**/b/**/c", "/a/x/b/y/z/c", true},
		{"/a/**/b/**/c", "/a/x/c", false},
		{"/var/lib/nginx", "/var/lib/nginx/", true}, // a directory written with its slash
		{"var/lib/nginx", "/var/lib/nginx", false},  // invalid: matches nothing
		{"/srv/[ab", "/srv/[ab", false},
	} {
		if got := definition.MatchVolatile(tc.pattern, tc.path); got != tc.want {
			t.Errorf("MatchVolatile(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

func TestValidateVolatile(t *testing.T) {
	for _, ok := range []string{"/var/lib/nginx", "/var/lib/nginx/**", "/run/nginx.pid", "/srv/*/cache", "/**/*.pid", "/srv/\\[x\\]", "/*/cache"} {
		if err := definition.ValidateVolatile(ok); err != nil {
			t.Errorf("ValidateVolatile(%q) = %v, want nil", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"":             "empty",
		"var/lib":      "not absolute",
		"/var/lib/":    "empty path segment",
		"/var//lib":    "empty path segment",
		"/var/./lib":   `"." segment`,
		"/var/../etc":  `".." segment`,
		"/srv/a**":     "** inside the segment",
		"/srv/[ab":     "not a valid pattern",
		"/":            "every change",
		"/**":          "every path",
		"/*":           "every path",
		"/**/*":        "every path",
		"/srv/a\nb":    "line break",
		"/srv/a\x00b":  "NUL",
		"/srv/trail\\": "not a valid pattern",
	} {
		err := definition.ValidateVolatile(bad)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateVolatile(%q) = %v, want an error saying %q", bad, err, want)
		}
	}
}

func TestParseVolatile(t *testing.T) {
	patterns := []string{"/var/lib/nginx", "/srv/*/cache"}
	got, err := definition.ParseVolatile(definition.FormatVolatile("appserver", patterns))
	if err != nil || strings.Join(got, " ") != strings.Join(patterns, " ") {
		t.Fatalf("ParseVolatile(FormatVolatile(%q)) = %q, %v", patterns, got, err)
	}
	got, err = definition.ParseVolatile([]byte("\n  # comment\n /a \n\n/b\n"))
	if err != nil || strings.Join(got, " ") != "/a /b" {
		t.Errorf("ParseVolatile with blanks and comments = %q, %v", got, err)
	}
	if _, err := definition.ParseVolatile([]byte("/a\nrelative\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ParseVolatile of a bad line = %v, want an error naming line 2", err)
	}
	if _, err := definition.ParseVolatile(make([]byte, 1<<20)); err == nil {
		t.Error("ParseVolatile accepted 1 MiB")
	}
}

// FuzzMatchVolatile checks the matcher against a plain recursive one built
// on path.Match, for every pattern ValidateVolatile accepts.
func FuzzMatchVolatile(f *testing.F) {
	f.Add("/var/lib/nginx/**", "/var/lib/nginx/body")
	f.Add("/**/*.pid", "/a/b.pid")
	f.Add("/a/**/b/**/c", "/a/x/b/c")
	f.Fuzz(func(t *testing.T, pattern, p string) {
		if definition.ValidateVolatile(pattern) != nil || !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
			return
		}
		want := slowMatch(strings.Split(pattern[1:], "/"), strings.Split(p[1:], "/"))
		if got := definition.MatchVolatile(pattern, p); got != want {
			t.Fatalf("MatchVolatile(%q, %q) = %v, the recursive matcher says %v", pattern, p, got, want)
		}
	})
}

func slowMatch(ps, ns []string) bool {
	if len(ps) == 0 {
		return len(ns) == 0
	}
	if ps[0] == "**" {
		for i := 0; i <= len(ns); i++ {
			if slowMatch(ps[1:], ns[i:]) {
				return true
			}
		}
		return false
	}
	if len(ns) == 0 {
		return false
	}
	ok, _ := path.Match(ps[0], ns[0])
	return ok && slowMatch(ps[1:], ns[1:])
}
