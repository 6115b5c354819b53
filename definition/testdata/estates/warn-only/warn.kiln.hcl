image "basic-linux" {
  debian { suite = "bookworm" }
  packages = ["curl", "curl"]
}

image "idle-reheat" {
  method = "reheat"
  base   = image.basic-linux
}
