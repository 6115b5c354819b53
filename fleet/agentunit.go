package fleet

// AgentService and AgentTimer are systemd units that make a server built
// from a kiln image check in every 5 minutes (and 1 minute after boot).
// Install them as /etc/systemd/system/kiln-agent.service and
// kiln-agent.timer with the kiln binary at /usr/local/bin/kiln, put
// KILN_SERVER=http://HOST:PORT (and KILN_TOKEN=…, KILN_ENV=prod) in
// /etc/default/kiln-agent, and enable the timer (docs/fleet.md). An
// instance kiln launches with an agent configuration gets the same lines
// as the kiln-agent system credential instead (docs/configuration.md):
// nothing to do by hand. When both exist the credential's values win.
const (
	AgentService = `[Unit]
Description=kiln agent: report this server's image version to kiln
Documentation=https://github.com/kiln-project/kiln/blob/main/docs/fleet.md
Wants=network-online.target
After=network-online.target
ConditionPathExists=/etc/kiln-release
ConditionPathExists=|/etc/default/kiln-agent
ConditionPathExists=|/run/credentials/@system/kiln-agent

[Service]
Type=oneshot
EnvironmentFile=-/etc/default/kiln-agent
EnvironmentFile=-/run/credentials/@system/kiln-agent
ExecStart=/usr/local/bin/kiln agent checkin --release-file /etc/kiln-release
DynamicUser=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
NoNewPrivileges=yes
`

	AgentTimer = `[Unit]
Description=kiln agent check-in every 5 minutes

[Timer]
OnBootSec=1min
OnUnitActiveSec=5min
RandomizedDelaySec=30s

[Install]
WantedBy=timers.target
`
)
