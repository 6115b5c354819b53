package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB is a kiln.RunStore.
var _ kiln.RunStore = (*DB)(nil)

const runColumns = `id, image, estate, vars, trigger_reason, status, stages, version_number, after_run_id,
	force_build, worker, reason, created_at, started_at, finished_at, heartbeat_at, requested_by, resume_pending, resumes`

type rowScanner interface{ Scan(dest ...any) error }

func scanRun(row rowScanner, extra ...any) (*kiln.Run, error) {
	r := &kiln.Run{}
	var vars, stages, status string
	var number, after sql.NullInt64
	dest := []any{&r.ID, &r.Image, &r.Estate, &vars, &r.Trigger, &status, &stages, &number, &after,
		&r.Force, &r.Worker, &r.Reason, dbTime{&r.CreatedAt}, dbTime{&r.StartedAt}, dbTime{&r.FinishedAt}, dbTime{&r.HeartbeatAt}, &r.RequestedBy, &r.ResumePending, &r.Resumes}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	r.Status = kiln.RunStatus(status)
	if err := json.Unmarshal([]byte(vars), &r.Vars); err != nil {
		return nil, fmt.Errorf("decode vars of run %d: %w", r.ID, err)
	}
	if len(r.Vars) == 0 {
		r.Vars = nil
	}
	if err := json.Unmarshal([]byte(stages), &r.Stages); err != nil {
		return nil, fmt.Errorf("decode stages of run %d: %w", r.ID, err)
	}
	if number.Valid {
		r.Version = &kiln.VersionRef{Image: r.Image, Number: int(number.Int64)}
	}
	r.After = after.Int64
	return r, nil
}

func runNotFound(id int64) error {
	return kiln.Errorf(kiln.ENOTFOUND, "run %d not found; list runs with `kiln runs`", id)
}

