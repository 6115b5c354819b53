variable "mirror" {
  default = "http://other.example.org/debian"
}
locals {
  suite = "trixie"
}
image "basic-linux" {
  debian { suite = "trixie" }
}
