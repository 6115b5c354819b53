package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB keeps services.
var _ kiln.ServiceStore = (*DB)(nil)

const serviceColumns = `name, image, environment, replicas, listen, port, health, max_surge, min_healthy_percent,
	bake_time_ms, max_error_rate, version_image, version_number, generation, created_at, updated_at,
	follow, followed_image, followed_number, policy, metrics_listen, estate, batch_size, platform, pending`

func scanService(row interface{ Scan(...any) error }) (*kiln.Service, error) {
	s := &kiln.Service{}
	var health, policy, pending string
	var bakeMS int64
	if err := row.Scan(&s.Name, &s.Image, &s.Environment, &s.Replicas, &s.Listen, &s.Port, &health, &s.MaxSurge,
		&s.MinHealthyPercent, &bakeMS, &s.MaxErrorRate, &s.Version.Image, &s.Version.Number, &s.Generation,
		dbTime{&s.CreatedAt}, dbTime{&s.UpdatedAt},
		&s.Follow, &s.Followed.Image, &s.Followed.Number, &policy, &s.MetricsListen, &s.Estate, &s.BatchSize, &s.Platform, &pending); err != nil {
		return nil, err
	}
	if pending != "" {
		if err := json.Unmarshal([]byte(pending), &s.Pending); err != nil {
			return nil, fmt.Errorf("service %s: stored pending rollout: %w", s.Name, err)
		}
	}
	if err := json.Unmarshal([]byte(policy), &s.Policy); err != nil {
		return nil, fmt.Errorf("service %s: stored rollout policy: %w", s.Name, err)
	}
	s.BakeTime = time.Duration(bakeMS) * time.Millisecond
	h, err := kiln.ParseHealthCheck("health", health)
	if err != nil {
		return nil, fmt.Errorf("service %s: stored health check: %w", s.Name, err)
	}
	s.Health = h
	return s, nil
}

func serviceNotFound(name string) error {
	return kiln.Errorf(kiln.ENOTFOUND, "no service is named %q; see `kiln service list` or create it with `kiln service create`", name)
}

// CreateService records a service; its image must exist.
func (db *DB) CreateService(ctx context.Context, s *kiln.Service) error {
	if s == nil {
		return kiln.Errorf(kiln.EINVALID, "no service given")
	}
	if err := s.Validate(); err != nil {
		return err
	}
	return db.write(ctx, func(tx *tx) error {
		var n int
		err := tx.queryRow(ctx, `SELECT COUNT(*) FROM images WHERE name = ?`, s.Image).Scan(&n)
		if err != nil {
			return fmt.Errorf("find image %s: %w", s.Image, err)
		}
		if n == 0 {
			return kiln.FieldErrorf(kiln.ENOTFOUND, "image", "there is no image %s; see `kiln image list`", s.Image)
		}
		var taken string
		err = tx.queryRow(ctx, `SELECT name FROM services WHERE name = ? OR listen = ?`, s.Name, s.Listen).Scan(&taken)
		if err == nil {
			if taken == s.Name {
				return kiln.FieldErrorf(kiln.ECONFLICT, "name", "service %s exists already; choose another name or delete it first", s.Name)
			}
			return kiln.FieldErrorf(kiln.ECONFLICT, "port", "front end address %s is used by service %s; choose another --port", s.Listen, taken)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("check service %s: %w", s.Name, err)
		}
		s.CreatedAt, s.UpdatedAt, s.Generation = tx.now, tx.now, 0
		policy, err := json.Marshal(s.Policy)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO services (`+serviceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')`,
			s.Name, s.Image, s.Environment, s.Replicas, s.Listen, s.Port, s.Health.String(), s.MaxSurge, s.MinHealthyPercent,
			s.BakeTime.Milliseconds(), s.MaxErrorRate, s.Version.Image, s.Version.Number, 0,
			tx.timeArg(tx.now), tx.timeArg(tx.now),
			s.Follow, s.Followed.Image, s.Followed.Number, string(policy), s.MetricsListen, s.Estate, s.BatchSize, s.Platform); err != nil {
			if isUnique(err) {
				return kiln.Errorf(kiln.ECONFLICT, "service %s or address %s was taken meanwhile; retry", s.Name, s.Listen)
			}
			return fmt.Errorf("insert service %s: %w", s.Name, err)
		}
		return audit(ctx, tx, "service.create", "service "+s.Name, fmt.Sprintf("%s in %s, %d replicas, front end %s, follow %s%s",
			s.Image, s.Environment, s.Replicas, s.Listen, s.Follow, policyDetail(s)+onPlatform(s.Platform)))
	})
}

