"""The adventure's map and rules, in plain data and pure functions (no model, no turnout).

The model only *proposes* a command (a tool call: ``move``, ``take`` or ``use``); ``judge``
checks it against the map and the player's position and returns an ``Outcome``: allowed or
refused, with the new position. Nothing the model says changes the state any other way.

The map: the cellar (a lamp) leads up to the hall; the hall's north door opens on the library,
which is dark (the key there can only be found with the lamp); the hall's east door is locked
(use the key in the hall); behind it the vault holds the crown. Holding the crown wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

Direction = Literal["north", "south", "east", "west", "up", "down"]

ROOMS: dict[str, dict[str, Any]] = {
    "cellar": {
        "description": "A damp cellar. Stone steps lead up.",
        "exits": {"up": "hall"},
        "items": ["lamp"],
    },
    "hall": {
        "description": "A draughty hall with a door to the north and an iron door to the east.",
        "exits": {"down": "cellar", "north": "library", "east": "vault"},
        "items": [],
    },
    "library": {
        "description": "A library, pitch dark without a light. A door leads south.",
        "exits": {"south": "hall"},
        "items": ["key"],
        "dark": True,
    },
    "vault": {
        "description": "The vault: a crown glitters on a pedestal. The iron door is west.",
        "exits": {"west": "hall"},
        "items": ["crown"],
    },
}
LOCKS = {"hall:east": "key"}
"""A locked exit (``room:direction``) and the item that unlocks it (``use`` it in that room)."""
LIGHT = "lamp"
GOAL = "crown"
START = "cellar"


@dataclass(frozen=True, kw_only=True, slots=True)
class Command:
    """What the model made of the player's words: a verb and its object."""

    verb: Literal["move", "take", "use"]
    target: str


def move(direction: Direction) -> Command:
    """Walk through an exit of the current room.

    Args:
        direction: the exit to take.
    """
    return Command(verb="move", target=direction)


def take(item: str) -> Command:
    """Pick up an item lying in the current room.

    Args:
        item: the item's name, e.g. "lamp".
    """
    return Command(verb="take", target=item)


def use(item: str) -> Command:
    """Use an item from the inventory here (e.g. a key on a locked door).

    Args:
        item: the item's name, e.g. "key".
    """
    return Command(verb="use", target=item)


VERBS = (move, take, use)


@dataclass(frozen=True, kw_only=True, slots=True)
class Position:
    """Where the player is and what they carry: the part of the state the rules change."""

    room: str = START
    inventory: tuple[str, ...] = ()
    unlocked: tuple[str, ...] = ()
    taken: tuple[str, ...] = ()
    """Items picked up so far (they are no longer in their room)."""

    @property
    def won(self) -> bool:
        return GOAL in self.inventory


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """The rules' verdict on a command: allowed (with the new position) or refused (why)."""

    allowed: bool
    message: str
    position: Position


def items_here(position: Position) -> list[str]:
    """The items still lying in the player's room."""
    return [i for i in ROOMS[position.room]["items"] if i not in position.taken]


def describe(position: Position) -> str:
    """What the player sees: the room, its exits and (if there is light) its items."""
    room = ROOMS[position.room]
    lit = not room.get("dark") or LIGHT in position.inventory
    seen = ", ".join(items_here(position)) if lit else "nothing (it is too dark)"
    exits = ", ".join(room["exits"])
    return f"{room['description']} Exits: {exits}. You see: {seen or 'nothing'}."


def judge(position: Position, command: Command | None) -> Outcome:
    """Apply ``command`` to ``position`` if the map allows it; refuse it otherwise."""
    if command is None:
        return _refuse(position, "That is not something you can do.")
    if command.verb == "move":
        return _move(position, command.target)
    if command.verb == "take":
        return _take(position, command.target)
    return _use(position, command.target)


def _refuse(position: Position, message: str) -> Outcome:
    return Outcome(allowed=False, message=message, position=position)


def _move(position: Position, direction: str) -> Outcome:
    exits = ROOMS[position.room]["exits"]
    if direction not in exits:
        return _refuse(position, f"There is no exit {direction} from the {position.room}.")
    lock = f"{position.room}:{direction}"
    if lock in LOCKS and lock not in position.unlocked:
        return _refuse(position, f"The door {direction} is locked.")
    moved = replace(position, room=exits[direction])
    return Outcome(allowed=True, message=f"You go {direction} to the {moved.room}.", position=moved)


def _take(position: Position, item: str) -> Outcome:
    if item not in items_here(position):
        return _refuse(position, f"There is no {item} here to take.")
    if ROOMS[position.room].get("dark") and LIGHT not in position.inventory:
        return _refuse(position, f"It is too dark to find anything without the {LIGHT}.")
    taken = replace(position, inventory=(*position.inventory, item), taken=(*position.taken, item))
    return Outcome(allowed=True, message=f"You take the {item}.", position=taken)


def _use(position: Position, item: str) -> Outcome:
    if item not in position.inventory:
        return _refuse(position, f"You do not carry a {item}.")
    for lock, key in LOCKS.items():
        room, direction = lock.split(":")
        if key == item and room == position.room and lock not in position.unlocked:
            opened = replace(position, unlocked=(*position.unlocked, lock))
            return Outcome(
                allowed=True, message=f"The {item} unlocks the door {direction}.", position=opened
            )
    return _refuse(position, f"Using the {item} here does nothing.")
