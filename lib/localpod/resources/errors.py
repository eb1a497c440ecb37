"""The one error every resource rule raises: which field is wrong, and what to do about it.

A backend does not know HTTP: it says *what kind* of refusal this is (``kind``) and each API turns
that into its own wire format (REST v2: a problem document whose status follows the kind; GraphQL:
an entry in ``errors``). Several problems found in one check travel together (``all``), because the
REST API lists every field problem at once so a caller can fix them in one go, while GraphQL
reports the first.

The same rule is worded differently by each API (field names differ: ``workers.max`` against
``workersMax``), and users already read those sentences, so each backend keeps, beside the rule,
one :class:`Wording` per API. A rule is still written once; only its sentence is chosen by API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["invalid", "unsupported", "not_found", "conflict"]
"""``invalid``: a value breaks a rule (REST 400, every problem listed); ``unsupported``: a request
localpod or the resource cannot take at all, e.g. a load-balancer endpoint (REST 422);
``not_found``: a referenced resource does not exist (REST 404); ``conflict``: the resource's state
forbids the change, e.g. deleting a template an endpoint uses (REST 400, one sentence)."""


class ResourceError(Exception):
    """A refusal by a resource rule. ``field`` is the request field in the calling API's own
    spelling (empty when the refusal is about the resource as a whole)."""

    def __init__(self, field: str, message: str, kind: Kind = "invalid") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.kind: Kind = kind
        self.more: tuple[ResourceError, ...] = ()

    @property
    def all(self) -> tuple[ResourceError, ...]:
        """This problem and the others found in the same check, in the order they were found."""
        return (self, *self.more)

    @classmethod
    def raise_all(cls, errors: Sequence[ResourceError]) -> None:
        """Raise the first of ``errors`` carrying the rest; nothing when there are none."""
        if errors:
            first = errors[0]
            first.more = tuple(errors[1:])
            raise first


@dataclass(frozen=True)
class Wording:
    """How one API words a family's refusals: rule name -> (field template, message template),
    both filled in with :meth:`str.format` from the rule's values."""

    api: str
    texts: Mapping[str, tuple[str, str]]

    def error(self, rule: str, kind: Kind = "invalid", /, **values: object) -> ResourceError:
        field, message = self.texts[rule]
        return ResourceError(field.format(**values), message.format(**values), kind)