// policyDetail is the audit detail of a service's policy.
func policyDetail(s *kiln.Service) string {
	var d string
	if w := s.Policy.Window; w != nil {
		d += ", window " + w.String()
	}
	if l := s.Policy.Limit; l != nil {
		d += ", limit " + l.String()
	}
	if g := s.Policy.Gate; g != nil {
		d += ", gate " + g.String()
	}
	if s.Estate != "" {
		d += ", estate " + s.Estate
	}
	return d
}

// UpdateService replaces a service's changeable settings (see
// kiln.ServiceStore), audited as service.update.
func (db *DB) UpdateService(ctx context.Context, s *kiln.Service) error {
	if s == nil {
		return kiln.Errorf(kiln.EINVALID, "no service given")
	}
	if err := s.Validate(); err != nil {
		return err
	}
	policy, err := json.Marshal(s.Policy)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `UPDATE services SET max_surge = ?, batch_size = ?, min_healthy_percent = ?, bake_time_ms = ?, max_error_rate = ?,
			follow = ?, policy = ?, metrics_listen = ?, estate = ?, updated_at = ? WHERE name = ?`,
			s.MaxSurge, s.BatchSize, s.MinHealthyPercent, s.BakeTime.Milliseconds(), s.MaxErrorRate, s.Follow, string(policy), s.MetricsListen, s.Estate,
			tx.timeArg(tx.now), s.Name)
		if err != nil {
			return fmt.Errorf("update service %s: %w", s.Name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return serviceNotFound(s.Name)
		}
		s.UpdatedAt = tx.now
		return audit(ctx, tx, "service.update", "service "+s.Name, fmt.Sprintf("batch %d, surge %d, min healthy %d%%, bake %s, max error rate %g, follow %s%s",
			s.Batch(), s.MaxSurge, s.MinHealthyPercent, s.BakeTime, s.MaxErrorRate, s.Follow, policyDetail(s)))
	})
}

// SetServiceFollowed records the channel version kiln serve acted on (not
// audited: the rollout it starts is).
func (db *DB) SetServiceFollowed(ctx context.Context, name string, v kiln.VersionRef) error {
	return db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `UPDATE services SET followed_image = ?, followed_number = ? WHERE name = ?`, v.Image, v.Number, name)
		if err != nil {
			return fmt.Errorf("set followed version of service %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return serviceNotFound(name)
		}
		return nil
	})
}

// SetServicePending records the rollout the autopilot holds back for the
// service's policy, or clears it (nil), audited as service.pending.
func (db *DB) SetServicePending(ctx context.Context, name string, p *kiln.PendingRollout) error {
	pending, detail := "", "none: the held-back rollout starts or is not needed any more"
	if p != nil {
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		pending = string(b)
		detail = fmt.Sprintf("%s held back by the service's rollout policy (%s, by %s since %s)", p.To, p.Why, p.By, p.Since.UTC().Format(time.RFC3339))
	}
	return db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `UPDATE services SET pending = ? WHERE name = ?`, pending, name)
		if err != nil {
			return fmt.Errorf("set pending rollout of service %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return serviceNotFound(name)
		}
		return audit(ctx, tx, "service.pending", "service "+name, detail)
	})
}

