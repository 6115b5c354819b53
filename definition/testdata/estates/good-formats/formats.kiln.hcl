image "basic-linux" {
  debian { suite = "bookworm" }
  packages = ["systemd-sysv", "linux-image-amd64"]
  formats  = ["qcow2", "rootfs", "raw"]
}

image "appserver" {
  base    = image.basic-linux
  formats = ["qcow2"]
}

image "pinned-kernel" {
  debian { suite = "bookworm" }
  packages = ["linux-image-cloud-amd64=6.1.119-1"]
  formats  = ["raw"]
}

image "rootfs-only" {
  debian { suite = "bookworm" }
}
