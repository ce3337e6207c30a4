# One Lightsail instance running the compose stack (deploy/compose.yaml), a static IP,
# a firewall that opens only 80 and 443 to the world and 22 to one CIDR, daily automatic
# snapshots, a bucket for backups that the instance may use (no access keys), and the
# DNS record. Secrets (Metabase's admin password, Spotify's client id) are not here: they
# go into deploy/.env on the instance by hand (docs/deployment.md), never into the state.

locals {
  zone = "${var.region}${var.availability_zone}"
  cloud_init = templatefile("${path.module}/cloud-init.sh.tftpl", {
    domain         = var.domain
    acme_email     = var.acme_email
    repository_url = var.repository_url
    repository_ref = var.repository_ref
    bucket         = aws_lightsail_bucket.backups.name
    region         = var.region
    plan           = var.plan
  })
}

resource "aws_lightsail_key_pair" "owner" {
  name       = "${var.name}-key"
  public_key = var.ssh_public_key
}

resource "aws_lightsail_instance" "vm" {
  name              = var.name
  availability_zone = local.zone
  blueprint_id      = "ubuntu_24_04"
  bundle_id         = var.bundle_id
  key_pair_name     = aws_lightsail_key_pair.owner.name
  # Lightsail takes the launch script as one line: the script, base64-encoded, decoded
  # and run by a one-line shell command
  user_data = "echo ${base64encode(local.cloud_init)} | base64 -d > /root/cloud-init.sh && bash /root/cloud-init.sh"

  add_on {
    type          = "AutoSnapshot"
    snapshot_time = var.snapshot_time
    status        = "Enabled"
  }

  tags = { project = var.name }
}

resource "aws_lightsail_static_ip" "ip" {
  name = "${var.name}-ip"
}

resource "aws_lightsail_static_ip_attachment" "ip" {
  static_ip_name = aws_lightsail_static_ip.ip.name
  instance_name  = aws_lightsail_instance.vm.name
}

# Lists every open port: whatever is not here is closed (Lightsail's default 22 included).
resource "aws_lightsail_instance_public_ports" "firewall" {
  instance_name = aws_lightsail_instance.vm.name

  port_info {
    protocol  = "tcp"
    from_port = 80
    to_port   = 80
    cidrs     = ["0.0.0.0/0"]
  }

  port_info {
    protocol  = "tcp"
    from_port = 443
    to_port   = 443
    cidrs     = ["0.0.0.0/0"]
  }

  port_info {
    protocol  = "tcp"
    from_port = 22
    to_port   = 22
    cidrs     = [var.ssh_cidr]
  }
}

resource "aws_lightsail_bucket" "backups" {
  name      = "${var.name}-backups-${random_id.bucket.hex}"
  bundle_id = "small_1_0"
  tags      = { project = var.name }
}

resource "random_id" "bucket" {
  byte_length = 4
}

# The instance reads and writes the bucket with its own role: no access keys anywhere.
resource "aws_lightsail_bucket_resource_access" "vm" {
  bucket_name   = aws_lightsail_bucket.backups.name
  resource_name = aws_lightsail_instance.vm.name
}

resource "aws_route53_record" "a" {
  count   = var.dns == "route53" ? 1 : 0
  zone_id = var.route53_zone_id
  name    = var.domain
  type    = "A"
  ttl     = 300
  records = [aws_lightsail_static_ip.ip.ip_address]
}

resource "aws_lightsail_domain_entry" "a" {
  count       = var.dns == "lightsail" ? 1 : 0
  domain_name = join(".", slice(split(".", var.domain), length(split(".", var.domain)) - 2, length(split(".", var.domain))))
  name        = var.domain
  type        = "A"
  target      = aws_lightsail_static_ip.ip.ip_address
}