// FindService returns a service by name.
func (db *DB) FindService(ctx context.Context, name string) (*kiln.Service, error) {
	var s *kiln.Service
	err := db.read(ctx, func(tx *tx) error {
		var err error
		s, err = scanService(tx.queryRow(ctx, `SELECT `+serviceColumns+` FROM services WHERE name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return serviceNotFound(name)
		}
		return err
	})
	return s, err
}

// ListServices returns every service by name.
func (db *DB) ListServices(ctx context.Context) ([]*kiln.Service, error) {
	var out []*kiln.Service
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.Service{}
		return eachRow(ctx, tx, `SELECT `+serviceColumns+` FROM services ORDER BY name`, nil, func(rows *sql.Rows) error {
			s, err := scanService(rows)
			if err == nil {
				out = append(out, s)
			}
			return err
		})
	})
	return out, err
}

// SetServiceVersion records the version a service runs.
func (db *DB) SetServiceVersion(ctx context.Context, name string, v kiln.VersionRef) error {
	return db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `UPDATE services SET version_image = ?, version_number = ?, updated_at = ? WHERE name = ?`,
			v.Image, v.Number, tx.timeArg(tx.now), name)
		if err != nil {
			return fmt.Errorf("set version of service %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return serviceNotFound(name)
		}
		return audit(ctx, tx, "service.version", "service "+name, v.String())
	})
}

// DeleteService removes a service that has no members and no rollout in
// progress, with its rollout history.
func (db *DB) DeleteService(ctx context.Context, name string) error {
	return db.write(ctx, func(tx *tx) error {
		var n int
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM services WHERE name = ?`, name).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return serviceNotFound(name)
		}
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM service_members WHERE service = ?`, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return kiln.Errorf(kiln.ECONFLICT, "service %s still has %d instance(s); destroy them with `kiln service delete %s --destroy-instances`", name, n, name)
		}
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM rollouts WHERE service = ? AND state IN ('running', 'rolling-back')`, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return kiln.Errorf(kiln.ECONFLICT, "service %s has a rollout in progress; let it finish (`kiln rollout %s --resume`)", name, name)
		}
		for _, q := range []string{`DELETE FROM rollouts WHERE service = ?`, `DELETE FROM service_proxies WHERE service = ?`, `DELETE FROM services WHERE name = ?`} {
			if _, err := tx.exec(ctx, q, name); err != nil {
				return fmt.Errorf("delete service %s: %w", name, err)
			}
		}
		return audit(ctx, tx, "service.delete", "service "+name, "")
	})
}

const memberColumns = `service, instance_id, image, number, address, state, rollout_id, updated_at`

// ListMembers returns a service's members by instance id.
func (db *DB) ListMembers(ctx context.Context, service string) ([]*kiln.Member, error) {
	var out []*kiln.Member
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.Member{}
		return eachRow(ctx, tx, `SELECT `+memberColumns+` FROM service_members WHERE service = ? ORDER BY instance_id`, []any{service}, func(rows *sql.Rows) error {
			m := &kiln.Member{}
			var state string
			if err := rows.Scan(&m.Service, &m.InstanceID, &m.Version.Image, &m.Version.Number, &m.Address, &state, &m.Rollout, dbTime{&m.UpdatedAt}); err != nil {
				return err
			}
			m.State = kiln.MemberState(state)
			out = append(out, m)
			return nil
		})
	})
	return out, err
}

