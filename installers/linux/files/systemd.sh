# What the agentroster package scripts share to drive systemd (not every script uses every name).
# shellcheck disable=SC2034
UNIT=agentroster.service
# /run is forgotten at a reboot, and the unit starts at boot anyway
# shellcheck disable=SC2034
RESTART_MARK=/run/agentroster-package-restart

have_systemctl() { command -v systemctl >/dev/null 2>&1; }
# systemd is the running init: not a chroot, an image being built, or a container without it
systemd_running() { [ -d /run/systemd/system ] && have_systemctl; }
