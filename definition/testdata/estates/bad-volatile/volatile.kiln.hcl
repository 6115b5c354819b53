# Each volatile pattern below is wrong in one way; the messages point at it.
image "volatile" {
  debian { suite = "bookworm" }
  volatile = [
    "var/lib/nginx",
    "/var/lib/../nginx",
    "/var/lib/nginx/",
    "/var//lib",
    "/srv/[abc",
    "/srv/cache**",
    "/",
    "/**",
    "/*/*",
    "",
    "/var/lib/nginx",
    "/var/lib/nginx",
  ]
  file {
    source      = "motd"
    destination = "/etc/kiln/volatile"
  }
}

image "notalist" {
  debian { suite = "bookworm" }
  volatile = "/var/lib/nginx"
}

image "fromvar" {
  debian { suite = "bookworm" }
  volatile = [for p in ["/ok", "rel"] : p]
}
