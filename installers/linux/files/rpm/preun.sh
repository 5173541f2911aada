# agentroster %preun: on an erase (not an upgrade), stop and disable the daemon.
@SYSTEMD@

if [ "$1" -eq 0 ]; then
    if systemd_running; then
        systemctl stop "$UNIT" || true
    fi
    if have_systemctl; then
        systemctl disable "$UNIT" >/dev/null 2>&1 || true
    fi
fi
exit 0
