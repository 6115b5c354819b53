image "web" {
  debian { suite = "bookworm" }
  tests     = ["tests/web.yaml"]
  test_vars = ["tests/vars.yaml", "tests/site.json"]
}
