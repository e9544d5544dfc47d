"""Who may do what on the OPC UA server: users from twinspect tokens or client certificates, role checks.

- A user name and password sign in when the password is a twinspect API token whose name is the
  user name (``twinspect tokens create --role ml --name plc-7``); the session then has that
  token's role. Wrong or revoked credentials: ``BadUserAccessDenied`` at activation.
- A client certificate listed in ``opcua.users`` signs in as its name and role.
- Anonymous sessions exist only with ``opcua.allow_anonymous`` (read, browse, subscribe).
- ``RoleRules`` is asyncua's permission hook, run on every request before it is served: method
  calls that change the line (``SelectRecipe``, ``Reset``) need the ``ml`` or ``admin`` role, else
  the whole call answers ``BadUserAccessDenied``; adding or deleting nodes is refused to everyone.
  It also remembers the caller of a method call (``caller()``), for the audit trail.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.crypto.permission_rules import USER_TYPES, PermissionRuleset, User, UserRole
from asyncua.ua.ua_binary import struct_from_binary

log = logging.getLogger(__name__)

CHANGERS = frozenset({"ml", "admin"})  # roles that may change the line (as PUT /lines/{id}/recipe)
Verify = Callable[[str, str], "tuple[str, str] | None"]  # (user name, password) -> (name, role), None: refused


@dataclass
class LineUser(User):
    """An asyncua user with its twinspect role (``anonymous`` for an anonymous session)."""

    twinspect_role: str = "anonymous"


_caller: contextvars.ContextVar[LineUser | None] = contextvars.ContextVar("opcua_caller", default=None)


def caller() -> LineUser | None:
    """The user of the method call being served (set by ``RoleRules`` in the request's own task)."""
    return _caller.get()


class LineUsers:
    """asyncua's user manager: tokens, trusted certificates, anonymous (see the module docstring)."""

    def __init__(self, verify: Verify, certificates: dict[bytes, tuple[str, str]], allow_anonymous: bool) -> None:
        self.verify, self.certificates, self.allow_anonymous = verify, certificates, allow_anonymous
        self.refused = 0

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username:
            found = self.verify(username, password or "")
            if found is None:
                self.refused += 1
                log.warning("opcua: user %r refused (wrong or revoked token, or another token's name)", username)
                return None
            return LineUser(role=UserRole.User, name=found[0], twinspect_role=found[1])
        if certificate is not None:
            der = certificate if isinstance(certificate, bytes) else None
            known = self.certificates.get(der) if der is not None else None
            if known is not None:
                return LineUser(role=UserRole.User, name=known[0], twinspect_role=known[1])
        if self.allow_anonymous:
            return LineUser(role=UserRole.Anonymous, name="anonymous", twinspect_role="anonymous")
        self.refused += 1
        return None


class RoleRules(PermissionRuleset):
    """asyncua's permission hook (see the module docstring)."""

    def __init__(self, protected: Iterable[ua.NodeId] = ()) -> None:
        self.allowed = {ua.NodeId(t) for t in USER_TYPES}  # type: ignore[arg-type]
        self.call = ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)  # type: ignore[arg-type]
        self.protected: set[ua.NodeId] = set(protected)

    def protect(self, method: ua.NodeId) -> None:
        self.protected.add(method)

    def check_validity(self, user: Any, action_type_id: Any, body: Any) -> bool:
        if action_type_id not in self.allowed:
            return False
        if action_type_id != self.call:
            return True
        who = user if isinstance(user, LineUser) else None
        _caller.set(who)
        try:
            params = struct_from_binary(ua.CallParameters, body.copy())
        except Exception:
            return True  # let the server answer the malformed request itself
        changes = any(m.MethodId in self.protected for m in params.MethodsToCall)
        return not changes or (who is not None and who.twinspect_role in CHANGERS)
