package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kiln-project/kiln"
)

// Check-ins are written set-wise: one transaction reads every instance of
// the batch in one query, decides in Go what each check-in changes, and
// writes with two statements whatever the batch size: a multi-row upsert
// for the new instances and those whose version, environment, address,
// labels or state change (the counting triggers fire for those only), and
// one UPDATE of last_seen_at for the rest — the common case, a server
// saying again what it said five minutes ago, which touches no index and
// no count.

// checkinChunk bounds the rows of one statement (14 parameters per upsert
// row, under both dialects' parameter limits).
const checkinChunk = 400

// CheckIn upserts the instances of cs by id, in one transaction. A new
// instance is named after its hostname when that name is free, else after
// its id; an existing one keeps its name and launch time. Any state but
// degraded becomes running, since the server just spoke. The same id may
// come more than once; later check-ins see the earlier ones.
func (db *DB) CheckIn(ctx context.Context, cs []*kiln.Checkin) ([]*kiln.CheckinResult, error) {
	byArtifact := false
	for i, c := range cs {
		byArtifact = byArtifact || c.ByArtifact()
		err := c.Validate()
		if err == nil && strings.ContainsFunc(c.Environment, unicode.IsControl) {
			// kiln.Checkin.Validate does not look at it; Usage packs
			// environments between control characters.
			err = kiln.FieldErrorf(kiln.EINVALID, "environment", "environment %q contains a control character", c.Environment)
		}
		if err != nil {
			if len(cs) > 1 {
				return nil, fmt.Errorf("check-in %d: %w", i, err)
			}
			return nil, err
		}
	}
	if byArtifact {
		return db.checkInByArtifact(ctx, cs)
	}
	// Rounds of distinct ids: the n-th check-in of an id goes in round n.
	var rounds [][]int
	seen := make(map[string]int, len(cs))
	for i, c := range cs {
		r := seen[c.InstanceID]
		seen[c.InstanceID] = r + 1
		if r == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[r] = append(rounds[r], i)
	}
	var out []*kiln.CheckinResult
	write := func(tx *tx) error {
		batchCounts := tx.db.dialect == dialectPostgres
		if batchCounts {
			// A check-in repeats every few minutes: losing the last
			// fraction of a second of them in a server crash costs nothing
			// (never a corrupt database), and not waiting for the WAL
			// flush lets concurrent batches share it. The counting trigger
			// leaves this transaction to applyCounts (0006_fleet_indexes).
			// Every statement of a check-in finds its rows by key: without
			// sequential scans, the plan PostgreSQL keeps for each prepared
			// statement (planned once per connection, maybe while the
			// table was nearly empty) is an index scan whatever the table
			// grows to, instead of a scan comparing every row with every id
			// of the batch. All settings end with the transaction;
			// docs/fleet.md.
			if _, err := tx.exec(ctx, `SELECT set_config('synchronous_commit', 'off', true), set_config('kiln.counts_by_batch', 'on', true), set_config('enable_seqscan', 'off', true)`); err != nil {
				return fmt.Errorf("check in: %w", err)
			}
		}
		out = make([]*kiln.CheckinResult, len(cs))
		known := map[kiln.VersionRef]bool{}
		deltas := countDeltas{}
		for _, round := range rounds {
			batch := make([]*kiln.Checkin, len(round))
			for j, i := range round {
				batch[j] = cs[i]
			}
			for start := 0; start < len(batch); start += checkinChunk {
				part := batch[start:min(start+checkinChunk, len(batch))]
				res, err := checkInRound(ctx, tx, known, deltas, part)
				if err != nil {
					return err
				}
				for j, r := range res {
					out[round[start+j]] = r
				}
			}
		}
		if batchCounts {
			return applyCounts(ctx, tx, deltas)
		}
		return nil
	}
	// Batches lock their instances in id order, so they cannot deadlock
	// each other; another writer (mark-lost, a deregistration) still may,
	// and PostgreSQL then aborts one of the two: the batch runs again.
	var err error
	for attempt := 0; ; attempt++ {
		err = db.write(ctx, write)
		if !isDeadlock(err) || attempt == 4 || ctx.Err() != nil {
			break
		}
		db.logger.DebugContext(ctx, "check-in batch deadlocked; retrying", "attempt", attempt+1)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// isDeadlock reports whether PostgreSQL aborted the transaction to break a
// deadlock (SQLSTATE 40P01).
func isDeadlock(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40P01"
}

// CheckinWriters says how many check-in transactions fleet.Batcher should
// run at once: one on SQLite, which writes one transaction at a time;
// four on PostgreSQL, where batches of different instances proceed side by
// side (they meet only on the fleet_counts rows, at the end).
func (db *DB) CheckinWriters() int {
	if db.dialect == dialectPostgres {
		return 4
	}
	return 1
}

// current is an instance as stored, with what a check-in compares (its
// labels parsed, as scanInstance returns them).
type current struct {
	inst    *kiln.Instance
	unknown bool
	agent   string // the agent token the instance is bound to, if any
}

// refusedCheckin says why c may not check old in: kiln launched it, or it
// is bound to another agent token. Nil when it may.
func refusedCheckin(old *current, c *kiln.Checkin) error {
	switch {
	case old.inst.LaunchedByKiln && (c.Agent == "" || c.Agent != old.agent):
		return kiln.FieldErrorf(kiln.EFORBIDDEN, "instance_id", "instance %s was launched by kiln (platform %s), which tracks it itself; only the agent token it was given at launch may check it in",
			old.inst.ID, old.inst.Platform)
	case old.inst.LaunchedByKiln:
		if ref, _ := c.Version(); ref != old.inst.Version {
			return kiln.FieldErrorf(kiln.ECONFLICT, "release", "instance %s was launched by kiln with %s, but its agent reports %s; replace the instance",
				old.inst.ID, old.inst.Version, ref)
		}
	case c.Agent != "" && old.agent != "" && c.Agent != old.agent:
		return kiln.FieldErrorf(kiln.EFORBIDDEN, "instance_id", "instance %s is bound to the agent token that first checked it in, and %s is another; "+
			"if the server now uses this token, an operator deregisters the instance first (`kiln instance deregister %s`)", old.inst.ID, c.Agent, old.inst.ID)
	}
	return nil
}

// checkInRound records check-ins of distinct instances.
func checkInRound(ctx context.Context, tx *tx, known map[kiln.VersionRef]bool, deltas countDeltas, cs []*kiln.Checkin) ([]*kiln.CheckinResult, error) {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.InstanceID
	}
	cur, err := currentInstances(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	// Names for new instances: the hostname unless another instance (or
	// an earlier new one of this batch) has it.
	var hostnames []string
	for _, c := range cs {
		if cur[c.InstanceID] == nil && c.Hostname != "" {
			hostnames = append(hostnames, c.Hostname)
		}
	}
	taken, err := takenNames(ctx, tx, hostnames)
	if err != nil {
		return nil, err
	}
	now := tx.now
	out := make([]*kiln.CheckinResult, len(cs))
	var upserts, inserts []*kiln.Instance
	var upsertUnknown, insertUnknown []bool
	var upsertAgent, insertAgent []string
	var insertAt []int
	var touched []string
	for i, c := range cs {
		ref, _ := c.Version() // validated
		ok, err := versionKnown(ctx, tx, known, ref)
		if err != nil {
			return nil, err
		}
		res := &kiln.CheckinResult{Unknown: !ok}
		out[i] = res
		old := cur[c.InstanceID]
		if old != nil {
			if err := refusedCheckin(old, c); err != nil {
				out[i] = &kiln.CheckinResult{Refused: err}
				continue
			}
		}
		if old == nil {
			res.Created = true
			name := c.InstanceID
			if c.Hostname != "" && !taken[c.Hostname] {
				name = c.Hostname
			}
			taken[name] = true
			res.Instance = &kiln.Instance{ID: c.InstanceID, Name: name, Version: ref, Environment: c.Environment,
				Platform: "external", State: kiln.InstanceRunning, Address: c.Address, Labels: c.Labels,
				LaunchedAt: now, LastSeenAt: now}
			if len(c.Labels) == 0 {
				res.Instance.Labels = nil
			}
			inserts, insertUnknown = append(inserts, res.Instance), append(insertUnknown, !ok)
			insertAgent = append(insertAgent, c.Agent)
			insertAt = append(insertAt, i)
			continue
		}
		inst := *old.inst
		// An instance no agent token has checked in yet (registered by
		// hand, or before tokens were bound) is bound to this one.
		changed := inst.Version != ref || old.unknown != !ok || (old.agent == "" && c.Agent != "")
		inst.Version = ref
		// What kiln launched stays as kiln recorded it: a check-in only
		// says the instance is alive.
		if inst.LaunchedByKiln {
			c = &kiln.Checkin{InstanceID: c.InstanceID, Release: c.Release, Agent: c.Agent}
		}
		if c.Environment != "" && c.Environment != inst.Environment {
			inst.Environment, changed = c.Environment, true
		}
		if c.Address != "" && c.Address != inst.Address {
			inst.Address, changed = c.Address, true
		}
		if c.Labels != nil && !maps.Equal(old.inst.Labels, c.Labels) {
			changed = true
			inst.Labels = c.Labels
			if len(c.Labels) == 0 {
				inst.Labels = nil
			}
		}
		if !inst.LaunchedByKiln && inst.State != kiln.InstanceDegraded && inst.State != kiln.InstanceRunning {
			inst.State, changed = kiln.InstanceRunning, true
		}
		inst.LastSeenAt = now
		res.Instance = &inst
		if changed {
			agent := old.agent
			if agent == "" {
				agent = c.Agent
			}
			upserts, upsertUnknown = append(upserts, res.Instance), append(upsertUnknown, !ok)
			upsertAgent = append(upsertAgent, agent)
			deltas.add(old.inst, -1)
			deltas.add(res.Instance, 1)
		} else {
			touched = append(touched, c.InstanceID)
		}
	}
	if err := upsertInstances(ctx, tx, upserts, upsertUnknown, upsertAgent); err != nil {
		return nil, err
	}
	// New instances another transaction created meanwhile (PostgreSQL,
	// several servers or batches at once) are left alone by the insert;
	// they are checked in again, now as the existing instances they are.
	// Inserted in id order, so that two batches creating the same
	// instances wait for each other rather than deadlock.
	order := make([]int, len(inserts))
	for j := range order {
		order[j] = j
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(inserts[a].ID, inserts[b].ID) })
	sorted, sortedUnknown, sortedAt, sortedAgent := make([]*kiln.Instance, len(order)), make([]bool, len(order)), make([]int, len(order)), make([]string, len(order))
	for j, k := range order {
		sorted[j], sortedUnknown[j], sortedAt[j], sortedAgent[j] = inserts[k], insertUnknown[k], insertAt[k], insertAgent[k]
	}
	inserts, insertUnknown, insertAt, insertAgent = sorted, sortedUnknown, sortedAt, sortedAgent
	created, err := insertInstances(ctx, tx, inserts, insertUnknown, insertAgent)
	if err != nil {
		return nil, err
	}
	var again []*kiln.Checkin
	var againAt []int
	var newIDs []string
	for j, inst := range inserts {
		if created[inst.ID] {
			deltas.add(inst, 1)
			newIDs = append(newIDs, inst.ID)
			continue
		}
		again, againAt = append(again, cs[insertAt[j]]), append(againAt, insertAt[j])
	}
	// Routine check-ins are the fleet's heartbeat and are not audited; an
	// instance the inventory learns of by checking in is, once per batch.
	if len(newIDs) > 0 {
		shown := newIDs[:min(len(newIDs), 5)]
		detail := fmt.Sprintf("%d new instance(s) registered by check-in: %s", len(newIDs), strings.Join(shown, ", "))
		if len(newIDs) > len(shown) {
			detail += ", …"
		}
		if err := audit(ctx, tx, "instance.checkin", "instance "+newIDs[0], detail); err != nil {
			return nil, err
		}
	}
	if len(again) > 0 {
		res, err := checkInRound(ctx, tx, known, deltas, again)
		if err != nil {
			return nil, err
		}
		for j, r := range res {
			out[againAt[j]] = r
		}
	}
	if err := touchInstances(ctx, tx, touched); err != nil {
		return nil, err
	}
	return out, nil
}

// currentInstances reads the instances with the given ids; on PostgreSQL
// it locks them (in id order, so concurrent batches cannot deadlock each
// other) so that what this transaction decides from them still holds when
// it writes. SQLite write transactions are serial already.
func currentInstances(ctx context.Context, tx *tx, ids []string) (map[string]*current, error) {
	out := make(map[string]*current, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	q := `SELECT ` + instanceColumns + `, unknown, agent_token FROM instances WHERE id `
	var args []any
	if tx.db.dialect == dialectPostgres {
		q += `= ANY(?) ORDER BY id FOR UPDATE`
		args = []any{ids}
	} else {
		args = make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		if ok, err := currentPacked(ctx, tx, args, out); err != nil || ok {
			return out, err
		}
		clear(out)
		q += `IN (` + placeholders(len(ids)) + `)`
	}
	err := eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
		c := &current{}
		var err error
		if c.inst, err = scanInstance(rows, &c.unknown, &c.agent); err != nil {
			return err
		}
		out[c.inst.ID] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check in: read instances: %w", err)
	}
	return out, nil
}

// packedColumns are the columns currentInstances reads on SQLite, joined
// by U+001F into one text value: modernc's SQLite costs about half a
// microsecond per column read through database/sql, and a check-in reads
// 17 of them per instance. Labels and config_source, free text, come as
// columns of their own; the others cannot hold U+001F (ids, names,
// environments and addresses refuse control characters), and a row that
// does not split into exactly these fields is read again column by column.
const packedColumns = `id || char(31) || name || char(31) || image || char(31) || number || char(31) || environment || char(31) ||
	platform || char(31) || state || char(31) || address || char(31) || launched_at || char(31) || ifnull(last_seen_at, '') || char(31) ||
	tainted || char(31) || launched_by_kiln || char(31) || config_digest || char(31) || unknown || char(31) || agent_token`

// packedFields is how many fields packedColumns joins.
const packedFields = 15

// currentPacked is currentInstances on SQLite through packedColumns. It
// returns false, having filled out partly, when a row does not split as
// expected; the caller then reads the columns.
func currentPacked(ctx context.Context, tx *tx, ids []any, out map[string]*current) (bool, error) {
	ok := true
	var f [packedFields]string
	err := eachRow(ctx, tx, `SELECT `+packedColumns+`, labels, config_source FROM instances WHERE id IN (`+placeholders(len(ids))+`)`, ids, func(rows *sql.Rows) error {
		var packed, labels, source string
		if err := rows.Scan(&packed, &labels, &source); err != nil {
			return err
		}
		if !ok || !splitPacked(packed, f[:]) {
			ok = false
			return nil
		}
		c := &current{inst: &kiln.Instance{ID: f[0], Name: f[1], Version: kiln.VersionRef{Image: f[2]}, Environment: f[4], Platform: f[5],
			State: kiln.InstanceState(f[6]), Address: f[7], ConfigDigest: f[12], ConfigSource: source}, agent: f[14]}
		n, nerr := strconv.Atoi(f[3])
		if nerr != nil {
			// Not the number SQLite would print: read the columns.
			ok = false
			return nil //nolint:nilerr // the caller reads the columns instead
		}
		c.inst.Version.Number = n
		bools := [3]*bool{&c.inst.Tainted, &c.inst.LaunchedByKiln, &c.unknown}
		for i, v := range [3]string{f[10], f[11], f[13]} {
			switch v {
			case "0":
			case "1":
				*bools[i] = true
			default:
				ok = false
			}
		}
		if !ok {
			return nil
		}
		if err := (dbTime{&c.inst.LaunchedAt}).parse(f[8]); err != nil {
			return fmt.Errorf("launch time of instance %s: %w", f[0], err)
		}
		if f[9] != "" {
			if err := (dbTime{&c.inst.LastSeenAt}).parse(f[9]); err != nil {
				return fmt.Errorf("last-seen time of instance %s: %w", f[0], err)
			}
		}
		if labels != "" && labels != "{}" {
			if err := json.Unmarshal([]byte(labels), &c.inst.Labels); err != nil {
				return fmt.Errorf("labels of instance %s: %w", f[0], err)
			}
		}
		out[c.inst.ID] = c
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("check in: read instances: %w", err)
	}
	return ok, nil
}

// splitPacked splits s at U+001F into exactly len(f) fields.
func splitPacked(s string, f []string) bool {
	for i := range f[:len(f)-1] {
		var ok bool
		if f[i], s, ok = strings.Cut(s, "\x1f"); !ok {
			return false
		}
	}
	f[len(f)-1] = s
	return !strings.Contains(s, "\x1f")
}

// takenNames returns which of names instances have.
func takenNames(ctx context.Context, tx *tx, names []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(names) == 0 {
		return out, nil
	}
	q := `SELECT name FROM instances WHERE name `
	var args []any
	if tx.db.dialect == dialectPostgres {
		q += `= ANY(?)`
		args = []any{names}
	} else {
		q += `IN (` + placeholders(len(names)) + `)`
		args = make([]any, len(names))
		for i, n := range names {
			args[i] = n
		}
	}
	err := eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		out[n] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check in: read names: %w", err)
	}
	return out, nil
}

// insertInstances inserts new instances, leaving alone those whose id
// exists by now, and returns the ids it inserted.
func insertInstances(ctx context.Context, tx *tx, insts []*kiln.Instance, unknown []bool, agents []string) (map[string]bool, error) {
	created := make(map[string]bool, len(insts))
	if len(insts) == 0 {
		return created, nil
	}
	q, args := instanceValues(tx, insts, unknown, agents)
	err := eachRow(ctx, tx, q+` ON CONFLICT (id) DO NOTHING RETURNING id`, args, func(rows *sql.Rows) error {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		created[id] = true
		return nil
	})
	if err != nil {
		return nil, instanceWriteError(err, insts)
	}
	return created, nil
}

// instanceWriteError says which name was taken when a write of insts
// broke the unique names.
func instanceWriteError(err error, insts []*kiln.Instance) error {
	if !isUnique(err) {
		return fmt.Errorf("check in: write instances: %w", err)
	}
	if len(insts) == 1 {
		return kiln.FieldErrorf(kiln.ECONFLICT, "instance_id", "instance %s cannot be named %s: another instance has that name; deregister it or give a different instance id",
			insts[0].ID, insts[0].Name)
	}
	return kiln.Errorf(kiln.ECONFLICT, "a new instance's name is taken by another instance; retry the check-ins one at a time")
}

// instanceValues is an INSERT of insts with every column a check-in
// writes, and the agent token each is bound to. On PostgreSQL the rows go
// as one array per column through unnest, so the statement's text is the
// same whatever the number of rows: it is parsed and planned once per
// connection (pgx caches it prepared) instead of once per batch, as a
// multi-row VALUES of 14 parameters per row was. SQLite has no arrays;
// its statements are parsed in process.
func instanceValues(tx *tx, insts []*kiln.Instance, unknown []bool, agents []string) (string, []any) {
	const insert = `INSERT INTO instances (id, name, image, number, environment, platform, state, address, labels, launched_at, last_seen_at, tainted, unknown, agent_token) `
	if tx.db.dialect == dialectPostgres {
		n := len(insts)
		ids, names, images, envs, platforms, states, addrs, labels, agentsCol :=
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		numbers, launched, seen, tainted := make([]int64, n), make([]time.Time, n), make([]time.Time, n), make([]bool, n)
		for i, inst := range insts {
			ids[i], names[i], images[i], numbers[i], envs[i], platforms[i] = inst.ID, inst.Name, inst.Version.Image, int64(inst.Version.Number), inst.Environment, inst.Platform
			states[i], addrs[i], labels[i], tainted[i], agentsCol[i] = string(inst.State), inst.Address, labelsJSON(inst.Labels), inst.Tainted, agents[i]
			// Both are set on every instance a check-in writes (launched_at
			// is NOT NULL; last_seen_at is the check-in's time).
			launched[i], seen[i] = inst.LaunchedAt.UTC().Truncate(time.Microsecond), inst.LastSeenAt.UTC().Truncate(time.Microsecond)
		}
		return insert + `SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::int[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[], ?::timestamptz[], ?::boolean[], ?::boolean[], ?::text[])`,
			[]any{ids, names, images, numbers, envs, platforms, states, addrs, labels, launched, seen, tainted, unknown, agentsCol}
	}
	var q strings.Builder
	q.WriteString(insert + `VALUES `)
	args := make([]any, 0, 14*len(insts))
	for i, inst := range insts {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, inst.ID, inst.Name, inst.Version.Image, inst.Version.Number, inst.Environment, inst.Platform,
			string(inst.State), inst.Address, labelsJSON(inst.Labels), tx.timeArg(inst.LaunchedAt), tx.timeArg(inst.LastSeenAt),
			inst.Tainted, unknown[i], agents[i])
	}
	return q.String(), args
}

