package definition

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAptSource(t *testing.T) {
	dir := writeEstate(t, map[string]string{"images.kiln.hcl": `
image "basic-linux" {
  debian { suite = "bookworm" }
}
image "appserver" {
  base     = image.basic-linux
  packages = ["kiln-demo"]
  apt_source "demo" {
    url   = "http://127.0.0.1:8123/"
    suite = "kiln"
    trusted = true
  }
  apt_source "vendor" {
    url        = "https://repo.example/debian"
    suite      = "bookworm"
    components = ["main", "contrib"]
    signed_by  = "keys/vendor.asc"
  }
}
`})
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "vendor.asc"), []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	est, diags := Load(dir, Options{})
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	srcs := est.Images["appserver"].AptSources
	if len(srcs) != 2 {
		t.Fatalf("apt sources: %+v", srcs)
	}
	if got := srcs[0].Line(); got != "deb [trusted=yes] http://127.0.0.1:8123 kiln main" {
		t.Errorf("demo line %q", got)
	}
	if got := srcs[1].Line(); got != "deb [signed-by=/etc/apt/keyrings/kiln-vendor.asc] https://repo.example/debian bookworm main contrib" ||
		srcs[1].SignedByPath != filepath.Join(dir, "keys", "vendor.asc") || srcs[1].ListPath() != "/etc/apt/sources.list.d/kiln-vendor.list" {
		t.Errorf("vendor: %q %+v", got, srcs[1])
	}
}

func TestAptSourceErrors(t *testing.T) {
	const base = "image \"basic-linux\" {\n  debian { suite = \"bookworm\" }\n}\n"
	for _, c := range []struct{ body, want string }{
		{`image "app" {
  base = image.basic-linux
  apt_source "demo" {
    url   = "http://127.0.0.1:8123"
    suite = "kiln"
  }
}`, `app.kiln.hcl:3:3: error: Apt source without a key`},
		{`image "app" {
  base = image.basic-linux
  apt_source "demo" {
    url   = "ftp://x"
    suite = "kiln"
    trusted = true
  }
}`, `app.kiln.hcl:4:13: error: Invalid apt source URL`},
		{`image "app" {
  base = image.basic-linux
  apt_source "demo" {
    url   = "http://x"
    suite = "kiln"
    trusted = true
    signed_by = "k.gpg"
  }
}`, `Both signed_by and trusted`},
		{`image "app" {
  base = image.basic-linux
  apt_source "demo" {
    url   = "http://x"
    suite = "kiln"
    signed_by = "k.txt"
  }
}`, `app.kiln.hcl:6:17: error: Invalid key file`},
		{`image "app" {
  debian { suite = "bookworm" }
  apt_source "demo" {
    url   = "http://x"
    suite = "kiln"
    trusted = true
  }
}`, `app.kiln.hcl:3:3: error: apt_source without a base`},
		{`image "app" {
  base = image.basic-linux
  apt_source "demo" {
    url = "http://x"
    suite = "kiln"
    trusted = true
  }
  apt_source "demo" {
    url = "http://y"
    suite = "kiln"
    trusted = true
  }
}`, `app.kiln.hcl:8:14: error: Duplicate apt source`},
	} {
		dir := writeEstate(t, map[string]string{"base.kiln.hcl": base, "app.kiln.hcl": c.body})
		_, diags := Load(dir, Options{})
		if got := FormatDiagnostics(diags); !diags.HasErrors() || !strings.Contains(got, c.want) {
			t.Errorf("%s\ngot  %s\nwant %s", c.body, got, c.want)
		}
	}
}
