"""Runs the cases that every signature and credential kind carries, and checks pack files.

``check(paths)`` is what ``agentroster signatures check`` prints: schema and cross-file problems,
then every case that failed, each as "path:line: message" so an editor can jump to it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from signatures import runtime
from signatures.launchers import ProcessFacts, basename
from signatures.loader import CATALOG_PATH, shipped_packs
from signatures.matching import Library
from signatures.runtime import Case, CredentialKind, Signature
from signatures.validate import SourceFile, read_all

GENERIC_IDS = frozenset({"mcp-server"})

#: ``path_found(lib, signature_id, path, platform)``: whether the file sensor finds the file a path case
#: names and credits it to that signature (``endpoint.scan.path_cases.path_found``, which the signatures
#: package cannot import: the caller hands it over)
PathFound = Callable[[Library, str, str, "str | None"], bool]
#: ``path_found.project_found(lib, argv, files)``: the signature id the endpoint's project resolver and engine
#: name for a process ``argv`` running in a project that holds ``files`` (None: no framework); handed over as
#: an attribute of ``path_found`` (``endpoint.scan.path_cases``): without it project cases do not run
ProjectFound = Callable[[Library, list[str], dict[str, str]], "str | None"]


def split_command(text: str) -> list[str]:
    """A command line as a shell shows it, split into argv; Windows paths keep their backslashes."""
    if "\\" in text:
        return [part.strip('"') for part in re.findall(r'"[^"]*"|\S+', text)]
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def guess_platform(text: str) -> str:
    if "\\" in text or re.search(r"(^|\s)[A-Za-z]:/", text) or re.search(r"\.exe\b", text, re.I):
        return "windows"
    if re.search(r"/Applications/|/Users/|/Library/|\.app/", text):
        return "macos"
    return "linux"


def case_facts(case: Case) -> ProcessFacts:
    """The process a ``process`` case describes; its kernel name is argv[0]'s basename (15 chars on Linux)."""
    argv = split_command(case.process or "")
    exe = case.exe or (argv[0] if argv else "")
    platform = case.platform or guess_platform(f"{exe} {case.process}")
    name = basename(argv[0]) if argv else basename(exe)
    if platform == "linux":
        name = name[:15]
    return ProcessFacts(name=name, exe=exe, cmdline=argv, platform=platform)


def _describe(case: Case) -> str:
    for kind in ("process", "path", "extension", "package", "host", "autonomous_cmdline"):
        value = getattr(case, kind)
        if value is not None:
            return f"{kind} {value!r}"
    return "autonomous_settings"


def _outcome(lib: Library, sig: Signature, case: Case, path_found: PathFound | None) -> tuple[bool, str]:
    """Whether the case matches this signature, and (for a process) what else matched."""
    if case.process is not None and case.project is not None:
        project_found: ProjectFound | None = getattr(path_found, "project_found", None)
        named = project_found(lib, split_command(case.process), case.project) if project_found else None
        return named == sig.id, "" if named is None or named == sig.id else named
    if case.process is not None:
        script = case.script

        def read_script(_: str) -> str | None:
            return script

        found = [m.signature.id for m in lib.match_process(case_facts(case), read_script)]
        others = [i for i in found if i != sig.id and i not in GENERIC_IDS]
        return sig.id in found, ", ".join(others)
    if case.path is not None:
        return path_found is not None and path_found(lib, sig.id, case.path, case.platform), ""
    if case.extension is not None:
        return lib.match_extension(case.extension) is sig, ""
    if case.package is not None:
        ecosystem, _, name = case.package.partition(":")
        return lib.match_package("pypi" if ecosystem == "pypi" else "npm", name) is sig, ""
    if case.host is not None:
        # what a scan asks: a tool server by the URL it is declared with, an agent by its backend's host
        if sig.type == "tool_server":
            called = lib.match_url(f"https://{case.host}/")
            return called is not None and called.signature is sig, ""
        return lib.match_host(case.host) is sig, ""
    if case.autonomous_cmdline is not None:
        return bool(lib.autonomy_flags(sig, split_command(case.autonomous_cmdline))), ""
    dialects = [d for m in sig.autonomy.settings for d in m.dialects]
    dialect = case.dialect or (dialects[0] if dialects else "json")
    return bool(lib.autonomy_settings(sig, dialect, case.autonomous_settings)), ""


