image "basic-linux" {
  debian { suite = "bookworm" }
  shell {}
  shell {
    inline  = ["true"]
    scripts = ["s.sh"]
  }
  shell { inline = [] }
  shell { scripts = [] }
  file {
    destination = "/etc/x"
  }
}
