#!/bin/sh
# certbot deploy hook: /etc/letsencrypt/renewal-hooks/deploy/walkie.sh (chmod 755).
# certbot runs it after each successful issuance or renewal, with RENEWED_LINEAGE set to
# /etc/letsencrypt/live/<name>. It copies the certificate where walkie and coturn (which do
# not run as root and cannot read /etc/letsencrypt/archive) can read it, then makes both
# load it without dropping anyone: walkie on SIGHUP, coturn on SIGUSR2.
set -eu
: "${RENEWED_LINEAGE:?run by certbot, or set RENEWED_LINEAGE=/etc/letsencrypt/live/<name>}"

install_pair() {  # install_pair <directory> <group>
    install -d -m 750 -o root -g "$2" "$1"
    install -m 644 -o root -g "$2" "$RENEWED_LINEAGE/fullchain.pem" "$1/fullchain.pem.new"
    install -m 640 -o root -g "$2" "$RENEWED_LINEAGE/privkey.pem" "$1/privkey.pem.new"
    mv -f "$1/privkey.pem.new" "$1/privkey.pem"
    mv -f "$1/fullchain.pem.new" "$1/fullchain.pem"
}

install_pair /etc/walkie/tls walkie
if systemctl is-active --quiet walkie; then systemctl reload walkie; fi

if getent group turnserver >/dev/null; then
    install_pair /etc/coturn/tls turnserver
    if systemctl is-active --quiet coturn; then systemctl kill -s SIGUSR2 coturn; fi
fi
