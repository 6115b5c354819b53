image "basic-linux" {
  description = "base for ${upper(local.suite)}"
  version     = "1.0.4"
  method      = "fresh"
  debian {
    suite  = local.suite
    mirror = var.mirror
  }
  packages = local.packages
  purge    = ["vim-tiny"]
  tags     = { team = "platform", "cost/center" = "42" }
  file {
    source      = "files/motd"
    destination = "/etc/motd"
    owner       = local.owner
  }
  shell { inline = ["echo hello > /etc/hello"] }
  shell {
    scripts = ["scripts/setup.sh", "./scripts/../scripts/setup.sh"]
    env     = { FOO = "bar" }
  }
  tests = ["tests/basic-linux.yaml"]
  volatile = ["/srv/cache"]
}

image "appserver" {
  base         = image.basic-linux
  base_version = 3
  packages     = ["nginx-light", "libc6=2.36-9+deb12u4"]
  volatile     = ["/var/lib/nginx/**", "/srv/cache", "/srv/sessions/*.tmp"]
  file {
    source      = "files/motd"
    destination = "/srv/motd"
    mode        = "4755"
    owner       = "33"
  }
}

image "imported" {
  method = "fresh"
  origin {
    source = "rootfs.tar"
    sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
  }
}

image "remote" {
  origin {
    source = "https://images.example.org/rootfs.tar.zst"
    sha256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
  }
}

image "reheated" {
  method   = "reheat"
  base     = image.appserver
  packages = ["htop"]
}

image "zeta" {
  base = image.basic-linux
  shell { inline = ["true"] }
}
