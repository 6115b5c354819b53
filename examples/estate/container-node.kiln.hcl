# A container host: the OCI runtime runc and iptables for container
# networking, built on the latest ready basic-linux.
image "container-node" {
  description = "runc container host"
  version     = "1.0.0"
  base        = image.basic-linux

  packages = ["runc", "iptables"]
  tags     = { team = local.team, role = "containers" }

  shell {
    inline = ["echo 'role=container-node' >> /etc/kiln-release"]
  }

  tests = ["tests/container-node.yaml"]
}
