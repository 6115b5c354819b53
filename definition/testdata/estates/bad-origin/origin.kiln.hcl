image "basic-linux" {
  debian { suite = "bookworm" }
}

image "no-origin" {
  packages = ["curl"]
}

image "two-origins" {
  debian { suite = "bookworm" }
  base = image.basic-linux
}

image "two-debians" {
  debian { suite = "bookworm" }
  debian { suite = "trixie" }
}

image "typo-base" {
  base = image.basic-linx
}

image "unknown-base" {
  base = image.nothing-like-it
}

image "string-base" {
  base = "basic-linux"
}

image "deep-base" {
  base = image.basic-linux.version
}

image "pin-without-base" {
  debian { suite = "bookworm" }
  base_version = 2
}

image "bad-pin" {
  base         = image.basic-linux
  base_version = 1.5
}

image "zero-pin" {
  base         = image.basic-linux
  base_version = 0
}

image "origin-missing-sha" {
  origin { source = "https://example.org/rootfs.tar" }
}

image "origin-bad" {
  origin {
    source = "ftp://example.org/rootfs.tar"
    sha256 = "E3B0C442"
  }
}
