# Inputs shared by every image of the example estate. Override them with
# --var mirror=http://…, a variable file, or KILN_VAR_mirror.

variable "mirror" {
  type        = string
  default     = "http://deb.debian.org/debian"
  description = "Debian archive that fresh bakes bootstrap from."
}

variable "suite" {
  type        = string
  default     = "bookworm"
  description = "Debian release the estate is built on."
}

locals {
  team = "platform"
}
