"""The command palette's provider: every action of actions.ACTIONS that applies now.

Actions that do not apply (retry on a running task) are left out, the same rule that
dims them in the footer.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

from .actions import ACTIONS, ActionSpec
from .screens.help import key_label


class ActionsProvider(Provider):
    def _targets(self) -> list[tuple[ActionSpec, DOMNode]]:
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
            if node.check_action(name, ()) is not True:
                continue
            found.append((spec, node))
        return found

    def _title(self, spec: ActionSpec) -> str:
        return f"{spec.description.split(':')[0].rstrip('.')}  ({key_label(spec.key, spec.key_display)})"

    async def discover(self) -> Hits:
        for spec, node in self._targets():
            yield DiscoveryHit(
                self._title(spec), partial(node.run_action, spec.action), help=spec.description
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for spec, node in self._targets():
            title = self._title(spec)
            score = matcher.match(f"{title} {spec.description}")
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(title),
                    partial(node.run_action, spec.action),
                    help=spec.description,
                )
