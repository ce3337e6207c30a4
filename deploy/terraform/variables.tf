variable "region" {
  description = "AWS region of the Lightsail instance (Lightsail DNS zones exist only in us-east-1)."
  type        = string
  default     = "us-east-1"
}

variable "availability_zone" {
  description = "Availability zone letter inside the region."
  type        = string
  default     = "a"
  validation {
    condition     = can(regex("^[a-f]$", var.availability_zone))
    error_message = "One letter, a to f."
  }
}

variable "name" {
  description = "Name of the instance and prefix of every resource."
  type        = string
  default     = "music-tracker"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "Lower-case letters, digits and dashes, 3-31 characters."
  }
}

variable "plan" {
  description = "What runs on the VM: full (Metabase, Prefect's UI and the static report; a 2 GB plan or larger) or lite (the static report only; fits the 1 GB plan). docs/deployment.md compares them."
  type        = string
  default     = "full"
  validation {
    condition     = contains(["full", "lite"], var.plan)
    error_message = "full or lite."
  }
}

variable "bundle_id" {
  description = "Lightsail plan: micro_3_0 is 1 GB ($7/month, lite only), small_3_0 2 GB ($12), medium_3_0 4 GB ($24), large_3_0 8 GB ($44)."
  type        = string
  default     = "small_3_0"
  validation {
    condition     = contains(["micro_3_0", "small_3_0", "medium_3_0", "large_3_0"], var.bundle_id)
    error_message = "micro_3_0 (1 GB), small_3_0 (2 GB), medium_3_0 (4 GB) or large_3_0 (8 GB)."
  }
  validation {
    # Metabase's JVM and the Prefect server need the 2 GB plan (deploy/compose.yaml)
    condition     = var.plan == "lite" || var.bundle_id != "micro_3_0"
    error_message = "The full plan runs Metabase and needs 2 GB: choose bundle_id = \"small_3_0\" or larger, or plan = \"lite\" for micro_3_0 (docs/deployment.md)."
  }
}

variable "domain" {
  description = "The (sub)domain the dashboards are public on, e.g. music.example.com."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.domain))
    error_message = "A domain name like music.example.com."
  }
}

variable "acme_email" {
  description = "E-mail Let's Encrypt writes to about the certificate."
  type        = string
  validation {
    condition     = can(regex("^[^@ ]+@[^@ ]+$", var.acme_email))
    error_message = "An e-mail address."
  }
}

variable "ssh_public_key" {
  description = "Your SSH public key (the contents of ~/.ssh/id_ed25519.pub)."
  type        = string
  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256) ", var.ssh_public_key))
    error_message = "An OpenSSH public key line."
  }
}

variable "ssh_cidr" {
  description = "Who may reach SSH (22): your address as a /32, e.g. 203.0.113.7/32."
  type        = string
  validation {
    condition     = can(cidrhost(var.ssh_cidr, 0)) && var.ssh_cidr != "0.0.0.0/0"
    error_message = "A CIDR block, and not the whole internet."
  }
}

variable "repository_url" {
  description = "Git URL of this repository, cloned on the instance."
  type        = string
  default     = "https://github.com/your-account/music-tracker.git"
}

variable "repository_ref" {
  description = "Branch, tag or commit to deploy."
  type        = string
  default     = "main"
}

variable "dns" {
  description = "Where the A record goes: route53 (a hosted zone you have), lightsail (a Lightsail DNS zone, us-east-1 only) or none (create it yourself from the ip output)."
  type        = string
  default     = "route53"
  validation {
    condition     = contains(["route53", "lightsail", "none"], var.dns)
    error_message = "route53, lightsail or none."
  }
}

variable "route53_zone_id" {
  description = "The Route 53 hosted zone of your domain (dns = route53)."
  type        = string
  default     = ""
}

variable "snapshot_time" {
  description = "Daily automatic snapshot time, HH:00 in UTC."
  type        = string
  default     = "06:00"
  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):00$", var.snapshot_time))
    error_message = "HH:00 in UTC."
  }
}