def run_signature_cases(lib: Library, sig: Signature, path_found: PathFound | None = None
                        ) -> list[tuple[str, int, str]]:
    """(bucket, index, message) for each failing case; a match case must not match another agent.
    Path cases run only with ``path_found`` (the file sensor's own search)."""
    failures = []
    for bucket, expected in (("match", True), ("no_match", False)):
        for index, case in enumerate(getattr(sig.cases, bucket)):
            if (case.path is not None or case.project is not None) and path_found is None:
                continue
            matched, others = _outcome(lib, sig, case, path_found)
            if matched != expected:
                verb = "did not match" if expected else "matched"
                extra = f" (matched instead: {others})" if others else ""
                failures.append((bucket, index, f"{sig.id}: {bucket} case {_describe(case)} {verb}{extra}"))
            elif expected and others:
                failures.append((bucket, index, f"{sig.id}: {bucket} case {_describe(case)} also matched {others}"))
    return failures


def run_credential_cases(lib: Library, kind: CredentialKind) -> list[tuple[str, int, str]]:
    """Values are classified on their own when the kind has a shape, else under its first env name."""
    name = None if kind.patterns or not kind.env else kind.env[0]
    failures = []
    for bucket, expected in (("match", True), ("no_match", False)):
        for index, value in enumerate(getattr(kind.cases, bucket)):
            found = lib.credential_kind(name, value)
            if (found is not None and found.id == kind.id) != expected:
                got = found.id if found is not None else "nothing"
                failures.append((bucket, index, f"credential {kind.id}: {bucket} value #{index + 1} gave {got}"))
    return failures


def _is_catalog(path: Path) -> bool:
    return path.name == CATALOG_PATH.name


def check(paths: Sequence[Path] | None = None, path_found: PathFound | None = None) -> list[str]:
    """Validate pack files (default: the shipped ones) and run their cases; [] when all is well. Path
    cases run only with ``path_found``."""
    chosen = [Path(p) for p in paths] if paths else [*shipped_packs(), CATALOG_PATH]
    catalogs = [p for p in chosen if _is_catalog(p)]
    pack_paths = [p for p in chosen if not _is_catalog(p)]
    catalog_path = catalogs[0] if catalogs else CATALOG_PATH
    packs, catalog, problems = read_all(pack_paths, catalog_path)
    if catalog is None:
        return problems
    # The cases run on the same plain objects that a scan matches with.
    signatures, providers, kinds = runtime.build([pack.model_dump(mode="json") for pack, _ in packs],
                                                 catalog[0].model_dump(mode="json"))
    lib = Library(signatures, providers, kinds)
    first = 0
    for pack, source in packs:
        count = len(pack.signatures)
        problems += _pack_case_problems(lib, signatures[first:first + count], source, path_found)
        first += count
    if catalogs:
        source = catalog[1]
        for i, kind in enumerate(kinds):
            for bucket, index, message in run_credential_cases(lib, kind):
                problems.append(f"{source.where(('credentials', i, 'cases', bucket, index))}: {message}")
    return problems


def _pack_case_problems(lib: Library, signatures: Sequence[Signature], source: SourceFile,
                        path_found: PathFound | None) -> list[str]:
    problems = []
    for i, sig in enumerate(signatures):
        for bucket, index, message in run_signature_cases(lib, sig, path_found):
            problems.append(f"{source.where(('signatures', i, 'cases', bucket, index))}: {message}")
    return problems
