image "basic-linux" {
  debian { suite = "bookworm" }
}

image "pinned-reheat" {
  method       = "reheat"
  base         = image.basic-linux
  base_version = 4
  packages     = ["curl"]
}

image "artifact-reheat" {
  method = "reheat"
  origin {
    source = "https://example.org/rootfs.tar"
    sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
  }
  packages = ["curl"]
}

image "idle-reheat" {
  method = "reheat"
  base   = image.basic-linux
}
