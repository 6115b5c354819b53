variable "suite" {
  type = string
}
variable "components" {
  type    = list(string)
  default = ["main"]
}
variable "variant" {
  default = "minbase"
}
variable "mirror" {
  type    = string
  default = "http://deb.debian.org/debian"
}
variable "team" {
  type    = string
  default = "default-team"
}

image "basic-linux" {
  debian {
    suite      = var.suite
    components = var.components
    variant    = var.variant
    mirror     = var.mirror
  }
  tags = { team = var.team }
}
