image "a" {
  base = image.c
}
image "b" {
  base = image.a
}
image "c" {
  base = image.b
}
image "self" {
  base = image.self
}
image "leaf" {
  base = image.a
}
image "root" {
  debian { suite = "bookworm" }
}
