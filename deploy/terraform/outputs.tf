output "ip" {
  description = "The instance's static IP (the A record of the domain points here)."
  value       = aws_lightsail_static_ip.ip.ip_address
}

output "dashboards_url" {
  description = "Where the public dashboards and the static report are."
  value       = "https://${var.domain}/"
}

output "ssh" {
  description = "SSH to the instance; add -L 3000:127.0.0.1:3000 -L 4200:127.0.0.1:4200 for Metabase's admin and the Prefect UI."
  value       = "ssh ubuntu@${aws_lightsail_static_ip.ip.ip_address}"
}

output "backup_bucket" {
  description = "The Lightsail bucket for backups."
  value       = aws_lightsail_bucket.backups.name
}
