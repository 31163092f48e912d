#!/bin/sh
# scripts/devcert.sh — a self-signed development TLS certificate for hegate (never for production).
# Usage: scripts/devcert.sh [DIR]   (default var/tls) -> DIR/cert.pem, DIR/key.pem
# EC P-256, CN localhost, SAN localhost + 127.0.0.1, valid 30 days. Leaves an existing pair alone
# unless it expires within a day.
set -eu
dir=${1:-var/tls}
mkdir -p "$dir"
if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] &&
   openssl x509 -in "$dir/cert.pem" -noout -checkend 86400 >/dev/null 2>&1; then
  exit 0   # present and valid for at least another day
fi
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
chmod 644 "$dir/cert.pem"
echo "devcert: wrote $dir/cert.pem and $dir/key.pem (self-signed, 30 days)"
