package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
)

// estatesStub is a kiln.EstateStore of registered estates.
type estatesStub struct{ list []*kiln.Estate }

func (s *estatesStub) AddEstate(context.Context, *kiln.Estate) error { return nil }
func (s *estatesStub) ListEstates(context.Context) ([]*kiln.Estate, error) {
	return s.list, nil
}
func (s *estatesStub) RemoveEstate(context.Context, string) error { return nil }
func (s *estatesStub) FindEstate(_ context.Context, name string) (*kiln.Estate, error) {
	for _, e := range s.list {
		if e.Name == name {
			return e, nil
		}
	}
	return nil, kiln.Errorf(kiln.ENOTFOUND, "no estate %s", name)
}

// writeEstate writes an estate defining image with a prod config block
// whose SITE setting is site.
func writeEstate(t *testing.T, image, site string) string {
	t.Helper()
	dir := t.TempDir()
	hcl := `image "` + image + `" {
  debian {
    suite  = "bookworm"
    mirror = "http://deb.debian.org/debian"
  }
}
pipeline "p" {
  images       = ["` + image + `"]
  environments = ["prod"]
  environment "prod" {
    config {
      settings = { SITE = "` + site + `" }
    }
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "estate.kiln.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Without --estate or KILN_ESTATE, a service's configuration comes from
// the registered estate that defines its image; several such estates are
// refused by name; --estate may name a registered estate.
func TestServiceConfigFromRegisteredEstates(t *testing.T) {
	ctx := context.Background()
	web, db := writeEstate(t, "appserver", "web"), writeEstate(t, "dbserver", "db")
	estates := &estatesStub{list: []*kiln.Estate{{Name: "web", Dir: web}, {Name: "db", Dir: db}}}
	svc := &kiln.Service{Name: "front", Image: "appserver", Environment: "prod"}

	cfg, err := ServiceConfig("", estates)(ctx, svc)
	if err != nil || cfg == nil || cfg.Settings["SITE"] != "web" || !strings.Contains(cfg.Source, web) {
		t.Fatalf("registered estates: %+v %v; want web's prod configuration", cfg, err)
	}
	// An image no registered estate defines: no configuration.
	if cfg, err := ServiceConfig("", estates)(ctx, &kiln.Service{Name: "x", Image: "other", Environment: "prod"}); err != nil || cfg != nil {
		t.Fatalf("unknown image: %+v %v; want none", cfg, err)
	}
	// --estate by name picks it whatever else is registered.
	if cfg, err := ServiceConfig("db", estates)(ctx, &kiln.Service{Name: "d", Image: "dbserver", Environment: "prod"}); err != nil || cfg.Settings["SITE"] != "db" {
		t.Fatalf("--estate db: %+v %v", cfg, err)
	}
	// Two registered estates define appserver: refused, naming both.
	estates.list = append(estates.list, &kiln.Estate{Name: "web2", Dir: writeEstate(t, "appserver", "web2")})
	_, err = ServiceConfig("", estates)(ctx, svc)
	if kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "web (") || !strings.Contains(err.Error(), "web2 (") || !strings.Contains(err.Error(), "--estate") {
		t.Fatalf("two estates define appserver: %v; want EINVALID naming both and --estate", err)
	}
	// --estate DIR settles it.
	if cfg, err := ServiceConfig(web, estates)(ctx, svc); err != nil || cfg.Settings["SITE"] != "web" {
		t.Fatalf("--estate %s: %+v %v", web, cfg, err)
	}
	// Neither: no configuration at all.
	if ServiceConfig("", nil) != nil {
		t.Fatal("no estate and no store: want a nil Config")
	}
}
