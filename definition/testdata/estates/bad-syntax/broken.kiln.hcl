image "basic-linux" {
  debian { suite = "bookworm" }
  packages = ["curl",
}
