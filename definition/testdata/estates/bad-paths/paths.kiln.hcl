image "paths" {
  debian { suite = "bookworm" }
  file {
    source      = "files/missing"
    destination = "/etc/missing"
  }
  file {
    source      = "../outside.txt"
    destination = "/etc/outside"
  }
  file {
    source      = "/etc/passwd"
    destination = "/etc/passwd"
  }
  file {
    source      = "files/link-out"
    destination = "/etc/link-out"
  }
  file {
    source      = "adir"
    destination = "/etc/adir"
  }
  file {
    source      = "files/ok"
    destination = "etc/relative"
  }
  file {
    source      = "files/ok"
    destination = "/etc/../etc/ok"
  }
  file {
    source      = ""
    destination = "/"
  }
  file {
    source      = "files/link-in"
    destination = "/etc/link-in"
  }
  shell { scripts = ["scripts/missing.sh", "files/../../outside.txt"] }
  tests = ["tests/missing.yaml", "files/link-out"]
}

image "origin-path" {
  origin {
    source = "../outside.txt"
    sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
  }
}
