package sign

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/kiln-project/kiln"
)

// Checkpointer signs checkpoints of the audit log's head with the signing
// key and keeps them in the database and, when File is set, appended to
// that file as one JSON line each: a copy outside the database that
// someone who can only write to the database cannot rewrite.
type Checkpointer struct {
	Store  kiln.AuditCheckpoints
	Signer *Signer
	// File, when set, receives every checkpoint as a JSON line (mode 0600,
	// created if missing).
	File   string
	Logger *slog.Logger
	Clock  kiln.Clock // time.Now when nil

	last int64 // the newest entry already checkpointed
}

// Checkpoint signs and keeps a checkpoint of the current head. It returns
// nil (and keeps nothing) when the log is empty or the head did not move
// since the newest checkpoint.
func (c *Checkpointer) Checkpoint(ctx context.Context) (*kiln.AuditCheckpoint, error) {
	if c.last == 0 {
		list, err := c.Store.ListAuditCheckpoints(ctx)
		if err != nil {
			return nil, err
		}
		if n := len(list); n > 0 {
			c.last = list[n-1].Seq
		}
	}
	head, err := c.Store.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	if head.Seq == 0 || head.Seq == c.last {
		return nil, nil
	}
	now := time.Now
	if c.Clock != nil {
		now = c.Clock
	}
	cp, err := c.Signer.SignAuditCheckpoint(head, now())
	if err != nil {
		return nil, err
	}
	if err := c.Store.AddAuditCheckpoint(ctx, cp); err != nil {
		return nil, fmt.Errorf("keep audit checkpoint %d: %w", cp.Seq, err)
	}
	c.last = cp.Seq
	if c.File != "" {
		if err := AppendCheckpointFile(c.File, cp); err != nil {
			return cp, err
		}
	}
	return cp, nil
}

// Run signs a checkpoint every interval until ctx ends (and once at the
// start), skipping intervals in which the log did not grow. Failures are
// logged and retried at the next interval.
func (c *Checkpointer) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		cp, err := c.Checkpoint(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			c.logger().Warn("audit checkpoint failed; retrying at the next interval", "err", err)
		case cp != nil:
			c.logger().Debug("audit checkpoint signed", "seq", cp.Seq, "hash", cp.Hash)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Checkpointer) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// AppendCheckpointFile appends cp to path as one JSON line, syncing it.
func AppendCheckpointFile(path string, cp *kiln.AuditCheckpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return kiln.FieldErrorf(kiln.EINVALID, "--audit-checkpoint-file", "cannot append the audit checkpoint to %s: %v", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("append audit checkpoint to %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("append audit checkpoint to %s: %w", path, err)
	}
	return f.Close()
}

// ReadCheckpointFile reads the checkpoints AppendCheckpointFile wrote. A
// line that is not a checkpoint is an error naming the file and line; a
// last line cut short (a crash while appending) is skipped.
func ReadCheckpointFile(path string) ([]*kiln.AuditCheckpoint, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, kiln.FieldErrorf(kiln.ENOTFOUND, "--checkpoints", "checkpoint file %s does not exist; give the file kiln serve --audit-checkpoint-file writes", path)
	}
	if err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--checkpoints", "cannot read %s: %v", path, err)
	}
	defer f.Close()
	var out []*kiln.AuditCheckpoint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	var bad error
	for sc.Scan() {
		line++
		if bad != nil {
			return nil, bad // a bad line that is not the last one
		}
		if len(sc.Bytes()) == 0 {
			continue
		}
		cp := &kiln.AuditCheckpoint{}
		if err := json.Unmarshal(sc.Bytes(), cp); err != nil || cp.Seq <= 0 || cp.Hash == "" {
			bad = kiln.FieldErrorf(kiln.EINVALID, "--checkpoints", "%s line %d is not an audit checkpoint (a JSON object with seq, hash and envelope as kiln serve writes)", path, line)
			continue
		}
		out = append(out, cp)
	}
	if err := sc.Err(); err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--checkpoints", "read %s: %v", path, err)
	}
	return out, nil
}
