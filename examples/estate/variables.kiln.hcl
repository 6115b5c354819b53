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

variable "kiln_server" {
  type        = string
  default     = "http://127.0.0.1:8080"
  description = "Where instances' kiln agents check in (kiln serve), as seen from the instance."
}

variable "secrets" {
  type        = string
  default     = "/etc/kiln/secrets"
  description = "Directory on the kiln machine with the agent tokens of each environment (agent-dev.token, agent-prod.token)."
}

locals {
  team = "platform"
}
