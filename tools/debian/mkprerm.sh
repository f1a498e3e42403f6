#!/bin/sh
# mkprerm.sh PACKAGE: prints the prerm of PACKAGE (lakecrypt or
# lakecrypt-dkms): tools/debian/prerm.in with lakecrypt_open_volumes
# (tools/open-volumes.sh, which make uninstall sources) put in place of
# its #LAKECRYPT_OPEN_VOLUMES# line, so that both packages and make
# uninstall decide alike.  Called by tools/mkdeb.sh; tests/system runs
# its output.
set -eu
case ${1:-} in
lakecrypt | lakecrypt-dkms) ;;
*) echo "usage: mkprerm.sh lakecrypt|lakecrypt-dkms" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
grep -qx '#LAKECRYPT_OPEN_VOLUMES#' "$here/prerm.in"
sed -e "s/@PACKAGE@/$1/g" -e "/^#LAKECRYPT_OPEN_VOLUMES#\$/{r $here/../open-volumes.sh
d
}" "$here/prerm.in"
