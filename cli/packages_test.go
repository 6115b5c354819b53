package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	kiln "github.com/kiln-project/kiln"
)

func TestParsePackages(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []kiln.Package
		errField string
	}{
		{name: "three columns", in: "# dpkg-query\nbash 5.2.15-2+b2 amd64\n\nlibssl3\t3.0.11-1~deb12u2\tamd64\n",
			want: []kiln.Package{{Name: "bash", Version: "5.2.15-2+b2", Architecture: "amd64"}, {Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64"}}},
		// PackageQuery's output: a source equal to the package and a
		// source version equal to the binary's are dropped, as a build's
		// manifest has them; a binNMU keeps its source version.
		{name: "with sources", in: "bash\t5.2.15-2+b2\tamd64\tbash\t5.2.15-2\nlibssl3\t3.0.11-1~deb12u2\tamd64\topenssl\t3.0.11-1~deb12u2\nopenssl\t3.0.11-1~deb12u2\tamd64\topenssl\t3.0.11-1~deb12u2\n",
			want: []kiln.Package{
				{Name: "bash", Version: "5.2.15-2+b2", Architecture: "amd64", Source: "bash", SourceVersion: "5.2.15-2"},
				{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Source: "openssl"},
				{Name: "openssl", Version: "3.0.11-1~deb12u2", Architecture: "amd64"},
			}},
		{name: "json", in: `[{"name":"libssl3","version":"3.0.11-1~deb12u2","architecture":"amd64","source":"openssl"}]`,
			want: []kiln.Package{{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Source: "openssl"}}},
		{name: "too many columns", in: "a 1 amd64 a 1 extra\n", errField: "FILE"},
		{name: "one column", in: "bash\n", errField: "FILE"},
		{name: "json without version", in: `[{"name":"bash"}]`, errField: "FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePackages("FILE", "pk.tsv", []byte(tc.in))
			if tc.errField != "" {
				if err == nil || kiln.ErrorField(err) != tc.errField || !strings.Contains(kiln.ErrorMessage(err), "pk.tsv") {
					t.Fatalf("error %v; want one on %s naming the file", err, tc.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

// Whatever the bytes, the parser returns packages with a name and a
// version, or an error naming the field it was given.
func FuzzParsePackages(f *testing.F) {
	f.Add([]byte("bash\t5.2.15-2+b2\tamd64\tbash\t5.2.15-2\n"))
	f.Add([]byte(`[{"name":"a","version":"1"}]`))
	f.Add([]byte("# c\n\na 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := parsePackages("FILE", "f", data)
		if err != nil {
			if kiln.ErrorField(err) != "FILE" && kiln.ErrorCode(err) != "" {
				t.Fatalf("error on field %q: %v", kiln.ErrorField(err), err)
			}
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("package without a name or version: %+v", p)
			}
		}
	})
}
