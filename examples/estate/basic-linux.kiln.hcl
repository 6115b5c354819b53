# The general-purpose server every other image line is built on: Debian
# minbase with an init system, CA certificates and kiln's login banner.
image "basic-linux" {
  description = "Debian ${var.suite} minbase with systemd"
  version     = "1.0.0"
  method      = "fresh"

  debian {
    suite      = var.suite
    mirror     = var.mirror
    variant    = "minbase"
    components = ["main"]
  }

  packages = ["systemd-sysv", "ca-certificates"]
  tags     = { team = local.team }

  file {
    source      = "files/motd"
    destination = "/etc/motd"
    mode        = "0644"
    owner       = "root:root"
  }

  shell {
    scripts = ["scripts/basic-linux.sh"]
    env     = { JOURNAL_MAX_USE = "50M" }
  }

  tests = ["tests/basic-linux.yaml"]
}
