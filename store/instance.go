package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time checks.
var (
	_ kiln.Inventory     = (*DB)(nil)
	_ kiln.Fleet         = (*DB)(nil)
	_ kiln.AdvisoryStore = (*DB)(nil)
)

// instanceBatch is how many instances one INSERT carries (15 parameters
// each, well under both dialects' parameter limits).
const instanceBatch = 400

const instanceColumns = `id, name, image, number, environment, platform, state, address, labels, launched_at, last_seen_at, tainted, launched_by_kiln, config_digest, config_source`

func scanInstance(row interface{ Scan(...any) error }, extra ...any) (*kiln.Instance, error) {
	inst := &kiln.Instance{}
	var state, labels string
	dest := []any{&inst.ID, &inst.Name, &inst.Version.Image, &inst.Version.Number, &inst.Environment, &inst.Platform,
		&state, &inst.Address, &labels, dbTime{&inst.LaunchedAt}, dbTime{&inst.LastSeenAt}, &inst.Tainted, &inst.LaunchedByKiln,
		&inst.ConfigDigest, &inst.ConfigSource}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	inst.State = kiln.InstanceState(state)
	if labels != "" && labels != "{}" {
		if err := json.Unmarshal([]byte(labels), &inst.Labels); err != nil {
			return nil, fmt.Errorf("labels of instance %s: %w", inst.ID, err)
		}
	}
	return inst, nil
}

func labelsJSON(l map[string]string) string {
	if len(l) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(l) // a map of strings always encodes
	return string(b)
}

// newInstanceID returns "i-" and 16 random hex digits.
func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "i-" + hex.EncodeToString(b[:])
}

// CreateInstance records one instance of a version the registry knows.
func (db *DB) CreateInstance(ctx context.Context, inst *kiln.Instance) error {
	if inst == nil {
		return kiln.Errorf(kiln.EINVALID, "no instance given")
	}
	return db.RegisterInstances(ctx, []*kiln.Instance{inst}, kiln.RegisterOptions{})
}

// RegisterInstances records insts in one transaction, in batches of
// multi-row INSERTs. Empty ids are assigned, empty names become the id,
// empty states running, empty platforms "external", a zero launch time now.
// Errors name the instance by opts.Where[i] when given, else instances[i].
func (db *DB) RegisterInstances(ctx context.Context, insts []*kiln.Instance, opts kiln.RegisterOptions) error {
	where := func(i int) string {
		if i < len(opts.Where) && opts.Where[i] != "" {
			return opts.Where[i]
		}
		if len(insts) == 1 {
			return ""
		}
		return fmt.Sprintf("instances[%d]", i)
	}
	ids := make(map[string]int, len(insts))
	names := make(map[string]int, len(insts))
	for i, inst := range insts {
		if err := kiln.ValidateInstance(where(i), inst); err != nil {
			return err
		}
		if inst.ID == "" {
			inst.ID = newInstanceID()
		}
		if inst.Name == "" {
			inst.Name = inst.ID
		}
		if inst.State == "" {
			inst.State = kiln.InstanceRunning
		}
		if inst.Platform == "" {
			inst.Platform = "external"
		}
		if j, dup := ids[inst.ID]; dup {
			return kiln.FieldErrorf(kiln.ECONFLICT, where(i), "instance id %s is also given at %s; each instance once", inst.ID, where(j))
		}
		if j, dup := names[inst.Name]; dup {
			return kiln.FieldErrorf(kiln.ECONFLICT, where(i), "instance name %s is also given at %s; names are unique", inst.Name, where(j))
		}
		ids[inst.ID], names[inst.Name] = i, i
	}
	return db.write(ctx, func(tx *tx) error {
		known := map[kiln.VersionRef]bool{}
		for start := 0; start < len(insts); start += instanceBatch {
			batch := insts[start:min(start+instanceBatch, len(insts))]
			if err := checkTaken(ctx, tx, batch, func(i int) string { return where(start + i) }); err != nil {
				return err
			}
			args := make([]any, 0, 17*len(batch))
			var q strings.Builder
			q.WriteString(`INSERT INTO instances (id, name, image, number, environment, platform, state, address, labels, launched_at, last_seen_at, tainted, unknown, launched_by_kiln, config_digest, config_source, agent_token) VALUES `)
			for i, inst := range batch {
				ok, err := versionKnown(ctx, tx, known, inst.Version)
				if err != nil {
					return err
				}
				if !ok && !opts.AllowUnknown {
					return kiln.FieldErrorf(kiln.ENOTFOUND, where(start+i), "instance %s runs %s, which the registry does not know: %s; register the version first, fix the image or version, or pass --allow-unknown to keep it flagged as unknown",
						inst.Name, inst.Version, unknownReason(ctx, tx, inst.Version))
				}
				if inst.LaunchedAt.IsZero() {
					inst.LaunchedAt = tx.now
				}
				inst.LaunchedAt = inst.LaunchedAt.UTC().Truncate(time.Microsecond)
				if i > 0 {
					q.WriteString(", ")
				}
				agent, err := launchAgent(ctx, tx, inst)
				if err != nil {
					return err
				}
				q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
				args = append(args, inst.ID, inst.Name, inst.Version.Image, inst.Version.Number, inst.Environment, inst.Platform,
					string(inst.State), inst.Address, labelsJSON(inst.Labels), tx.timeArg(inst.LaunchedAt), tx.timeArg(inst.LastSeenAt),
					inst.Tainted, !ok, inst.LaunchedByKiln, inst.ConfigDigest, inst.ConfigSource, agent)
			}
			if _, err := tx.exec(ctx, q.String(), args...); err != nil {
				if isUnique(err) {
					return kiln.Errorf(kiln.ECONFLICT, "an instance id or name was taken by another writer meanwhile; retry")
				}
				return fmt.Errorf("insert instances: %w", err)
			}
		}
		// One audit entry per call: an import of thousands of servers is
		// one decision; the entry names it by its first instance.
		target := "instance " + insts[0].ID
		detail := fmt.Sprintf("%s on %s", insts[0].Name, insts[0].Version)
		if len(insts) > 1 {
			target = fmt.Sprintf("instances %s…", insts[0].ID)
			detail = fmt.Sprintf("%d instances registered", len(insts))
		}
		return audit(ctx, tx, "instance.register", target, detail)
	})
}

