image "unknown-format" {
  debian { suite = "bookworm" }
  packages = ["linux-image-amd64"]
  formats  = ["rootfs", "vmdk"]
}

image "oci-format" {
  debian { suite = "bookworm" }
  formats = ["oci"]
}

image "not-a-list" {
  debian { suite = "bookworm" }
  formats = "qcow2"
}
