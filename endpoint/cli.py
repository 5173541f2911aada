"""``agentroster``: the one command line, with a subcommand per job."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    program = argv is None  # run as the agentroster command, not called from Python
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        code = int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    if program and args.run is _scan:
        # A scan leaves nothing to clean up: skip freeing its objects one by one at exit (some 20 ms).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


class _Formatter(argparse.HelpFormatter):
    """argparse's help, as wide as ``shutil.get_terminal_size()`` says, without importing shutil (and with
    it bz2 and lzma: some 2 ms of every start, since argparse makes a formatter for each option)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that formats with ``_Formatter``; the subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size().columns`` gives it: $COLUMNS, else the
    terminal's, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; ``command`` is the subcommand being run, whose optional module is imported."""
    parser = _Parser(prog="agentroster", description="Find the AI agents on this machine.")
    parser.add_argument("--version", action="version", version=f"agentroster {_version()}")
    sub = parser.add_subparsers(metavar="COMMAND")

    scan = sub.add_parser("scan", help="find the agents on this machine (or under --root) and print them")
    scan.add_argument("--json", action="store_true",
                      help="print the agentroster.scan/1 JSON document (indented at a terminal, else compact)")
    scan.add_argument("--root", default="/", metavar="DIR",
                      help="scan the homes and machine-wide paths under DIR (default /); processes are "
                           "scanned only when DIR is /")
    scan.add_argument("--home", action="append", default=[], metavar="DIR", help="also scan DIR as a user home")
    scan.add_argument("--no-processes", action="store_true", help="skip the process sensor")
    scan.add_argument("--no-files", action="store_true", help="skip the file sensor")
    scan.add_argument("--no-walk", action="store_true", help="do not walk homes for project configs")
    scan.add_argument("--pcap", metavar="FILE", help="also report the LLM and tool calls in a pcap/pcapng capture")
    scan.add_argument("--sniff", type=float, metavar="SECONDS", help="also capture live for SECONDS")
    scan.add_argument("-o", "--output", metavar="FILE", help="write the output to FILE instead of stdout")
    scan.set_defaults(run=_scan)
    if command == "scan":
        return parser  # argparse builds every option's help formatter: the other commands cost a scan some 2 ms

    sigs = sub.add_parser("signatures", help="check or list the signature packs")
    sigs_sub = sigs.add_subparsers(metavar="ACTION")
    check = sigs_sub.add_parser("check", help="validate packs and run every signature's cases")
    check.add_argument("files", nargs="*", help="pack files (default: the shipped packs)")
    check.set_defaults(run=_signatures_check)
    listing = sigs_sub.add_parser("list", help="list the signatures")
    listing.set_defaults(run=_signatures_list)

    schema = sub.add_parser("schema", help="print the JSON Schema of `scan --json` (or of a report)")
    schema.add_argument("--report", action="store_true", help="the device report's schema instead")
    schema.set_defaults(run=_schema)

    _add_daemon(sub)
    _add_register(sub)
    from endpoint.companion.cli import add_parser as add_companion  # imports no Qt until it runs

    add_companion(sub)
    _add_optional(sub, "server", "console.server.cli", "run and administer the collector server",
                  load=command == "server")
    _add_optional(sub, "console", "console.app.cli", "open the Qt console (IT admins triage the fleet's agents)",
                  load=command == "console")
    return parser


def _add_daemon(sub: Any) -> None:
    daemon = sub.add_parser("daemon", help="watch this machine and report its agents to the collector")
    daemon.add_argument("--collector", metavar="URL", help="the collector's URL (https://…)")
    daemon.add_argument("--enroll-secret-file", metavar="FILE", help="a file holding the org's enroll secret")
    daemon.add_argument("--data-dir", metavar="DIR", help="where the daemon keeps its state")
    daemon.add_argument("--root", metavar="DIR", help="watch the homes under DIR instead of / (processes: this machine)")
    daemon.add_argument("--log-level", choices=("debug", "info", "warning", "error", "critical"))
    daemon.add_argument("--once", action="store_true", help="scan once, send what is spooled, and exit")
    daemon.add_argument("--print-settings", action="store_true",
                        help="print the effective settings and where each comes from, and exit")
    daemon.add_argument("--windows-service", action="store_true",
                        help="run under the Windows service manager (the service the MSI installs)")
    daemon.set_defaults(run=_daemon)
    status = sub.add_parser("status", help="show the daemon's state: enrollment, reports, queue, sensors")
    status.add_argument("--data-dir", metavar="DIR", help="the daemon's data dir (default: from its settings)")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.add_argument("--mine", action="store_true",
                        help="what agentroster holds and sends about you: your agents, registrations and inbox")
    status.set_defaults(run=_status)


