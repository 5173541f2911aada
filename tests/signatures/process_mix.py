"""A realistic mix of 1,000 non-agent processes (Linux, macOS, Windows) for matcher speed tests."""

from __future__ import annotations

import random

from signatures.launchers import ProcessFacts

_LINUX_DAEMONS = [
    ("systemd", "/usr/lib/systemd/systemd", ["/usr/lib/systemd/systemd", "--user"]),
    ("systemd-journal", "/usr/lib/systemd/systemd-journald", ["/usr/lib/systemd/systemd-journald"]),
    ("sshd", "/usr/sbin/sshd", ["sshd:", "alice@pts/0"]),
    ("dbus-daemon", "/usr/bin/dbus-daemon", ["/usr/bin/dbus-daemon", "--session", "--address=systemd:",
                                             "--nofork", "--nopidfile", "--systemd-activation"]),
    ("bash", "/usr/bin/bash", ["-bash"]),
    ("zsh", "/usr/bin/zsh", ["/usr/bin/zsh", "-l"]),
    ("tmux: server", "/usr/bin/tmux", ["tmux", "new", "-s", "work"]),
    ("pipewire", "/usr/bin/pipewire", ["/usr/bin/pipewire"]),
    ("Xwayland", "/usr/bin/Xwayland", ["/usr/bin/Xwayland", ":0", "-rootless", "-terminate", "-core"]),
    ("gnome-shell", "/usr/bin/gnome-shell", ["/usr/bin/gnome-shell"]),
    ("containerd", "/usr/bin/containerd", ["/usr/bin/containerd"]),
    ("dockerd", "/usr/bin/dockerd", ["/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"]),
    ("postgres", "/usr/lib/postgresql/16/bin/postgres", ["postgres:", "16/main:", "checkpointer"]),
    ("python3", "/usr/bin/python3.12", ["/usr/bin/python3", "/usr/bin/networkd-dispatcher", "--run-startup-triggers"]),
    ("python3", "/usr/bin/python3.12", ["/home/alice/src/api/.venv/bin/python", "-m", "pytest", "-q", "tests/"]),
    ("node", "/usr/bin/node", ["node", "/home/alice/src/web/node_modules/.bin/vite", "--port", "5173"]),
    ("node", "/usr/bin/node", ["/usr/bin/node", "/home/alice/src/web/node_modules/typescript/lib/tsserver.js"]),
    ("java", "/usr/lib/jvm/java-21-openjdk/bin/java", ["java", "-Xmx2g", "-jar", "/opt/app/service.jar"]),
    ("cron", "/usr/sbin/cron", ["/usr/sbin/cron", "-f", "-P"]),
    ("rsyslogd", "/usr/sbin/rsyslogd", ["/usr/sbin/rsyslogd", "-n", "-iNONE"]),
    ("code", "/usr/share/code/code", ["/usr/share/code/code", "--type=zygote", "--no-sandbox"]),
    ("slack", "/usr/lib/slack/slack", ["/usr/lib/slack/slack", "--enable-crashpad"]),
    ("git", "/usr/bin/git", ["git", "fetch", "--all"]),
    ("vim", "/usr/bin/vim", ["vim", "README.md"]),
]
_MAC = [
    ("WindowServer", "/System/Library/PrivateFrameworks/SkyLight.framework/Resources/WindowServer",
     ["/System/Library/PrivateFrameworks/SkyLight.framework/Resources/WindowServer", "-daemon"]),
    ("Finder", "/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder",
     ["/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder"]),
    ("Slack Helper", "/Applications/Slack.app/Contents/Frameworks/Slack Helper.app/Contents/MacOS/Slack Helper",
     ["/Applications/Slack.app/Contents/Frameworks/Slack Helper.app/Contents/MacOS/Slack Helper", "--type=utility"]),
    ("mds_stores", "/System/Library/Frameworks/CoreServices.framework/mds_stores", ["mds_stores"]),
    ("Terminal", "/System/Applications/Utilities/Terminal.app/Contents/MacOS/Terminal",
     ["/System/Applications/Utilities/Terminal.app/Contents/MacOS/Terminal"]),
]
_WIN = [
    ("svchost.exe", "C:\\Windows\\System32\\svchost.exe", ["C:\\Windows\\system32\\svchost.exe", "-k", "netsvcs", "-p"]),
    ("explorer.exe", "C:\\Windows\\explorer.exe", ["C:\\Windows\\Explorer.EXE"]),
    ("OUTLOOK.EXE", "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
     ["C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE"]),
    ("Teams.exe", "C:\\Users\\bob\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe",
     ["C:\\Users\\bob\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe", "--type=renderer"]),
    ("RuntimeBroker.exe", "C:\\Windows\\System32\\RuntimeBroker.exe", ["C:\\Windows\\System32\\RuntimeBroker.exe",
                                                                        "-Embedding"]),
]


def _chrome(rng: random.Random) -> ProcessFacts:
    flags = " ".join(f"--flag-{rng.randrange(10**6)}={rng.randrange(10**9)}" for _ in range(40))
    argv = ["/opt/google/chrome/chrome", "--type=renderer", "--crashpad-handler-pid=2301", "--lang=en-US",
            *flags.split()]
    return ProcessFacts("chrome", "/opt/google/chrome/chrome", argv, frozenset(), "linux")


def typical_processes(count: int = 1000, seed: int = 7) -> list[ProcessFacts]:
    """Kernel threads, daemons, shells, dev tools, browser renderers with long command lines."""
    rng = random.Random(seed)
    out: list[ProcessFacts] = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.30:
            out.append(ProcessFacts(f"kworker/{i % 8}:{i % 3}", "", [], frozenset(), "linux"))
        elif roll < 0.42:
            out.append(_chrome(rng))
        elif roll < 0.80:
            name, exe, argv = rng.choice(_LINUX_DAEMONS)
            out.append(ProcessFacts(name, exe, list(argv), frozenset(["HOME", "PATH"]), "linux"))
        elif roll < 0.90:
            name, exe, argv = rng.choice(_MAC)
            out.append(ProcessFacts(name, exe, list(argv), frozenset(), "macos"))
        else:
            name, exe, argv = rng.choice(_WIN)
            out.append(ProcessFacts(name, exe, list(argv), frozenset(), "windows"))
    return out