// checkTaken refuses instances whose id or name is recorded already.
func checkTaken(ctx context.Context, tx *tx, batch []*kiln.Instance, where func(int) string) error {
	args := make([]any, 0, 2*len(batch))
	for _, inst := range batch {
		args = append(args, inst.ID)
	}
	for _, inst := range batch {
		args = append(args, inst.Name)
	}
	rows, err := tx.query(ctx, `SELECT id, name FROM instances WHERE id IN (`+placeholders(len(batch))+`) OR name IN (`+placeholders(len(batch))+`) LIMIT 1`, args...)
	if err != nil {
		return fmt.Errorf("check instance ids: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return err
		}
		for i, inst := range batch {
			if inst.ID == id {
				return kiln.FieldErrorf(kiln.ECONFLICT, where(i), "instance %s is registered already; deregister it first or use another id", id)
			}
			if inst.Name == name {
				return kiln.FieldErrorf(kiln.ECONFLICT, where(i), "instance name %s is taken by instance %s; choose another name", name, id)
			}
		}
	}
	return rows.Err()
}

// versionKnown reports whether the registry has ref, caching answers for
// the transaction.
func versionKnown(ctx context.Context, tx *tx, cache map[kiln.VersionRef]bool, ref kiln.VersionRef) (bool, error) {
	if ok, seen := cache[ref]; seen {
		return ok, nil
	}
	if _, ok := tx.db.knownVersions.Load(ref); ok {
		cache[ref] = true
		return true, nil
	}
	var n int
	err := tx.queryRow(ctx, `SELECT COUNT(*) FROM versions v JOIN images i ON i.id = v.image_id WHERE i.name = ? AND v.number = ?`,
		ref.Image, ref.Number).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("find version %s: %w", ref, err)
	}
	cache[ref] = n > 0
	if n > 0 {
		tx.db.knownVersions.Store(ref, struct{}{})
	}
	return n > 0, nil
}

// unknownReason says whether the image or only the version is missing.
func unknownReason(ctx context.Context, tx *tx, ref kiln.VersionRef) string {
	var latest int
	err := tx.queryRow(ctx, `SELECT latest_number FROM images WHERE name = ?`, ref.Image).Scan(&latest)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "there is no image " + ref.Image
	case err != nil:
		return "it could not be looked up"
	case latest == 0:
		return "image " + ref.Image + " has no versions yet"
	}
	return fmt.Sprintf("%s has versions 1 to %d", ref.Image, latest)
}

// FindInstance finds an instance by id, or else by name.
func (db *DB) FindInstance(ctx context.Context, idOrName string) (*kiln.Instance, error) {
	var inst *kiln.Instance
	err := db.read(ctx, func(tx *tx) error {
		var err error
		inst, err = findInstance(ctx, tx, idOrName)
		return err
	})
	return inst, err
}

func findInstance(ctx context.Context, tx *tx, idOrName string) (*kiln.Instance, error) {
	inst, err := scanInstance(tx.queryRow(ctx, `SELECT `+instanceColumns+` FROM instances WHERE id = ?`, idOrName))
	if errors.Is(err, sql.ErrNoRows) {
		inst, err = scanInstance(tx.queryRow(ctx, `SELECT `+instanceColumns+` FROM instances WHERE name = ?`, idOrName))
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "no instance has id or name %q; see `kiln instance list`", idOrName)
	}
	if err != nil {
		return nil, fmt.Errorf("find instance %s: %w", idOrName, err)
	}
	return inst, nil
}