def _add_register(sub: Any) -> None:
    reg = sub.add_parser("register", help="list your agents, or register one with the collector (owner, purpose…)",
                         description="Without ID: list your agents known to the daemon. With ID: declare what "
                                     "the agent is for; an admin approves it. Asks the running daemon over its "
                                     "local socket; without one, needs the daemon's data dir (sudo).")
    reg.add_argument("id", nargs="?", metavar="ID", help="the agent's id (or the start of it) from the list")
    reg.add_argument("--owner", metavar="EMAIL", help="who answers for the agent")
    reg.add_argument("--purpose", metavar="TEXT", help="what the agent is for")
    reg.add_argument("--business-process", metavar="TEXT", help="the business process it serves")
    reg.add_argument("--provider", action="append", metavar="P",
                     help="an LLM provider it is meant to use (repeat; replaces the ones found)")
    reg.add_argument("--tool", action="append", metavar="T",
                     help="an MCP server it is meant to use (repeat; replaces the ones found)")
    reg.add_argument("--data-system", action="append", metavar="S", help="a data system it touches (repeat)")
    reg.add_argument("--autonomy", choices=("supervised", "autonomous"),
                     help="default: autonomous when found running with approvals off, else supervised")
    reg.add_argument("--data-dir", metavar="DIR", help="the daemon's data dir (default: from its settings)")
    reg.set_defaults(run=_register)


def _register(args: argparse.Namespace) -> int:
    from endpoint.service.registration.cli import main as register

    return register(args)


def _settings_source(args: argparse.Namespace) -> Any:
    """Where the daemon's settings come from: its flags, this process's environment, and the managed
    source of this OS (under --root, the one in that tree: an image's own, or a test's)."""
    from endpoint.service.managed import SettingsSource, managed_source

    root = getattr(args, "root", None)
    cli = {"collector": getattr(args, "collector", None), "enroll_secret_file": getattr(args, "enroll_secret_file", None),
           "data_dir": args.data_dir, "root": root, "log_level": getattr(args, "log_level", None)}
    return SettingsSource(cli, managed=managed_source(root=os.path.abspath(root) if root else "/"))


def _daemon(args: argparse.Namespace) -> int:
    import logging

    from endpoint.service.settings import SettingsError, describe

    source = _settings_source(args)
    try:
        loaded = source.load()
    except SettingsError as exc:  # only a flag: a person typed it, and reads the answer now
        print(f"agentroster daemon: {exc}", file=sys.stderr)
        return 2
    settings = loaded.settings
    if args.print_settings:
        print("\n".join(describe(settings, loaded.origins)))
        for problem in loaded.problems:
            print(f"problem: {problem}")
        return 0
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "watchdog"):  # one line per request / event: the daemon says what matters
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from endpoint.service.daemon import run_daemon
    from endpoint.service.instance_lock import AlreadyRunning
    from endpoint.service.inventory import StateError
    from endpoint.service.winservice import run_service

    try:
        run = run_service if args.windows_service else run_daemon  # run_service: endpoint/service/winservice.py
        return run(settings, once=args.once, settings_source=source, loaded=loaded)
    except (StateError, AlreadyRunning) as exc:  # a restart would not help: say so, and exit 2
        print(f"agentroster daemon: {exc}", file=sys.stderr)
        return 2


def _status(args: argparse.Namespace) -> int:
    """Print the daemon's status; the exit code is LSB's (endpoint.service.status: 0, 3, 4, 150, 151)."""
    from endpoint.service.inventory import StateError
    from endpoint.service.settings import SettingsError
    from endpoint.service.status import UNKNOWN, read_status, render

    try:
        data_dir = args.data_dir or _settings_source(args).load().settings.data_dir
    except SettingsError as exc:
        print(f"agentroster status: {exc}", file=sys.stderr)
        return UNKNOWN
    if args.mine:
        from endpoint.service.registration.mine import main as mine

        return mine(data_dir, as_json=args.json)
    try:
        doc = read_status(data_dir)
    except StateError as exc:
        if args.json:  # a detection script parses the answer: say "unknown" in the same shape
            print(json.dumps({"running": False, "exit_code": UNKNOWN, "error": str(exc), "version": _version(),
                              "data_dir": str(data_dir)}, indent=2, sort_keys=True))
        print(f"agentroster status: {exc}", file=sys.stderr)
        return UNKNOWN
    print(json.dumps(doc, indent=2, sort_keys=True) if args.json else render(doc))
    return int(doc["exit_code"])


