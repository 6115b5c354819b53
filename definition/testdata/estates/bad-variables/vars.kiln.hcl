variable "required" {
  type = string
}
variable "typed" {
  type    = number
  default = "not a number"
}
variable "weird type" {
  default = 1
}
variable "badtype" {
  type = strang
}
variable "computed" {
  default = upper("x")
}
variable "extra" {
  default     = 1
  validation  = true
}
locals {
  a = local.b
  b = local.a
  c = var.nope
  d = "${local.c}-ok"
  e = image.basic-linux
  f = nosuchfunc(1)
}
image "basic-linux" {
  debian {
    suite  = local.d
    mirror = var.required
  }
  packages = [local.a]
  tags     = { x = var.missing }
}