// ListInstances returns matching instances sorted by image, version and
// name, and the number of all matches.
func (db *DB) ListInstances(ctx context.Context, f kiln.InstanceFilter) ([]*kiln.Instance, int, error) {
	if err := checkPage(f.Limit, f.Offset); err != nil {
		return nil, 0, err
	}
	var conds []string
	var args []any
	if f.Image != "" {
		conds, args = append(conds, "image = ?"), append(args, f.Image)
	}
	if f.Version != nil {
		conds, args = append(conds, "image = ? AND number = ?"), append(args, f.Version.Image, f.Version.Number)
	}
	if f.Environment != "" {
		conds, args = append(conds, "environment = ?"), append(args, f.Environment)
	}
	if f.Platform != "" {
		conds, args = append(conds, "platform = ?"), append(args, f.Platform)
	}
	if len(f.States) > 0 {
		for _, s := range f.States {
			if !s.Valid() {
				return nil, 0, kiln.FieldErrorf(kiln.EINVALID, "state", "unknown instance state %q", s)
			}
			args = append(args, string(s))
		}
		conds = append(conds, "state IN ("+placeholders(len(f.States))+")")
	} else {
		conds = append(conds, "state <> 'destroyed'")
	}
	q := `SELECT ` + instanceColumns + `, COUNT(*) OVER () FROM instances WHERE ` + strings.Join(conds, " AND ") +
		` ORDER BY image, number, name`
	q, qargs := db.paged(q, args, f.Limit, f.Offset)
	var out []*kiln.Instance
	total := 0
	err := db.read(ctx, func(tx *tx) error {
		out, total = []*kiln.Instance{}, 0
		if err := eachRow(ctx, tx, q, qargs, func(rows *sql.Rows) error {
			inst, err := scanInstance(rows, &total)
			if err != nil {
				return err
			}
			out = append(out, inst)
			return nil
		}); err != nil {
			return fmt.Errorf("list instances: %w", err)
		}
		if pastEnd(len(out), f.Offset) {
			return tx.queryRow(ctx, `SELECT COUNT(*) FROM instances WHERE `+strings.Join(conds, " AND "), args...).Scan(&total)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// SetInstanceState records a state change; the reason goes to the log.
func (db *DB) SetInstanceState(ctx context.Context, id string, state kiln.InstanceState, reason string) (*kiln.Instance, error) {
	if !state.Valid() {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "state", "unknown instance state %q", state)
	}
	var inst *kiln.Instance
	err := db.write(ctx, func(tx *tx) error {
		var err error
		inst, err = scanInstance(tx.queryRow(ctx, `UPDATE instances SET state = ? WHERE id = ? RETURNING `+instanceColumns, string(state), id))
		if errors.Is(err, sql.ErrNoRows) {
			return kiln.Errorf(kiln.ENOTFOUND, "no instance has id %q; see `kiln instance list`", id)
		}
		if err != nil {
			return err
		}
		return audit(ctx, tx, "instance.state", "instance "+id, strings.TrimSpace(string(state)+" "+reason))
	})
	if err != nil {
		return nil, err
	}
	db.logger.InfoContext(ctx, "instance state changed", "instance", id, "state", state, "reason", reason, "actor", kiln.ActorFrom(ctx))
	return inst, nil
}

// DeleteInstance removes an instance record, by id or name.
func (db *DB) DeleteInstance(ctx context.Context, idOrName string) error {
	return db.write(ctx, func(tx *tx) error {
		inst, err := findInstance(ctx, tx, idOrName)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `DELETE FROM instances WHERE id = ?`, inst.ID); err != nil {
			return fmt.Errorf("delete instance %s: %w", inst.ID, err)
		}
		return audit(ctx, tx, "instance.deregister", "instance "+inst.ID, inst.Name+" on "+inst.Version.String())
	})
}

// MarkLost marks instances not launched by kiln that have not been seen
// since cutoff as lost.
func (db *DB) MarkLost(ctx context.Context, cutoff time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `UPDATE instances SET state = 'lost'
			WHERE platform <> 'local' AND state NOT IN ('lost', 'destroyed') AND COALESCE(last_seen_at, launched_at) < ?`,
			tx.timeArg(cutoff))
		if err != nil {
			return fmt.Errorf("mark lost instances: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return audit(ctx, tx, "instance.mark-lost", "instances", fmt.Sprintf("%d not seen since %s", n, cutoff.UTC().Format(time.RFC3339)))
	})
	return int(n), err
}

// launchAgent is the agent token ("token:NAME", as check-ins name it) a
// kiln-launched instance is bound to: the agent token, not revoked, whose
// secret hashes to what the instance was given at launch. Empty for none
// (no token given, or one kiln does not know): then no agent may check
// the instance in.
func launchAgent(ctx context.Context, tx *tx, inst *kiln.Instance) (string, error) {
	if !inst.LaunchedByKiln || inst.AgentTokenSHA256 == "" {
		return "", nil
	}
	var name string
	err := tx.queryRow(ctx, `SELECT name FROM tokens WHERE secret_hash = ? AND role = ? AND revoked_at IS NULL`,
		inst.AgentTokenSHA256, string(kiln.RoleAgent)).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find the agent token of instance %s: %w", inst.ID, err)
	}
	return "token:" + name, nil
}
