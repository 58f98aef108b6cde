# Packer example: bake cartridge-agent into an image (docs/packaging.md, "Packer").
#
# An example, not run by the tests: pick the builder of your cloud (OpenStack here, as
# Rackspace and most private clouds are), fill in the variables, then from the repository:
#
#   npm ci && npm run build                # dist/cartridge-agent.js
#   packer init packaging/packer
#   packer build -var source_image=… -var flavor=… -var network=… packaging/packer
#
# What it does on the build instance: installs Debian's nodejs (the agent runs on the image's
# own Node >= 18) and nftables, uploads the bundle, agent/bootstrap and packaging/systemd with
# the repository's layout (bake.sh finds them there), runs bake.sh --root / (installs, enables
# the units, removes any per-instance state; it never starts the agent), and removes the upload.
# A config of your own goes in with --config (checked with the agent's own validation first).

packer {
  required_plugins {
    openstack = {
      source  = "github.com/hashicorp/openstack"
      version = ">= 1.1.0"
    }
  }
}

variable "source_image" {
  type        = string
  description = "ID of the base image (Debian 12 or another systemd distribution with nodejs >= 18)"
}

variable "flavor" {
  type        = string
  description = "Flavor of the build instance"
}

variable "network" {
  type        = string
  description = "Network ID the build instance is attached to"
}

variable "ssh_username" {
  type    = string
  default = "debian"
}

variable "image_name" {
  type    = string
  default = "cartridge-php"
}

variable "agent_config" {
  type        = string
  default     = ""
  description = "Optional agent.json for the image (local path); empty: the packaged default"
}

locals {
  repo   = "${path.root}/../.."
  upload = "/tmp/cartridge-agent"
}

source "openstack" "cartridge" {
  image_name   = var.image_name
  source_image = var.source_image
  flavor       = var.flavor
  networks     = [var.network]
  ssh_username = var.ssh_username
}

build {
  sources = ["source.openstack.cartridge"]

  # The runtime first: the agent needs the image's own node, and a firewall tool.
  provisioner "shell" {
    execute_command = "sudo -E sh -eu '{{ .Path }}'"
    inline = [
      "export DEBIAN_FRONTEND=noninteractive",
      "apt-get update -qq",
      "apt-get install -y -qq --no-install-recommends nodejs nftables",
      "mkdir -p ${local.upload}/agent ${local.upload}/packaging ${local.upload}/dist",
      "chown -R ${var.ssh_username} ${local.upload}",
    ]
  }

  # The bake kit, in the repository's layout: a directory source without a trailing slash
  # is uploaded as that directory into the destination.
  provisioner "file" {
    source      = "${local.repo}/agent/bootstrap"
    destination = "${local.upload}/agent/"
  }
  provisioner "file" {
    source      = "${local.repo}/packaging/systemd"
    destination = "${local.upload}/packaging/"
  }
  provisioner "file" {
    source      = "${local.repo}/dist/cartridge-agent.js"
    destination = "${local.upload}/dist/cartridge-agent.js"
  }
  provisioner "file" {
    # An empty placeholder when no config is given (bake.sh then keeps the default).
    content     = var.agent_config == "" ? "" : file(var.agent_config)
    destination = "${local.upload}/agent.json"
  }

  provisioner "shell" {
    execute_command = "sudo -E sh -eu '{{ .Path }}'"
    inline = [
      "config=''",
      "[ -s ${local.upload}/agent.json ] && config='--config ${local.upload}/agent.json'",
      # Installs, enables, and removes per-instance state; exits non-zero (failing the build)
      # on anything wrong, naming it.
      "sh ${local.upload}/agent/bootstrap/bake.sh --root / $config",
      "rm -rf ${local.upload}",
    ]
  }
}
