# nothing here
variable "x" { default = 1 }
