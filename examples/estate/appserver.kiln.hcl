# An application server: nginx serving a static page and a health check
# on port 80, built on the latest ready basic-linux.
image "appserver" {
  description = "nginx serving a static site on port 80"
  version     = "1.0.0"
  base        = image.basic-linux

  packages = ["nginx-light"]
  tags     = { team = local.team, role = "web" }

  # Debian's default site serves /var/www/html on port 80, index.html first.
  file {
    source      = "files/appserver/index.html"
    destination = "/var/www/html/index.html"
    mode        = "0644"
  }
  file {
    source      = "files/appserver/healthz"
    destination = "/var/www/html/healthz"
    mode        = "0644"
  }

  # The banner an environment gives each instance at launch (the
  # credential banner.txt) is served as /banner.txt; see the unit.
  file {
    source      = "files/appserver/kiln-banner.service"
    destination = "/etc/systemd/system/kiln-banner.service"
    mode        = "0644"
  }

  shell {
    inline = [
      "systemctl enable nginx",
      "systemctl enable kiln-banner",
      "ln -s /run/kiln/banner.txt /var/www/html/banner.txt",
      "echo 'role=appserver' >> /etc/kiln-release",
    ]
  }

  tests = ["tests/appserver.yaml"]

  # nginx makes its temporary directories (body, proxy, fastcgi, …) under
  # /var/lib/nginx when it starts: not drift, so `kiln instance drift`
  # counts them as ignored. The built image carries this in /etc/kiln/volatile.
  volatile = ["/var/lib/nginx"]
}