def _add_optional(sub: Any, name: str, module: str, help_text: str, *, load: bool) -> None:
    """A subcommand that lives in an optional extra, imported only when it is the one run (so that
    ``scan`` starts without it); without the extra, it says what to install."""
    if load:
        import importlib

        try:
            add_parser = importlib.import_module(module).add_parser
        except ModuleNotFoundError:
            pass
        else:
            add_parser(sub)
            return
    placeholder = sub.add_parser(name, help=help_text, add_help=load, description=_missing_extra_text(name))
    placeholder.add_argument("rest", nargs=argparse.REMAINDER)
    placeholder.set_defaults(run=lambda _args: _missing_extra(name))


def _missing_extra_text(name: str) -> str:
    # each optional subcommand is named after the extra that brings it (server, console)
    if getattr(sys, "frozen", False):  # PyInstaller's build: no extra can be added to it
        return (f"agentroster {name}: not part of the endpoint build (this agentroster is the packaged endpoint: "
                f"scan, daemon, status, register); install it where it runs with pip install agentroster[{name}]")
    return f"agentroster {name}: this install has no {name} extra; install agentroster[{name}]"


def _missing_extra(name: str) -> int:
    print(_missing_extra_text(name), file=sys.stderr)
    return 2


def _version() -> str:
    import contract

    return contract.__version__


def _scan(args: argparse.Namespace) -> int:
    import gc

    # The imports and the scan allocate some hundred thousand objects and leave hardly a cycle: the
    # collector would only walk them again and again (some 5 ms). It runs again once the scan is done,
    # and throughout one that captures packets (a capture's objects are many, and not ours).
    if args.pcap or args.sniff:
        return _scan_and_print(args)
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _scan_and_print(args)
    finally:
        if collecting:
            gc.enable()


def _scan_and_print(args: argparse.Namespace) -> int:
    from endpoint.scan.run import ScanOptions, scan

    options = ScanOptions(root=args.root, homes=[os.path.abspath(h) for h in args.home],
                          processes=not args.no_processes, files=not args.no_files, walk_projects=not args.no_walk)
    if not os.path.isdir(options.root):
        print(f"agentroster: --root {args.root}: not a directory", file=sys.stderr)
        return 2
    if args.pcap or args.sniff:
        _network(args, options)
    document = scan(options)
    to_terminal = not args.output and sys.stdout.isatty()
    if args.json:
        # Indented for a person at a terminal; compact (and written by json's C encoder, several times
        # quicker) for a pipe or a file.
        text = json.dumps(document, indent=2 if to_terminal else None, ensure_ascii=False)
    else:
        text = render_table(document)
    # A file name that is not valid UTF-8 reaches us with lone surrogates: never let it break the output.
    data = (text + "\n").encode("utf-8", "replace")
    if args.output:
        with open(args.output, "wb") as fh:
            fh.write(data)
    elif hasattr(sys.stdout, "buffer"):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:  # a stream without bytes underneath (a test's capture)
        sys.stdout.write(data.decode("utf-8"))
    return 0


def _network(args: argparse.Namespace, options: Any) -> None:
    import signatures
    from endpoint.scan.evidence import ScanError

    lib = signatures.load()

    def provider_for(host: str, port: int) -> str | None:
        found = lib.provider_for_host(host) if host else None
        found = found or lib.provider_for_port(port)
        return found.id if found else None

    if args.pcap:
        from endpoint.scan.sensors.pcap import PcapError, read_pcap

        try:
            reader = read_pcap(args.pcap, provider_for=provider_for)
            options.network.extend(reader)
            options.network_errors.extend(ScanError(args.pcap, "pcap", e) for e in reader.errors)
            options.network_errors.extend(reader.faults())
        except (PcapError, OSError) as exc:
            options.network_errors.append(ScanError(args.pcap, "pcap", str(exc)))
    if args.sniff:
        from endpoint.scan.sensors.network import NetworkSensor

        sensor = NetworkSensor(provider_for, watch_hosts=_catalog_hosts(lib))
        options.network.extend(sensor.sniff(args.sniff))
        options.network_errors.extend(ScanError("network", "limited", str(e)) for e in sensor.errors)
        options.network_errors.extend(sensor.faults())


def _catalog_hosts(lib: Any) -> list[str]:
    return sorted({h for p in lib.providers for h in p.hosts if "*" not in h})


