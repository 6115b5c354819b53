# How the example estate's images move along: build → test → scan, ready,
# then delivered to dev and staging at once and to prod after an approval
# (`kiln approve RUN prod`). `kiln serve` also starts a run every Monday
# at 04:00, and whenever an image's inputs change or its base image has a
# new ready version.
pipeline "estate" {
  stages       = ["build", "test", "scan"]
  environments = ["dev", "staging", "prod"]
  schedule     = "0 4 * * 1"
  on           = ["source", "origin", "base"]

  scan {
    on_affected  = "fail"
    min_severity = "high"
  }

  # What differs between dev and prod is given to each instance when it is
  # launched, never baked (docs/configuration.md): the page's banner
  # (appserver serves it as /banner.txt) and where the instance's kiln
  # agent checks in, with the token of its environment (read from the kiln
  # machine at launch, never stored).
  environment "dev" {
    config {
      file "banner.txt" { source = "config/dev/banner.txt" }
      settings = { LOG_LEVEL = "debug" }
      agent {
        server     = var.kiln_server
        token_file = "${var.secrets}/agent-dev.token"
      }
    }
  }

  environment "prod" {
    gate = "approval"
    config {
      file "banner.txt" { source = "config/prod/banner.txt" }
      settings = { LOG_LEVEL = "info" }
      agent {
        server     = var.kiln_server
        token_file = "${var.secrets}/agent-prod.token"
      }
    }
  }
}

# The base image is also rebuilt when the mirror has package updates for
# it ("updates available: openssl 3.0.11 → 3.0.13"), and is not delivered
# to environments: other images build on its ready versions.
pipeline "base" {
  images   = ["basic-linux"]
  schedule = "0 4 * * 1"
  on       = ["source", "origin", "packages"]

  scan {
    on_affected  = "warn"
    min_severity = "high"
  }
}