func findRun(ctx context.Context, tx *tx, id int64, lock bool) (*kiln.Run, error) {
	q := `SELECT ` + runColumns + ` FROM runs WHERE id = ?`
	if lock && tx.db.dialect == dialectPostgres {
		q += ` FOR UPDATE`
	}
	r, err := scanRun(tx.queryRow(ctx, q, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, runNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("find run %d: %w", id, err)
	}
	return r, nil
}

// EnqueueRun queues a run, or adds its trigger to the image's queued run.
func (db *DB) EnqueueRun(ctx context.Context, nr *kiln.NewRun) (*kiln.Run, bool, error) {
	if nr == nil {
		return nil, false, kiln.Errorf(kiln.EINVALID, "no run given")
	}
	if err := nr.Validate(); err != nil {
		return nil, false, err
	}
	var run *kiln.Run
	var coalesced bool
	err := db.write(ctx, func(tx *tx) error {
		run, coalesced = nil, false
		q := `SELECT ` + runColumns + ` FROM runs WHERE image = ? AND status = 'queued'`
		if db.dialect == dialectPostgres {
			q += ` FOR UPDATE`
		}
		queued, err := scanRun(tx.queryRow(ctx, q, nr.Image))
		switch {
		case err == nil:
			// Coalesce: the queued run will build from the estate as it is
			// when it starts, which covers this trigger too.
			if !strings.Contains(queued.Trigger, nr.Trigger) {
				queued.Trigger = truncate(queued.Trigger+"; "+nr.Trigger, 2000)
			}
			queued.Force = queued.Force || nr.Force
			if _, err := tx.exec(ctx, `UPDATE runs SET trigger_reason = ?, force_build = ? WHERE id = ?`, queued.Trigger, queued.Force, queued.ID); err != nil {
				return fmt.Errorf("coalesce into run %d: %w", queued.ID, err)
			}
			run, coalesced = queued, true
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("find queued run of %s: %w", nr.Image, err)
		}
		stages := slices.Clone(nr.Stages)
		for i := range stages {
			stages[i].Status = kiln.StagePending
			if stages[i].Gate == "" {
				stages[i].Gate = kiln.GateAuto
			}
		}
		sj, _ := json.Marshal(stages)
		vars := nr.Vars
		if vars == nil {
			vars = map[string]string{}
		}
		vj, _ := json.Marshal(vars)
		var after any
		if nr.After != 0 {
			after = nr.After
		}
		var id int64
		if err := tx.queryRow(ctx, `INSERT INTO runs (image, estate, vars, trigger_reason, status, stages, after_run_id, force_build, created_at, requested_by)
			VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?) RETURNING id`,
			nr.Image, nr.Estate, string(vj), nr.Trigger, string(sj), after, nr.Force, tx.timeArg(tx.now), nr.RequestedBy).Scan(&id); err != nil {
			return fmt.Errorf("queue run of %s: %w", nr.Image, err)
		}
		if err := audit(ctx, tx, "run.queue", fmt.Sprintf("run %d", id), nr.Image+": "+truncate(nr.Trigger, 200)); err != nil {
			return err
		}
		run, err = findRun(ctx, tx, id, false)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return run, coalesced, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// FindRun returns one run.
func (db *DB) FindRun(ctx context.Context, id int64) (*kiln.Run, error) {
	var r *kiln.Run
	err := db.read(ctx, func(tx *tx) error {
		var err error
		r, err = findRun(ctx, tx, id, false)
		return err
	})
	return r, err
}

// ListRuns returns matching runs newest first.
func (db *DB) ListRuns(ctx context.Context, f kiln.RunFilter) ([]*kiln.Run, int, error) {
	if err := checkPage(f.Limit, f.Offset); err != nil {
		return nil, 0, err
	}
	conds := []string{"1 = 1"}
	var args []any
	if f.Image != "" {
		conds, args = append(conds, "image = ?"), append(args, f.Image)
	}
	if len(f.Status) > 0 {
		conds = append(conds, "status IN ("+placeholders(len(f.Status))+")")
		for _, s := range f.Status {
			args = append(args, string(s))
		}
	}
	where := strings.Join(conds, " AND ")
	q, qargs := db.paged(`SELECT `+runColumns+`, COUNT(*) OVER () FROM runs WHERE `+where+` ORDER BY id DESC`, args, f.Limit, f.Offset)
	var out []*kiln.Run
	total := 0
	err := db.read(ctx, func(tx *tx) error {
		out, total = []*kiln.Run{}, 0
		if err := eachRow(ctx, tx, q, qargs, func(rows *sql.Rows) error {
			r, err := scanRun(rows, &total)
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		}); err != nil {
			return fmt.Errorf("list runs: %w", err)
		}
		if pastEnd(len(out), f.Offset) {
			return tx.queryRow(ctx, `SELECT COUNT(*) FROM runs WHERE `+where, args...).Scan(&total)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// ClaimRun hands the oldest runnable queued run to worker. On PostgreSQL
// the candidate rows are locked with FOR UPDATE SKIP LOCKED, so two
// workers never take the same run; the partial unique index on running
// runs refuses a second running run of one image even if two claims race.
func (db *DB) ClaimRun(ctx context.Context, worker string) (*kiln.Run, error) {
	if worker == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "worker", "no worker name given")
	}
	var claimed *kiln.Run
	err := db.write(ctx, func(tx *tx) error {
		claimed = nil
		q := `SELECT ` + runColumns + ` FROM runs r WHERE status = 'queued'
			AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.image = r.image AND x.status = 'running')
			ORDER BY id LIMIT 20`
		if db.dialect == dialectPostgres {
			q += ` FOR UPDATE SKIP LOCKED`
		}
		cands, err := runsOf(ctx, tx, q, nil)
		if err != nil {
			return fmt.Errorf("find queued runs: %w", err)
		}
		for _, r := range cands {
			if r.After != 0 {
				var st, img string
				if err := tx.queryRow(ctx, `SELECT status, image FROM runs WHERE id = ?`, r.After).Scan(&st, &img); err != nil {
					return fmt.Errorf("read run %d that run %d waits after: %w", r.After, r.ID, err)
				}
				switch kiln.RunStatus(st) {
				case kiln.RunSucceeded, kiln.RunWaiting:
				case kiln.RunQueued, kiln.RunRunning:
					continue
				default:
					reason := fmt.Sprintf("run %d of %s, which this run waits after, ended %s", r.After, img, st)
					if _, err := tx.exec(ctx, `UPDATE runs SET status = 'cancelled', reason = ?, finished_at = ? WHERE id = ?`,
						reason, tx.timeArg(tx.now), r.ID); err != nil {
						return fmt.Errorf("cancel run %d: %w", r.ID, err)
					}
					if err := audit(ctx, tx, "run.cancelled", fmt.Sprintf("run %d", r.ID), reason); err != nil {
						return err
					}
					continue
				}
			}
			if _, err := tx.exec(ctx, `UPDATE runs SET status = 'running', worker = ?, reason = '', started_at = COALESCE(started_at, ?),
				finished_at = NULL, heartbeat_at = ? WHERE id = ? AND status = 'queued'`,
				worker, tx.timeArg(tx.now), tx.timeArg(tx.now), r.ID); err != nil {
				if isUnique(err) {
					return errClaimRaced // another worker started a run of this image
				}
				return fmt.Errorf("claim run %d: %w", r.ID, err)
			}
			r.Status, r.Worker, r.HeartbeatAt = kiln.RunRunning, worker, tx.now
			if r.StartedAt.IsZero() {
				r.StartedAt = tx.now
			}
			r.Reason, r.FinishedAt = "", time.Time{}
			claimed = r
			return audit(ctx, tx, "run.start", fmt.Sprintf("run %d", r.ID), r.Image+" on worker "+worker)
		}
		return nil
	})
	if errors.Is(err, errClaimRaced) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// errClaimRaced rolls back a claim that lost a race for an image; the
// caller sees no run to take.
var errClaimRaced = errors.New("another worker claimed a run of the same image")

func notHeld(id int64, worker string) error {
	return kiln.Errorf(kiln.ECONFLICT, "run %d is no longer held by worker %s (it was interrupted or finished elsewhere); see `kiln run show %d`", id, worker, id)
}

// Heartbeat renews worker's hold on a running run.
func (db *DB) Heartbeat(ctx context.Context, id int64, worker string) error {
	return db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `UPDATE runs SET heartbeat_at = ? WHERE id = ? AND worker = ? AND status = 'running'`, tx.timeArg(tx.now), id, worker)
		if err != nil {
			return fmt.Errorf("heartbeat of run %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notHeld(id, worker)
		}
		return nil
	})
}

// UpdateStage records one stage of a run the worker holds.
func (db *DB) UpdateStage(ctx context.Context, id int64, worker string, index int, st kiln.Stage, version *kiln.VersionRef) error {
	return db.write(ctx, func(tx *tx) error {
		r, err := findRun(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if r.Status != kiln.RunRunning || r.Worker != worker {
			return notHeld(id, worker)
		}
		if index < 0 || index >= len(r.Stages) {
			return kiln.FieldErrorf(kiln.ENOTFOUND, "stage", "run %d has no stage %d", id, index)
		}
		st.Detail = truncate(st.Detail, 4000)
		prev := r.Stages[index].Status
		r.Stages[index] = st
		sj, _ := json.Marshal(r.Stages)
		var number any
		if version != nil {
			number = version.Number
		} else if r.Version != nil {
			number = r.Version.Number
		}
		_, err = tx.exec(ctx, `UPDATE runs SET stages = ?, version_number = ?, heartbeat_at = ? WHERE id = ?`, string(sj), number, tx.timeArg(tx.now), id)
		if err != nil {
			return fmt.Errorf("record stage %s of run %d: %w", st.Name, id, err)
		}
		if prev == st.Status {
			return nil // progress within a stage: the run's log has it
		}
		detail := "stage " + st.Name + ": " + string(st.Status)
		if st.Detail != "" {
			detail += ": " + st.Detail
		}
		return audit(ctx, tx, "run.stage", fmt.Sprintf("run %d", id), truncate(detail, 200))
	})
}

// FinishRun ends a running run.
func (db *DB) FinishRun(ctx context.Context, id int64, worker string, status kiln.RunStatus, reason string) error {
	switch status {
	case kiln.RunSucceeded, kiln.RunFailed, kiln.RunWaiting, kiln.RunCancelled:
	default:
		return kiln.FieldErrorf(kiln.EINVALID, "status", "a run cannot finish as %q; use succeeded, failed, waiting or cancelled", status)
	}
	return db.write(ctx, func(tx *tx) error {
		finished := tx.timeArg(tx.now)
		if status == kiln.RunWaiting {
			finished = nil
		}
		res, err := tx.exec(ctx, `UPDATE runs SET status = ?, reason = ?, finished_at = ?, worker = '' WHERE id = ? AND worker = ? AND status = 'running'`,
			string(status), truncate(reason, 4000), finished, id, worker)
		if err != nil {
			return fmt.Errorf("finish run %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notHeld(id, worker)
		}
		return audit(ctx, tx, "run."+string(status), fmt.Sprintf("run %d", id), truncate(reason, 200))
	})
}

// AppendRunLog adds a chunk to a run's log.
func (db *DB) AppendRunLog(ctx context.Context, id int64, stage, text string) error {
	if text == "" {
		return nil
	}
	return db.write(ctx, func(tx *tx) error {
		_, err := tx.exec(ctx, `INSERT INTO run_logs (run_id, stage, time, text) VALUES (?, ?, ?, ?)`, id, stage, tx.timeArg(tx.now), text)
		if err != nil {
			return fmt.Errorf("append to the log of run %d: %w", id, err)
		}
		return nil
	})
}

// RunLogs returns log chunks after seq, oldest first.
func (db *DB) RunLogs(ctx context.Context, id int64, afterSeq int64, limit int) ([]*kiln.RunLog, error) {
	if limit <= 0 {
		limit = 1000
	}
	var out []*kiln.RunLog
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.RunLog{}
		if afterSeq == 0 {
			if _, err := findRun(ctx, tx, id, false); err != nil {
				return err
			}
		}
		return eachRow(ctx, tx, `SELECT id, stage, time, text FROM run_logs WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?`,
			[]any{id, afterSeq, limit}, func(rows *sql.Rows) error {
				l := &kiln.RunLog{}
				if err := rows.Scan(&l.Seq, &l.Stage, dbTime{&l.Time}, &l.Text); err != nil {
					return err
				}
				out = append(out, l)
				return nil
			})
	})
	return out, err
}

// InterruptRuns marks runs of dead or silent workers interrupted.
// resume marks them for a worker to queue again (ResumeRuns).
func (db *DB) InterruptRuns(ctx context.Context, dead []string, staleBefore time.Time, reason string, resume bool) ([]*kiln.Run, error) {
	var out []*kiln.Run
	err := db.write(ctx, func(tx *tx) error {
		out = nil
		conds := []string{"heartbeat_at < ?"}
		args := []any{tx.timeArg(staleBefore)}
		if staleBefore.IsZero() {
			conds, args = []string{"1 = 0"}, nil
		}
		if len(dead) > 0 {
			conds = append(conds, "worker IN ("+placeholders(len(dead))+")")
			for _, w := range dead {
				args = append(args, w)
			}
		}
		q := `SELECT ` + runColumns + ` FROM runs WHERE status = 'running' AND (` + strings.Join(conds, " OR ") + `) ORDER BY id`
		if db.dialect == dialectPostgres {
			q += ` FOR UPDATE SKIP LOCKED`
		}
		runs, err := runsOf(ctx, tx, q, args)
		if err != nil {
			return fmt.Errorf("find interrupted runs: %w", err)
		}
		for _, r := range runs {
			why := fmt.Sprintf("%s (worker %s, last heartbeat %s)", reason, r.Worker, r.HeartbeatAt.Format(time.RFC3339))
			for i := range r.Stages {
				if r.Stages[i].Status == kiln.StageRunning {
					r.Stages[i].Status, r.Stages[i].FinishedAt = kiln.StageInterrupted, tx.now
					r.Stages[i].Detail = why
				}
			}
			sj, _ := json.Marshal(r.Stages)
			if _, err := tx.exec(ctx, `UPDATE runs SET status = 'interrupted', reason = ?, stages = ?, finished_at = ?, worker = '', resume_pending = ? WHERE id = ?`,
				truncate(why, 4000), string(sj), tx.timeArg(tx.now), resume, r.ID); err != nil {
				return fmt.Errorf("mark run %d interrupted: %w", r.ID, err)
			}
			if err := audit(ctx, tx, "run.interrupted", fmt.Sprintf("run %d", r.ID), truncate(why, 200)); err != nil {
				return err
			}
			r.Status, r.Reason, r.Worker, r.FinishedAt, r.ResumePending = kiln.RunInterrupted, why, "", tx.now, resume
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// RetryRun queues a failed or interrupted run again from its first stage
// that did not pass.
func (db *DB) RetryRun(ctx context.Context, id int64, reason string) (*kiln.Run, error) {
	var r *kiln.Run
	err := db.write(ctx, func(tx *tx) error {
		var err error
		if r, err = findRun(ctx, tx, id, true); err != nil {
			return err
		}
		switch r.Status {
		case kiln.RunFailed, kiln.RunInterrupted, kiln.RunCancelled:
		default:
			return kiln.Errorf(kiln.ECONFLICT, "run %d is %s; only failed, interrupted or cancelled runs can be retried", id, r.Status)
		}
		if err := requeue(ctx, tx, r, reason, false); err != nil {
			return err
		}
		if err := audit(ctx, tx, "run.retry", fmt.Sprintf("run %d", id), reason); err != nil {
			return err
		}
		r, err = findRun(ctx, tx, id, false)
		return err
	})
	return r, err
}

// requeue queues an ended run again from its first stage that did not
// pass (an approved stage stays approved), adding reason to its trigger;
// resumed counts it as an automatic resume, else (a user's retry) the
// count starts again. A pending resume is cleared.
func requeue(ctx context.Context, tx *tx, r *kiln.Run, reason string, resumed bool) error {
	from := -1
	for i := range r.Stages {
		if from < 0 && !r.Stages[i].Status.Passed() && r.Stages[i].Status != kiln.StageApproved {
			from = i
		}
		if from >= 0 && i >= from {
			r.Stages[i].Status, r.Stages[i].Detail = kiln.StagePending, ""
			r.Stages[i].StartedAt, r.Stages[i].FinishedAt = time.Time{}, time.Time{}
		}
	}
	sj, _ := json.Marshal(r.Stages)
	trig := r.Trigger
	if reason != "" && !strings.Contains(trig, reason) {
		trig = truncate(trig+"; "+reason, 2000)
	}
	resumes := 0
	if resumed {
		resumes = r.Resumes + 1
	}
	if _, err := tx.exec(ctx, `UPDATE runs SET status = 'queued', stages = ?, trigger_reason = ?, reason = '', finished_at = NULL, after_run_id = NULL,
		resume_pending = FALSE, resumes = ? WHERE id = ?`, string(sj), trig, resumes, r.ID); err != nil {
		if isUnique(err) {
			return kiln.Errorf(kiln.ECONFLICT, "%s already has a queued run; it will build the latest definition (see `kiln runs --image %s`)", r.Image, r.Image)
		}
		return fmt.Errorf("queue run %d again: %w", r.ID, err)
	}
	return nil
}

// ResumeRuns queues again the interrupted runs whose resume is pending,
// each once: on PostgreSQL the rows are locked (SKIP LOCKED, so a second
// worker passes over them), on SQLite the write lock serializes workers,
// and the pending mark is cleared in the same transaction.
func (db *DB) ResumeRuns(ctx context.Context, limit int, reason string) ([]*kiln.Run, error) {
	if limit < 1 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "limit", "a resume limit of %d resumes nothing; give 1 or more", limit)
	}
	var out []*kiln.Run
	err := db.write(ctx, func(tx *tx) error {
		out = nil
		q := `SELECT ` + runColumns + ` FROM runs WHERE status = 'interrupted' AND resume_pending ORDER BY id`
		if db.dialect == dialectPostgres {
			q += ` FOR UPDATE SKIP LOCKED`
		}
		runs, err := runsOf(ctx, tx, q, nil)
		if err != nil {
			return fmt.Errorf("find runs to resume: %w", err)
		}
		for _, r := range runs {
			subject := fmt.Sprintf("run %d", r.ID)
			var queued int64
			err := tx.queryRow(ctx, `SELECT id FROM runs WHERE image = ? AND status = 'queued'`, r.Image).Scan(&queued)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("find the queued run of %s: %w", r.Image, err)
			}
			why := ""
			switch {
			case queued != 0:
				why = fmt.Sprintf("not resumed: run %d of %s is queued and will build the latest definition", queued, r.Image)
			case r.Resumes >= limit:
				why = fmt.Sprintf("not resumed: interrupted again after %d automatic resumes; find why in `kiln run logs %d`, then `kiln run retry %d`", r.Resumes, r.ID, r.ID)
			}
			if why != "" {
				r.Reason = truncate(r.Reason+"; "+why, 4000)
				if _, err := tx.exec(ctx, `UPDATE runs SET resume_pending = FALSE, reason = ? WHERE id = ?`, r.Reason, r.ID); err != nil {
					return fmt.Errorf("record why run %d is not resumed: %w", r.ID, err)
				}
				if err := audit(ctx, tx, "run.resume.refused", subject, truncate(why, 200)); err != nil {
					return err
				}
				r.ResumePending = false
				out = append(out, r)
				continue
			}
			if err := requeue(ctx, tx, r, reason, true); err != nil {
				return err
			}
			if err := audit(ctx, tx, "run.resume", subject, truncate(fmt.Sprintf("%s (automatic resume %d of %d)", reason, r.Resumes+1, limit), 200)); err != nil {
				return err
			}
			r, err = findRun(ctx, tx, r.ID, false)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// ApproveStage approves a waiting stage and queues its run again.
func (db *DB) ApproveStage(ctx context.Context, id int64, stage string) (*kiln.Run, error) {
	var r *kiln.Run
	err := db.write(ctx, func(tx *tx) error {
		var err error
		if r, err = findRun(ctx, tx, id, true); err != nil {
			return err
		}
		i := r.StageIndex(stage)
		if i < 0 {
			names := make([]string, len(r.Stages))
			for j, s := range r.Stages {
				names[j] = s.Name
			}
			return kiln.FieldErrorf(kiln.ENOTFOUND, "stage", "run %d has no stage %q; its stages are %s", id, stage, strings.Join(names, ", "))
		}
		if r.Status != kiln.RunWaiting || r.Stages[i].Status != kiln.StageWaiting {
			return kiln.Errorf(kiln.ECONFLICT, "stage %s of run %d is %s (run %s); only a stage waiting for approval can be approved", stage, id, r.Stages[i].Status, r.Status)
		}
		r.Stages[i].Status, r.Stages[i].ApprovedBy = kiln.StageApproved, kiln.ActorFrom(ctx)
		sj, _ := json.Marshal(r.Stages)
		if _, err := tx.exec(ctx, `UPDATE runs SET status = 'queued', stages = ?, reason = '' WHERE id = ?`, string(sj), id); err != nil {
			if isUnique(err) {
				return kiln.Errorf(kiln.ECONFLICT, "%s has another queued run; approve again when it has started", r.Image)
			}
			return fmt.Errorf("approve stage %s of run %d: %w", stage, id, err)
		}
		if err := audit(ctx, tx, "run.approve", fmt.Sprintf("run %d", id), stage); err != nil {
			return err
		}
		r, err = findRun(ctx, tx, id, false)
		return err
	})
	return r, err
}

// CancelRun cancels a queued or waiting run.
func (db *DB) CancelRun(ctx context.Context, id int64, reason string) (*kiln.Run, error) {
	var r *kiln.Run
	err := db.write(ctx, func(tx *tx) error {
		var err error
		if r, err = findRun(ctx, tx, id, true); err != nil {
			return err
		}
		if r.Status != kiln.RunQueued && r.Status != kiln.RunWaiting {
			return kiln.Errorf(kiln.ECONFLICT, "run %d is %s; only queued or waiting runs can be cancelled (a running run stops when its worker is stopped)", id, r.Status)
		}
		if _, err := tx.exec(ctx, `UPDATE runs SET status = 'cancelled', reason = ?, finished_at = ? WHERE id = ?`, reason, tx.timeArg(tx.now), id); err != nil {
			return fmt.Errorf("cancel run %d: %w", id, err)
		}
		if err := audit(ctx, tx, "run.cancel", fmt.Sprintf("run %d", id), reason); err != nil {
			return err
		}
		r, err = findRun(ctx, tx, id, false)
		return err
	})
	return r, err
}

// MarkReady moves a version to ready and queues the "ready" webhooks in
// the same transaction.
func (db *DB) MarkReady(ctx context.Context, ref kiln.VersionRef, reason string) (*kiln.Version, error) {
	var v *kiln.Version
	err := db.write(ctx, func(tx *tx) error {
		var err error
		if v, err = setStatus(ctx, tx, ref, kiln.StatusReady, reason); err != nil {
			return err
		}
		payload, _ := json.Marshal(map[string]any{
			"event": kiln.EventReady, "image": v.Image, "number": v.Number, "name": v.Name,
			"status": v.Status, "time": tx.now, "reason": reason,
		})
		_, err = enqueueEvent(ctx, tx, kiln.EventReady, payload)
		return err
	})
	return v, err
}

// runsOf reads the runs query q (selecting runColumns) returns.
func runsOf(ctx context.Context, tx *tx, q string, args []any) ([]*kiln.Run, error) {
	var runs []*kiln.Run
	err := eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
		r, err := scanRun(rows)
		if err == nil {
			runs = append(runs, r)
		}
		return err
	})
	return runs, err
}
