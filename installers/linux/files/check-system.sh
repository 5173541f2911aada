# The check every agentroster package makes before it installs (the build fills in the payload's facts).
glibc_at_least() {
    # $1 >= $2, both MAJOR.MINOR
    have_major=${1%%.*}; have_minor=${1#*.}; have_minor=${have_minor%%.*}
    need_major=${2%%.*}; need_minor=${2#*.}; need_minor=${need_minor%%.*}
    [ "$have_major" -gt "$need_major" ] || { [ "$have_major" -eq "$need_major" ] && [ "$have_minor" -ge "$need_minor" ]; }
}

# Refuse, with what to do instead, a machine the frozen build in this package cannot run on.
# "check_system deb" also checks dpkg's architecture (a 32-bit userland on a 64-bit kernel); "check_system rpm" does not.
check_system() {
    machine=$(uname -m)
    if [ "$machine" != "@MACHINE@" ]; then
        echo "agentroster: this package is for @MACHINE@ machines and this one is $machine; install the agentroster package built for $machine" >&2
        return 1
    fi
    if [ "${1:-}" = deb ] && command -v dpkg >/dev/null 2>&1; then
        dpkg_arch=$(dpkg --print-architecture)
        if [ "$dpkg_arch" != "@DEB_ARCH@" ]; then
            echo "agentroster: this package is for @DEB_ARCH@ and this system's packages are $dpkg_arch; install the agentroster package built for $dpkg_arch" >&2
            return 1
        fi
    fi
    need="@MIN_GLIBC@"
    [ -n "$need" ] || return 0
    have=$(getconf GNU_LIBC_VERSION 2>/dev/null || true)
    have=${have#glibc }
    case "$have" in
        [0-9]*.[0-9]*) ;;
        *)
            echo "agentroster: this package needs the GNU C library (glibc) $need or newer and this system has none (musl or another libc); it cannot run here" >&2
            return 1 ;;
    esac
    if ! glibc_at_least "$have" "$need"; then
        echo "agentroster: this package needs glibc $need or newer and this system has glibc $have; upgrade the OS to a release with glibc $need or newer" >&2
        return 1
    fi
}
