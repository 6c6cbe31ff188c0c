#!/bin/sh
# Installs the Debian packages named as arguments that are not installed yet.
# Quiet when everything is present; uses sudo when not root.
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; fetch them once.
if [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial -e auxfiles)" ]; then
    $SUDO apt-get update -q || exit 1
fi
$SUDO apt-get install -y -q --no-install-recommends $missing || {
    $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends $missing
}
