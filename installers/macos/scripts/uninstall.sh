#!/bin/sh
# Removes the agentroster daemon from this Mac (run by an MDM script, or by an admin with sudo).
#   uninstall.sh               keeps the data dir (device key, spool): a reinstall is the same device
#   uninstall.sh --purge       removes the data dir and the logs too: a reinstall enrolls anew
#   uninstall.sh --root DIR    removes it from the system on the volume mounted at DIR instead of this
#                              Mac's (nothing is stopped: launchd there is not running)
# The values between at signs are filled in by installers/macos/build.py.
set -u
LABEL="@LABEL@"
PKG_ID="@PKG_ID@"
PLIST="@PLIST@"
AGENT_LABEL="@AGENT_LABEL@"
AGENT_PLIST="@AGENT_PLIST@"
INSTALL_DIR="@INSTALL_DIR@"
LINK="@LINK@"
LINK_TARGET="@LINK_TARGET@"
DATA_DIR="@DATA_DIR@"
LOG_DIR="@LOG_DIR@"

usage() { sed -n '2,6s/^# \{0,1\}//p' "$0"; }

purge=0
root=""
while [ $# -gt 0 ]; do
    case "$1" in
        --purge) purge=1 ;;
        --keep-data) purge=0 ;;
        --root)
            [ $# -ge 2 ] || { echo "uninstall.sh: --root needs a folder" >&2; exit 64; }
            root=${2%/}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "uninstall.sh: unknown option '$1' (use --purge, --keep-data or --root DIR)" >&2; exit 64 ;;
    esac
    shift
done
if [ "$(/usr/bin/id -u)" -ne 0 ]; then
    echo "uninstall.sh: run it as root (sudo $0)" >&2
    exit 77
fi
if [ -n "$root" ] && [ ! -d "$root" ]; then
    echo "uninstall.sh: $root is not a folder" >&2
    exit 66
fi

if [ -z "$root" ]; then
    /bin/launchctl bootout "system/$LABEL" 2>/dev/null || true
    # the companion of the user at the screen; other sessions' end at their logout
    console_uid=$(/usr/bin/stat -f %u /dev/console 2>/dev/null || echo 0)
    if [ "$console_uid" -gt 0 ] 2>/dev/null; then
        /bin/launchctl bootout "gui/$console_uid/$AGENT_LABEL" 2>/dev/null || true
    fi
fi
/bin/rm -f "$root$PLIST" "$root$AGENT_PLIST"
# only our own link (the package's relative one, or an absolute one to the same file): an admin may
# have put another agentroster there
if [ -L "$root$LINK" ]; then
    case "$(/usr/bin/readlink "$root$LINK")" in
        "$LINK_TARGET" | "$INSTALL_DIR/agentroster") /bin/rm -f "$root$LINK" ;;
    esac
fi
# rm -rf on a link removes the link, not what it points to
/bin/rm -rf "$root$INSTALL_DIR"
if command -v pkgutil >/dev/null 2>&1; then
    pkgutil --volume "${root:-/}" --forget "$PKG_ID" >/dev/null 2>&1 || true
else
    echo "uninstall.sh: pkgutil not found; the package receipt $PKG_ID stays" >&2
fi
if [ "$purge" -eq 1 ]; then
    /bin/rm -rf "$root$DATA_DIR" "$root$LOG_DIR"
    echo "agentroster removed, with its data and logs"
else
    echo "agentroster removed; its data stays in $root$DATA_DIR (--purge removes it)"
fi
exit 0
