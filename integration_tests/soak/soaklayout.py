"""Which interfaces the soak run plays with, and which process hosts each.

No sockets and no processes here (``test_soaklayout.py`` checks it). Of ``interfaces``
interface slots, one is the stalled interface and one the process sending garbage, both
processes of their own; the rest are players, in the proportions of the 16-slot run (8
staying, 4 churning, 2 killed of 14). Ids carry their kind in their first letter: ``h``
staying, ``c`` churning, ``k`` killed, ``s`` stalled, ``g`` garbage.

With ``processes`` left out (or as many as the players), each player is a process of its
own: a churning one leaves by ending its process, and comes back as a new one. With
fewer, the players share them: the killed players one process (``kp``), SIGKILLed and
started again as a whole; the staying and churning players the others (``hp0``,
``hp1``, ...), where a churning player leaves and joins again inside its process.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Layout:
    """The interfaces of a soak run, by kind, and the peer processes that host them."""

    staying: list[str]
    churning: list[str]
    killed: list[str]
    stalled: str
    garbage: str
    processes: dict[str, list[str]] = field(default_factory=dict)
    """Player process slot -> the interface ids it hosts (a slot of one id is that id)."""

    @property
    def shared(self) -> bool:
        """Whether players share processes."""
        return any(len(ids) > 1 for ids in self.processes.values())

    @property
    def killed_slots(self) -> list[str]:
        """The process slots the run SIGKILLs and starts again."""
        return [slot for slot, ids in self.processes.items() if ids[0] in self.killed]

    def describe(self) -> str:
        """The layout in words, for the report."""
        players = len(self.staying) + len(self.churning) + len(self.killed)
        kinds = (
            f"{len(self.staying)} staying, {len(self.churning)} churning, {len(self.killed)} killed"
        )
        if not self.shared:
            return f"{players + 2} processes: {kinds}"
        return (
            f"{players} players in {len(self.processes)} processes ({kinds}; the killed "
            "players share one process, churning players rejoin inside theirs), and "
            "2 processes of their own"
        )


def layout(interfaces: int = 16, processes: int | None = None) -> Layout:
    """The layout of ``interfaces`` slots, the players in ``processes`` processes.

    Raises:
        ValueError: Too few interfaces for every kind, or too few processes for the
            killed players to have one of their own.
    """
    players = interfaces - 2
    if players < 3:
        raise ValueError(f"{interfaces} interfaces: at least 5 are needed (one of each kind)")
    killed = max(1, players // 7)
    churning = max(1, players * 2 // 7)
    staying = players - killed - churning
    ids = [f"{n:02d}" for n in range(interfaces)]
    result = Layout(
        staying=[f"h{n}" for n in ids[:staying]],
        churning=[f"c{n}" for n in ids[staying : staying + churning]],
        killed=[f"k{n}" for n in ids[staying + churning : players]],
        stalled=f"s{ids[players]}",
        garbage=f"g{ids[players + 1]}",
    )
    if processes is None or processes >= players:
        result.processes = {ident: [ident] for ident in result.staying + result.churning}
        result.processes.update({ident: [ident] for ident in result.killed})
        return result
    if processes < 2:
        raise ValueError("at least 2 player processes: the killed players need their own")
    others = result.staying + result.churning
    groups = processes - 1
    result.processes = {f"hp{g}": others[g::groups] for g in range(groups)}
    result.processes["kp"] = list(result.killed)
    return result
