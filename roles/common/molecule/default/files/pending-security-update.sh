#!/bin/sh
# A pending security update for the common scenario: package textbook-secfix VERSION goes into a
# local repository whose Release names this distribution's security archive (the origin
# unattended-upgrades takes). Its postinst asks for a reboot, as a kernel or libc update does.
# Usage: pending-security-update.sh VERSION [--install | --lists-stale]
#   --install: dpkg -i it now instead; --lists-stale: publish it after APT's lists of the other
#   sources are fetched, and mark them fresh (a new host whose lists are a minute old and
#   predate the update).
set -eu
version=$1
# shellcheck source=/dev/null
. /etc/os-release
if [ "$ID" = ubuntu ]; then origin=Ubuntu label=Ubuntu; else origin=Debian label=Debian-Security; fi
repo=/srv/textbook-secfix
mkdir -p "$repo"
deb=$repo/textbook-secfix_${version}_all.deb
tree=$(mktemp -d)
mkdir "$tree/DEBIAN"
cat >"$tree/DEBIAN/control" <<CONTROL
Package: textbook-secfix
Version: $version
Architecture: all
Maintainer: Textbook lab <lab@lab.test>
Description: stand-in security update for the common role's scenario
CONTROL
printf '#!/bin/sh\ntouch /run/reboot-required\necho textbook-secfix >>/run/reboot-required.pkgs\n' \
  >"$tree/DEBIAN/postinst"
chmod 0755 "$tree/DEBIAN/postinst"
dpkg-deb -Zgzip --root-owner-group -b "$tree" "$deb" >/dev/null
rm -rf "$tree"
if [ "${2:-}" = --install ]; then
  dpkg -i "$deb" >/dev/null
  rm -f "$deb" /run/reboot-required /run/reboot-required.pkgs
  exit 0
fi
cd "$repo"
cat >Packages <<PACKAGES
Package: textbook-secfix
Version: $version
Architecture: all
Maintainer: Textbook lab <lab@lab.test>
Filename: ./$(basename "$deb")
Size: $(stat -c %s "$deb")
SHA256: $(sha256sum "$deb" | cut -d' ' -f1)
Description: stand-in security update for the common role's scenario

PACKAGES
cat >Release <<RELEASE
Origin: $origin
Label: $label
Suite: $VERSION_CODENAME-security
Codename: $VERSION_CODENAME-security
Date: $(date -Ru)
Architectures: all amd64
SHA256:
 $(sha256sum Packages | cut -d' ' -f1) $(stat -c %s Packages) Packages
RELEASE
if [ "${2:-}" = --lists-stale ]; then
  # Lists of every other source, fetched before this one is added, and marked fresh: Ansible's
  # apt module takes this stamp's time as the lists' age (cache_valid_time).
  apt-get update -qq
  echo "deb [trusted=yes] file:$repo ./" >/etc/apt/sources.list.d/textbook-secfix.list
  mkdir -p /var/lib/apt/periodic
  touch /var/lib/apt/periodic/update-success-stamp
else
  echo "deb [trusted=yes] file:$repo ./" >/etc/apt/sources.list.d/textbook-secfix.list
  apt-get update -qq
fi
