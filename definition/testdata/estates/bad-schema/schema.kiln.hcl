name = "estate"

source "docker" "x" {}

image "basic-linux" {
  debian {
    suite   = "bookworm"
    flavour = "minimal"
  }
  packges  = ["curl"]
  packages = "curl"
  purge    = [1, true]
  tags     = ["team"]
  tests    = "tests/x.yaml"
  version  = 1.0
  provisioner "shell" {}
  file {
    source      = ["files/motd"]
    destination = "/etc/motd"
    mode        = 0644
  }
  shell {
    inline = "echo hi"
    env    = { A = ["b"] }
  }
}

image "needs-label" "extra" {
  debian { suite = "bookworm" }
}

image {
}