// upsertInstances writes existing instances (locked by currentInstances):
// the version, environment, address, labels, state, last-seen time and
// unknown flag given (name, platform, launch time and taint stay).
func upsertInstances(ctx context.Context, tx *tx, insts []*kiln.Instance, unknown []bool, agents []string) error {
	if len(insts) == 0 {
		return nil
	}
	q, args := instanceValues(tx, insts, unknown, agents)
	q += ` ON CONFLICT (id) DO UPDATE SET image = excluded.image, number = excluded.number,
		environment = excluded.environment, state = excluded.state, address = excluded.address,
		labels = excluded.labels, last_seen_at = excluded.last_seen_at, unknown = excluded.unknown,
		agent_token = excluded.agent_token`
	if _, err := tx.exec(ctx, q, args...); err != nil {
		return instanceWriteError(err, insts)
	}
	return nil
}

// touchInstances sets the last-seen time of instances whose check-in
// changed nothing else.
func touchInstances(ctx context.Context, tx *tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var err error
	if tx.db.dialect == dialectPostgres {
		_, err = tx.exec(ctx, `UPDATE instances SET last_seen_at = ? WHERE id = ANY(?)`, tx.timeArg(tx.now), ids)
	} else {
		args := make([]any, 0, 1+len(ids))
		args = append(args, tx.timeArg(tx.now))
		for _, id := range ids {
			args = append(args, id)
		}
		_, err = tx.exec(ctx, `UPDATE instances SET last_seen_at = ? WHERE id IN (`+placeholders(len(ids))+`)`, args...)
	}
	if err != nil {
		return fmt.Errorf("check in: update last-seen: %w", err)
	}
	return nil
}

