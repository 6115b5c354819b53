package store

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// On SQLite a check-in reads the current instances packed into one column
// (currentPacked); it must read exactly what the column-by-column read
// gives, and fall back to it for a row that does not split.
func TestCheckinPackedRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite") // the packed read is SQLite's only
	ctx := context.Background()
	mkImage(t, e.DB, "appserver")
	must[*kiln.Version](t)(e.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}))
	if err := e.CreateInstance(ctx, &kiln.Instance{ID: "i-kiln", Version: kiln.VersionRef{Image: "appserver", Number: 1},
		Environment: "prod", Platform: "local", LaunchedByKiln: true, Address: "10.0.0.7", Labels: map[string]string{"role": "web", "x": "a\x1fb"},
		ConfigDigest: "sha256:" + strings.Repeat("0f", 32), ConfigSource: "rollout web"}); err != nil {
		t.Fatal(err)
	}
	if err := e.RegisterInstances(ctx, []*kiln.Instance{{ID: "i-unknown", Version: kiln.VersionRef{Image: "other", Number: 3}, Environment: "dev"}},
		kiln.RegisterOptions{AllowUnknown: true}); err != nil {
		t.Fatal(err)
	}
	c := checkin("i-seen", "web-1", "prod", "appserver", 1)
	c.Agent, c.Labels = "token:a", map[string]string{"k": "v"}
	must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{c}))
	// Free text may hold the separator: labels and config_source are
	// columns of their own.
	if _, err := e.raw.Exec(`UPDATE instances SET config_source = 'rollout' || char(31) || 'web' WHERE id = 'i-kiln'`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.raw.Exec(`UPDATE instances SET tainted = 1 WHERE id = 'i-seen'`); err != nil {
		t.Fatal(err)
	}
	ids := []string{"i-kiln", "i-unknown", "i-seen", "i-none"}
	read := func() (packed, columns map[string]*current, ok bool) {
		err := e.write(ctx, func(tx *tx) error {
			args := []any{"i-kiln", "i-unknown", "i-seen", "i-none"}
			packed = map[string]*current{}
			var err error
			if ok, err = currentPacked(ctx, tx, args, packed); err != nil {
				return err
			}
			columns = map[string]*current{}
			return eachRow(ctx, tx, `SELECT `+instanceColumns+`, unknown, agent_token FROM instances WHERE id IN (?, ?, ?, ?)`, args, func(rows *sql.Rows) error {
				c := &current{}
				var err error
				if c.inst, err = scanInstance(rows, &c.unknown, &c.agent); err != nil {
					return err
				}
				columns[c.inst.ID] = c
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return packed, columns, ok
	}
	packed, columns, ok := read()
	if !ok || len(columns) != 3 || !reflect.DeepEqual(packed, columns) {
		t.Fatalf("packed read (ok %v):\n%s\ncolumn read:\n%s", ok, dump(packed), dump(columns))
	}
	if !columns["i-seen"].inst.Tainted || !columns["i-kiln"].inst.LaunchedByKiln || !columns["i-unknown"].unknown || columns["i-seen"].agent != "token:a" {
		t.Fatalf("the fixture lost a field: %s", dump(columns))
	}
	// A name holding the separator: the packed read gives up, and
	// currentInstances reads the columns.
	if _, err := e.raw.Exec(`UPDATE instances SET name = 'odd' || char(31) || 'name' WHERE id = 'i-unknown'`); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := read(); ok {
		t.Fatal("packed read of a name holding U+001F did not give up")
	}
	err := e.write(ctx, func(tx *tx) error {
		cur, err := currentInstances(ctx, tx, ids)
		if err != nil {
			return err
		}
		if len(cur) != 3 || cur["i-unknown"].inst.Name != "odd\x1fname" {
			t.Errorf("currentInstances after the fallback: %s", dump(cur))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func dump(m map[string]*current) string {
	s := ""
	for id, c := range m {
		s += fmt.Sprintf("%s: %+v unknown=%v agent=%s\n", id, *c.inst, c.unknown, c.agent)
	}
	return s
}
