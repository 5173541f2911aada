# agentroster %postun: after an erase, systemd forgets the unit. The state in /var/lib/agentroster
# and /etc/agentroster/enroll-secret stay (rpm has no purge; docs/installers.md says how to delete them).
@SYSTEMD@

if [ "$1" -eq 0 ] && systemd_running; then
    systemctl daemon-reload || true
fi
exit 0
