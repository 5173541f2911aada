# agentroster %post: enable and start the daemon on a first install; start it again after an
# upgrade if it ran before. Without a running systemd nothing is started (the unit is still enabled
# when systemctl is there, so the machine starts it at boot).
@SYSTEMD@

start=no
if [ "$1" -eq 1 ]; then
    if have_systemctl; then
        systemctl enable "$UNIT" >/dev/null 2>&1 \
            || echo "agentroster: could not enable $UNIT; enable it with: systemctl enable --now $UNIT" >&2
    fi
    start=yes
fi
if [ -e "$RESTART_MARK" ]; then
    start=yes
    rm -f "$RESTART_MARK"
fi
if systemd_running; then
    systemctl daemon-reload || true
    if [ "$start" = yes ]; then
        systemctl --no-block start "$UNIT" || echo "agentroster: $UNIT did not start; see: journalctl -u agentroster" >&2
    fi
fi
exit 0
