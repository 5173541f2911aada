# agentroster %pre: refuse a machine the frozen build cannot run on; on an upgrade, stop the daemon
# before rpm replaces the frozen build under it (%post starts it again).
@CHECK_SYSTEM@
@SYSTEMD@

check_system rpm || exit 1
if [ "$1" -ge 2 ] && systemd_running && systemctl is-active --quiet "$UNIT"; then
    systemctl stop "$UNIT" && : > "$RESTART_MARK"
fi
exit 0
