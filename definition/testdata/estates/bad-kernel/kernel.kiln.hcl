image "base-no-kernel" {
  debian { suite = "bookworm" }
  packages = ["systemd-sysv"]
}

image "no-kernel" {
  debian { suite = "bookworm" }
  packages = ["systemd-sysv"]
  formats  = ["qcow2"]
}

image "on-base-no-kernel" {
  base    = image.base-no-kernel
  formats = ["rootfs", "qcow2", "raw"]
}

image "purges-kernel" {
  base    = image.kernel-base
  purge   = ["linux-image-amd64"]
  formats = ["raw"]
}

image "kernel-base" {
  debian { suite = "bookworm" }
  packages = ["linux-image-amd64"]
}

image "base-purges" {
  base  = image.kernel-base
  purge = ["linux-image-amd64"]
}

image "on-base-that-purges" {
  base    = image.base-purges
  formats = ["qcow2"]
}
