package api

import kiln "github.com/kiln-project/kiln"

// Stores is a backend that keeps everything the API serves, as kiln's
// database (store.DB) does.
type Stores interface {
	kiln.Registry
	kiln.TokenStore
	kiln.AuditLog
	kiln.Inventory
	kiln.Fleet
	kiln.AdvisoryStore
	kiln.AdvisorySourceStore
	kiln.RunStore
	kiln.ChannelStore
	kiln.WebhookStore
	kiln.ServiceStore
	kiln.RolloutStore
	kiln.Revoker
	kiln.PauseStore
	kiln.Reproductions
	kiln.VersionImporter
	kiln.PackageRecorder
}

// WithStores returns cfg with every store taken from s.
func (cfg Config) WithStores(s Stores) Config {
	cfg.Registry, cfg.Tokens, cfg.Audit = s, s, s
	cfg.Inventory, cfg.Fleet, cfg.Advisories, cfg.AdvisorySources = s, s, s, s
	cfg.Runs, cfg.Channels, cfg.Webhooks = s, s, s
	cfg.ServiceStore, cfg.RolloutStore, cfg.Revoker, cfg.Pauses = s, s, s, s
	cfg.Reproductions, cfg.Importer, cfg.Packages = s, s, s
	return cfg
}
