variable "mirror" {
  default = "http://deb.debian.org/debian"
}
locals {
  suite = "bookworm"
}
image "basic-linux" {
  debian { suite = local.suite }
}
