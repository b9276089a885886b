"""The command palette's provider: every action of actions.ACTIONS on this screen.

Actions that do not apply now (retry on a running task) are left out of the footer but
listed here, dimmed and marked "not now"; choosing one says why, as its key does.
"""

from __future__ import annotations

from functools import partial

from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

from .actions import ACTIONS, ActionSpec, why_not
from .screens.help import key_label


class ActionsProvider(Provider):
    def _targets(self) -> list[tuple[ActionSpec, DOMNode, bool]]:
        screen = self.screen
        nodes: dict[str, DOMNode] = {"app": self.app}
        finder = getattr(screen, "action_targets", None)
        if finder is not None:
            nodes.update(finder())
        found = []
        for spec in ACTIONS:
            node = nodes.get(spec.scope)
            if node is None or not spec.palette:
                continue
            name = spec.action.split("(")[0]
            if not hasattr(node, f"action_{name}"):
                continue
            applies = node.check_action(name, ())
            if applies is False:
                # Hidden outright: the other half of a toggle (resume while running).
                continue
            found.append((spec, node, applies is True))
        return found

    def _title(self, spec: ActionSpec, applies: bool) -> str:
        title = spec.description.split(":")[0].rstrip(".")
        title = f"{title}  ({key_label(spec.key, spec.key_display)})"
        return title if applies else f"{title}  - not now"

    def _run(self, spec: ActionSpec, node: DOMNode, applies: bool):
        if applies:
            return partial(node.run_action, spec.action)
        return partial(self._explain, spec, node)

    def _explain(self, spec: ActionSpec, node: DOMNode) -> None:
        # The task the action is about: the selected row, or the task a detail shows.
        task = getattr(node, "selected", None)
        if task is None and isinstance(getattr(node, "view", None), DOMNode):
            task = getattr(node.view, "detail", None)
        state = getattr(task, "state", None)
        self.app.notify(why_not(spec.action, state), severity="warning", markup=False)

    async def discover(self) -> Hits:
        for spec, node, applies in self._targets():
            title = self._title(spec, applies)
            yield DiscoveryHit(
                title if applies else Text(title, style="dim"),
                self._run(spec, node, applies),
                help=spec.description,
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for spec, node, applies in self._targets():
            title = self._title(spec, applies)
            score = matcher.match(f"{title} {spec.description}")
            if score > 0:
                shown = matcher.highlight(title)
                if not applies:
                    shown.stylize("dim")
                yield Hit(
                    score if applies else score / 2,
                    shown,
                    self._run(spec, node, applies),
                    help=spec.description,
                )
