"""The policy tab: what the organisation sanctions, picked from what the fleet reports. Signatures,
providers and corporate key fingerprints are lists of what the collector's devices carry (with how many
sightings and devices each), ticked when the policy names them; an id the fleet does not report yet (a
signature from the library) is added by hand and checked by the collector. Risky-tool patterns are globs,
one per line. Preview shows what a change would do before it is saved; every version is listed with who
saved it and what changed, and the last change can be undone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.app import api, theme
from console.app import viewmodels as vm
from console.app.models import RowsModel
from console.app.plain_text import plain_label, tooltip

Index = QModelIndex | QPersistentModelIndex


@dataclass
class Choice:
    """One thing a policy can name, as the fleet reports it, and whether the edited policy names it."""

    id: str
    name: str = ""
    type: str = ""
    sightings: int = 0
    devices: int = 0
    chosen: bool = False


class ChoiceModel(QAbstractTableModel):
    """Tickable rows: (id and name, type, sightings, devices); the tick is whether the policy names it."""

    HEADERS = ("Name", "Type", "Sightings", "Devices")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.choices: list[Choice] = []
        self.editable = False

    def set_choices(self, reported: list[api.PolicyChoice], named: list[str]) -> None:
        """What the fleet reports, agents before tool servers and most seen first, then what the policy names
        that nobody reports."""
        self.beginResetModel()
        wanted = set(named)
        ordered = sorted(reported, key=lambda c: (c.type == "tool_server", -c.sightings, c.id))
        self.choices = [Choice(c.id, c.name, c.type, c.sightings, c.devices, c.id in wanted) for c in ordered]
        known = {c.id for c in reported}
        self.choices += [Choice(i, chosen=True) for i in named if i not in known]
        self.endResetModel()

    def add(self, ident: str) -> int:
        """Tick ``ident`` (added at the end when the fleet does not report it); its row."""
        for row, choice in enumerate(self.choices):
            if choice.id == ident:
                choice.chosen = True
                self.dataChanged.emit(self.index(row, 0), self.index(row, 0))
                return row
        self.beginInsertRows(QModelIndex(), len(self.choices), len(self.choices))
        self.choices.append(Choice(ident, chosen=True))
        self.endInsertRows()
        return len(self.choices) - 1

    def chosen(self) -> list[str]:
        return [c.id for c in self.choices if c.chosen]

    def set_chosen(self, ident: str, chosen: bool) -> None:
        for row, choice in enumerate(self.choices):
            if choice.id == ident:
                choice.chosen = chosen
                self.dataChanged.emit(self.index(row, 0), self.index(row, 0))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.choices)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.choices):
            return None
        choice, column = self.choices[index.row()], index.column()
        if role == Qt.ItemDataRole.CheckStateRole and column == 0:
            return Qt.CheckState.Checked if choice.chosen else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return f"{choice.name} ({choice.id})" if choice.name and choice.name != choice.id else choice.id
            if column == 1:
                return vm.TYPE_LABELS.get(choice.type, choice.type) if choice.type else ""
            return f"{choice.sightings if column == 2 else choice.devices:,}"
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and column == 0:  # names come from endpoints
            return tooltip(choice.id if choice.sightings else f"{choice.id}: no device reports it")
        if role == Qt.ItemDataRole.ForegroundRole and not choice.sightings:
            return theme.colour("muted")
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if not self.editable or role != Qt.ItemDataRole.CheckStateRole or index.column() != 0 \
                or not 0 <= index.row() < len(self.choices):
            return False
        self.choices[index.row()].chosen = Qt.CheckState(value) == Qt.CheckState.Checked
        self.dataChanged.emit(index, index)
        return True

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        return base | Qt.ItemFlag.ItemIsUserCheckable if index.column() == 0 and self.editable else base


def _lines(edit: QPlainTextEdit) -> list[str]:
    return list(dict.fromkeys(line.strip() for line in edit.toPlainText().splitlines() if line.strip()))


class Picker(QWidget):
    """A titled list of choices with a field to add one by id."""

    def __init__(self, title: str, hint: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        heading = plain_label(title)
        heading.setFont(theme.bold(heading.font()))
        layout.addWidget(heading)
        self.model = ChoiceModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAccessibleName(title)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.other = QLineEdit()
        self.other.setPlaceholderText(hint)
        self.other.setAccessibleName(f"{title}: add by id")
        self.other.setMaxLength(256)
        self.add = QPushButton("Add")
        row.addWidget(self.other, 1)
        row.addWidget(self.add)
        layout.addLayout(row)
        self.add.clicked.connect(self._add)
        self.other.returnPressed.connect(self._add)

    def _add(self) -> None:
        ident = self.other.text().strip()
        if ident:
            row = self.model.add(ident)
            self.table.scrollTo(self.model.index(row, 0))
            self.other.clear()

    def set_editable(self, allowed: bool) -> None:
        self.model.beginResetModel()
        self.model.editable = allowed
        self.model.endResetModel()
        self.other.setEnabled(allowed)
        self.add.setEnabled(allowed)


class PolicyView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        intro = QLabel("An agent whose signature is sanctioned is governed. Providers not ticked flag "
                       "<i>Unsanctioned provider</i>; keys whose fingerprint is not ticked flag <i>Personal API "
                       "key</i>; MCP servers whose name or command matches a risky-tool pattern (a glob such as "
                       "<tt>*shell*</tt>, one per line) flag <i>Broad tools</i>. The lists are what the fleet "
                       "reports, most seen first.")
        intro.setTextFormat(Qt.TextFormat.RichText)  # our own words only
        intro.setWordWrap(True)
        layout.addWidget(intro)
        grid = QGridLayout()
        self.signatures = Picker("Sanctioned signatures", "A signature id, e.g. claude-code")
        self.providers = Picker("Sanctioned providers", "A provider id, e.g. anthropic")
        self.fingerprints = Picker("Corporate key fingerprints", "hmac-sha256:… (32 hex digits)")
        self.risky_tools = QPlainTextEdit()
        self.risky_tools.setAccessibleName("Risky-tool patterns")
        self.risky_tools.setTabChangesFocus(True)
        risky = QWidget()
        risky_layout = QVBoxLayout(risky)
        risky_layout.setContentsMargins(0, 0, 0, 0)
        risky_title = plain_label("Risky-tool patterns")
        risky_title.setFont(theme.bold(risky_title.font()))
        risky_layout.addWidget(risky_title)
        risky_layout.addWidget(self.risky_tools, 1)
        grid.addWidget(self.signatures, 0, 0)
        grid.addWidget(self.providers, 0, 1)
        grid.addWidget(self.fingerprints, 1, 0)
        grid.addWidget(risky, 1, 1)
        layout.addLayout(grid, 3)

        self.cover_servers = QCheckBox("Sanction the MCP servers that newly sanctioned agents declare, too")
        self.cover_servers.setChecked(True)
        layout.addWidget(self.cover_servers)
        self.effect = plain_label("Preview shows what a change would do before it is saved.")
        self.effect.setWordWrap(True)
        self.effect.setAccessibleName("Effect of the change")
        layout.addWidget(self.effect)
        buttons = QHBoxLayout()
        self.status = plain_label()
        buttons.addWidget(self.status, 1)
        self.reload = QPushButton("Re&load")
        self.preview = QPushButton("&Preview")
        self.save = QPushButton("&Save policy…")
        self.save.setIcon(theme.standard_icon("SP_DialogSaveButton"))
        self.undo = QPushButton("&Undo the last change")
        self.undo.setIcon(theme.standard_icon("SP_ArrowBack"))
        for button in (self.reload, self.preview, self.save, self.undo):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        versions_title = plain_label("Versions (who changed what)")
        versions_title.setFont(theme.bold(versions_title.font()))
        layout.addWidget(versions_title)
        self.versions = RowsModel(["Version", "Saved (UTC)", "By", "What changed"], self)
        self.versions_table = QTableView()
        self.versions_table.setModel(self.versions)
        self.versions_table.setAccessibleName("Policy versions")
        self.versions_table.setWordWrap(False)
        self.versions_table.verticalHeader().hide()
        self.versions_table.horizontalHeader().setStretchLastSection(True)
        for column, width in enumerate((70, 130, 140)):
            self.versions_table.horizontalHeader().resizeSection(column, width)
        layout.addWidget(self.versions_table, 1)
        self.policy: api.Policy | None = None

    def show_policy(self, policy: api.Policy, choices: api.PolicyChoices | None = None,
                    versions: api.PolicyVersions | None = None) -> None:
        self.policy = policy
        reported = choices or api.PolicyChoices(signatures=[], providers=[], fingerprints=[])
        self.signatures.model.set_choices(reported.signatures, policy.sanctioned_signatures)
        self.providers.model.set_choices(reported.providers, policy.sanctioned_providers)
        self.fingerprints.model.set_choices(reported.fingerprints, policy.corporate_fingerprints)
        self.risky_tools.setPlainText("\n".join(policy.risky_tools))
        self.status.setText(f"Policy version {policy.version}")
        if versions is not None:
            self.versions.set_rows([(v.version, vm.when(v.at), v.actor or "–", "; ".join(v.changes) or "–")
                                    for v in versions.data])

    def edited(self) -> api.PolicyChange:
        return api.PolicyChange(sanctioned_signatures=self.signatures.model.chosen(),
                                sanctioned_providers=self.providers.model.chosen(),
                                corporate_fingerprints=self.fingerprints.model.chosen(),
                                risky_tools=_lines(self.risky_tools), cover_servers=self.cover_servers.isChecked())

    def set_can_edit(self, allowed: bool) -> None:
        for picker in (self.signatures, self.providers, self.fingerprints):
            picker.set_editable(allowed)
        self.risky_tools.setReadOnly(not allowed)
        self.cover_servers.setEnabled(allowed)
        for button in (self.save, self.undo):
            button.setEnabled(allowed)
            button.setToolTip("" if allowed else "Viewers can read the policy; an admin token can change it.")