// PutMember inserts or replaces a member; a change into or out of active
// bumps the service's generation in the same transaction.
func (db *DB) PutMember(ctx context.Context, m *kiln.Member) error {
	switch m.State {
	case kiln.MemberLaunching, kiln.MemberActive, kiln.MemberDraining:
	default:
		return kiln.FieldErrorf(kiln.EINVALID, "state", "unknown member state %q", m.State)
	}
	return db.write(ctx, func(tx *tx) error {
		var old string
		err := tx.queryRow(ctx, `SELECT state FROM service_members WHERE service = ? AND instance_id = ?`, m.Service, m.InstanceID).Scan(&old)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			var n int
			if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM services WHERE name = ?`, m.Service).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return serviceNotFound(m.Service)
			}
			_, err = tx.exec(ctx, `INSERT INTO service_members (`+memberColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				m.Service, m.InstanceID, m.Version.Image, m.Version.Number, m.Address, string(m.State), m.Rollout, tx.timeArg(tx.now))
			if err != nil {
				return fmt.Errorf("add member %s of %s: %w", m.InstanceID, m.Service, err)
			}
		case err != nil:
			return err
		default:
			if _, err := tx.exec(ctx, `UPDATE service_members SET image = ?, number = ?, address = ?, state = ?, rollout_id = ?, updated_at = ?
				WHERE service = ? AND instance_id = ?`, m.Version.Image, m.Version.Number, m.Address, string(m.State), m.Rollout,
				tx.timeArg(tx.now), m.Service, m.InstanceID); err != nil {
				return fmt.Errorf("update member %s of %s: %w", m.InstanceID, m.Service, err)
			}
		}
		m.UpdatedAt = tx.now
		if (old == string(kiln.MemberActive)) != (m.State == kiln.MemberActive) {
			if err := bumpGeneration(ctx, tx, m.Service); err != nil {
				return err
			}
		}
		detail := m.Version.String() + " " + string(m.State)
		if old != "" {
			detail = m.Version.String() + " " + old + " → " + string(m.State)
		}
		return audit(ctx, tx, "service.member", "service "+m.Service+" instance "+m.InstanceID, detail)
	})
}

func bumpGeneration(ctx context.Context, tx *tx, service string) error {
	if _, err := tx.exec(ctx, `UPDATE services SET generation = generation + 1, updated_at = ? WHERE name = ?`, tx.timeArg(tx.now), service); err != nil {
		return fmt.Errorf("bump generation of %s: %w", service, err)
	}
	return nil
}

// DeleteMember removes a member; removing an active one bumps the
// generation. An unknown member is not an error.
func (db *DB) DeleteMember(ctx context.Context, service, instanceID string) error {
	return db.write(ctx, func(tx *tx) error {
		var old string
		err := tx.queryRow(ctx, `SELECT state FROM service_members WHERE service = ? AND instance_id = ?`, service, instanceID).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `DELETE FROM service_members WHERE service = ? AND instance_id = ?`, service, instanceID); err != nil {
			return fmt.Errorf("remove member %s of %s: %w", instanceID, service, err)
		}
		if old == string(kiln.MemberActive) {
			if err := bumpGeneration(ctx, tx, service); err != nil {
				return err
			}
		}
		return audit(ctx, tx, "service.member.remove", "service "+service+" instance "+instanceID, "was "+old)
	})
}

// ReportProxy records a front end's report (an upsert; not audited).
func (db *DB) ReportProxy(ctx context.Context, st *kiln.ProxyStatus) error {
	return db.write(ctx, func(tx *tx) error {
		st.SeenAt = tx.now
		_, err := tx.exec(ctx, `INSERT INTO service_proxies (service, generation, backends, requests, errors, pid, seen_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (service) DO UPDATE SET generation = excluded.generation, backends = excluded.backends,
			requests = excluded.requests, errors = excluded.errors, pid = excluded.pid, seen_at = excluded.seen_at`,
			st.Service, st.Generation, st.Backends, st.Requests, st.Errors, st.PID, tx.timeArg(tx.now))
		if err != nil {
			return fmt.Errorf("record front end of %s: %w", st.Service, err)
		}
		return nil
	})
}

// ProxyStatus returns the last report of a service's front end.
func (db *DB) ProxyStatus(ctx context.Context, service string) (*kiln.ProxyStatus, error) {
	st := &kiln.ProxyStatus{}
	err := db.read(ctx, func(tx *tx) error {
		err := tx.queryRow(ctx, `SELECT service, generation, backends, requests, errors, pid, seen_at FROM service_proxies WHERE service = ?`, service).
			Scan(&st.Service, &st.Generation, &st.Backends, &st.Requests, &st.Errors, &st.PID, dbTime{&st.SeenAt})
		if errors.Is(err, sql.ErrNoRows) {
			return kiln.Errorf(kiln.ENOTFOUND, "the front end of service %s has not reported; start it with `kiln service start %s`", service, service)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// onPlatform says where a service's instances run, for its audit entry:
// nothing for the default platform.
func onPlatform(name string) string {
	if name == "" {
		return ""
	}
	return ", on the " + name + " platform"
}
