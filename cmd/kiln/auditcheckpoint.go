package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// startAuditCheckpoints signs a checkpoint of the audit log's head every
// interval (when it moved), into db and, when file is set, appended to
// it. The returned function stops the loop and waits for it.
func startAuditCheckpoints(ctx context.Context, db *store.DB, signer *sign.Signer, every time.Duration, file string, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	cp := &sign.Checkpointer{Store: db, Signer: signer, File: file, Logger: logger}
	go func() {
		defer close(done)
		cp.Run(ctx, every)
	}()
	return func() { cancel(); <-done }
}

// warnAuditWriters warns, once at start, when kiln's own database role
// could rewrite the audit log (PostgreSQL only): then only the signed
// checkpoints, and anchors kept elsewhere, reveal a rewrite.
func warnAuditWriters(ctx context.Context, db *store.DB, logger *slog.Logger) {
	risks, err := db.AuditWriteRisks(ctx)
	if err != nil {
		logger.Warn("kiln serve: cannot read the database role's privileges on the audit log", "err", err)
		return
	}
	if len(risks) > 0 {
		logger.Warn("kiln serve: the database role can alter or delete the audit log (" + strings.Join(risks, "; ") +
			"); give kiln a role that may only INSERT and SELECT on audit_log and audit_checkpoints (docs/security.md), and keep the signed checkpoints outside the database (--audit-checkpoint-file)")
	}
}
