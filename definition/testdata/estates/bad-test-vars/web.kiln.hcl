image "no-tests" {
  debian { suite = "bookworm" }
  test_vars = ["tests/vars.yaml"]
}

image "bad-vars" {
  debian { suite = "bookworm" }
  tests     = ["tests/web.yaml"]
  test_vars = ["tests/list.yaml", "tests/missing.yaml", "tests/broken.yaml"]
}