// countKey is one row of fleet_counts.
type countKey struct {
	image       string
	number      int
	environment string
	state       kiln.InstanceState
}

// countDeltas sums how a transaction changes fleet_counts.
type countDeltas map[countKey]int64

func (d countDeltas) add(inst *kiln.Instance, n int64) {
	d[countKey{inst.Version.Image, inst.Version.Number, inst.Environment, inst.State}] += n
}

// applyCounts adds deltas to fleet_counts in one statement (PostgreSQL),
// in key order so that concurrent batches lock counts rows in the same
// order and cannot deadlock.
func applyCounts(ctx context.Context, tx *tx, deltas countDeltas) error {
	keys := make([]countKey, 0, len(deltas))
	for k, n := range deltas {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, func(a, b countKey) int {
		return cmp.Or(strings.Compare(a.image, b.image), cmp.Compare(a.number, b.number),
			strings.Compare(a.environment, b.environment), strings.Compare(string(a.state), string(b.state)))
	})
	images, envs, states := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	numbers, ns := make([]int64, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		images[i], numbers[i], envs[i], states[i], ns[i] = k.image, int64(k.number), k.environment, string(k.state), deltas[k]
	}
	_, err := tx.exec(ctx, `INSERT INTO fleet_counts (image, number, environment, state, instances)
		SELECT * FROM unnest(?::text[], ?::int[], ?::text[], ?::text[], ?::bigint[]) AS d (image, number, environment, state, instances)
		ORDER BY image, number, environment, state
		ON CONFLICT (image, number, environment, state) DO UPDATE SET instances = fleet_counts.instances + excluded.instances`,
		images, numbers, envs, states, ns)
	if err != nil {
		return fmt.Errorf("check in: update counts: %w", err)
	}
	return nil
}
