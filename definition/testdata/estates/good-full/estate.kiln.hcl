variable "mirror" {
  type        = string
  default     = "http://deb.debian.org/debian"
  description = "Debian archive"
}

variable "extra_packages" {
  type    = list(string)
  default = ["curl"]
}

locals {
  suite    = "bookworm"
  packages = concat(["systemd-sysv"], var.extra_packages)
  owner    = "${local.user}:${local.user}"
  user     = "root"
}