def render_table(document: dict[str, Any]) -> str:
    """The scan as a table a person reads: children under their parent, flags last."""
    sightings = document["sightings"]
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["id"] for s in sightings}
    for s in sightings:
        by_parent.setdefault(s["parent"] if s["parent"] in ids else None, []).append(s)
    rows: list[tuple[str, ...]] = []

    def visit(parent: str | None, depth: int) -> None:
        for s in by_parent.get(parent, []):
            rows.append(("  " * depth + ("└ " if depth else "") + s["name"], s["type"], s["user"] or "(machine)",
                         "yes" if s["running"] else "no", _summary(s), ", ".join(s["flags"])))
            if depth < 8:
                visit(s["id"], depth + 1)

    visit(None, 0)
    header = ("AGENT", "TYPE", "USER", "RUNNING", "EVIDENCE", "FLAGS")
    import shutil

    width = shutil.get_terminal_size((160, 24)).columns
    widths = [min(max(len(r[i]) for r in [header, *rows]), cap) for i, cap in enumerate((40, 11, 14, 7, 60, 60))]
    lines = ["  ".join(cell[:w].ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()[:width]
             for row in [header, *rows]]
    device = document["device"]
    errors = document["errors"]
    lines.insert(0, f"{device['hostname']} ({device['os']}) — {_count(len(sightings), 'sighting')}, "
                    f"{_count(len(errors), 'error')}")
    if not sightings:
        lines[1:] = ["No AI agent, MCP server or LLM call was found."]
    for err in errors[:20]:
        lines.append(f"error: {err['where']}: {err['error']}: {err['detail']}")
    if len(errors) > 20:
        lines.append(f"… and {len(errors) - 20} more errors (see --json)")
    lines += flag_legend(sorted({f for s in sightings for f in s["flags"]}))
    return "\n".join(lines)


def flag_legend(flags: list[str]) -> list[str]:
    """One line for each flag the table shows: what it means, and what to do about it."""
    from contract.scan import FLAG_MEANINGS, FLAG_NEXT_STEPS

    if not flags:
        return []
    width = max(len(f) for f in flags)
    return ["", "FLAGS", *(f"  {f.ljust(width)}  {FLAG_MEANINGS.get(f, '')} Next: {FLAG_NEXT_STEPS.get(f, '')}."
                           for f in flags)]


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _summary(s: dict[str, Any]) -> str:
    parts = []
    if s["processes"]:
        parts.append(f"{len(s['processes'])} process" + ("es" if len(s["processes"]) > 1 else ""))
    if s["configs"]:
        parts.append(f"{len(s['configs'])} config" + ("s" if len(s["configs"]) > 1 else ""))
    if s["mcp_servers"] and s["type"] != "tool_server":
        parts.append(f"{len(s['mcp_servers'])} MCP")
    elif s["mcp_servers"]:
        server = s["mcp_servers"][0]
        how = server["url"] or " ".join([server["command"] or "", *server["args"]]).strip()
        parts.append(("disabled: " if not server["enabled"] else "") + how[:50])
    artifacts = [e for e in s["evidence"] if e["kind"] == "artifact"]
    if artifacts:
        parts.append(", ".join(sorted({e["rule"] for e in artifacts})))
    if s["endpoints"]:
        parts.append("calls " + ", ".join(sorted({e["host"] for e in s["endpoints"]}))[:40])
    if s["credentials"]:
        parts.append(f"{len(s['credentials'])} key" + ("s" if len(s["credentials"]) > 1 else ""))
    return "; ".join(parts)


def _signatures_check(args: argparse.Namespace) -> int:
    import pathlib

    import signatures
    from endpoint.scan.path_cases import path_found

    paths = [pathlib.Path(f) for f in args.files] if args.files else None
    problems = signatures.check(paths, path_found=path_found)  # path cases through the file sensor's search
    for problem in problems:
        print(problem)
    if not problems:
        print("signatures: ok")
    return 1 if problems else 0


def _signatures_list(args: argparse.Namespace) -> int:
    import signatures

    lib = signatures.load()
    for sig in sorted(lib.signatures, key=lambda s: (s.type, s.id)):
        print(f"{sig.id:28} {sig.type:12} {sig.vendor:22} {sig.name}")
    print(f"{len(lib.signatures)} signatures, {len(lib.providers)} providers")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from contract.validation import report_json_schema, scan_json_schema

    print(json.dumps(report_json_schema() if args.report else scan_json_schema(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
