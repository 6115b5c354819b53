image "other" {
  debian { suite = "bookworm" }
  packges = ["curl"]
}
