image "Bad_Name" {
  debian { suite = "bookworm" }
}

image "a--b" {
  debian { suite = "bookworm" }
}

image "values" {
  version = "1.0"
  method  = "bake"
  debian {
    suite      = "Bookworm!"
    mirror     = "ftp://ftp.debian.org/debian"
    variant    = "tiny"
    components = []
  }
  packages = ["Foo Bar", "curl", "curl", "nginx;rm -rf /"]
  purge    = ["curl"]
  tags     = { Name = "x", "9lives" = "cat", ok = "line\nbreak" }
  file {
    source      = "files/ok"
    destination = "/etc/ok"
    mode        = "0999"
    owner       = "Root!"
  }
  file {
    source      = "files/ok"
    destination = "/etc/ok2"
    mode        = "rw-r--r--"
    owner       = "root:root:root"
  }
  shell {
    inline = ["true"]
    env    = { "1BAD" = "x", "GOOD_ONE" = "y", "has space" = "z" }
  }
}

image "more-values" {
  debian {
    suite      = "bookworm"
    components = ["main", "Non Free"]
  }
  version = "v1.2.3"
  tags    = { team = null }
  packages = ["curl", null]
}
