"""Roles and what each may do: one table, checked on every route.

Example:
    >>> can(Role.CLINICIAN, Permission.ANALYZE), can(Role.AUDITOR, Permission.ANALYZE)
    (True, False)
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ROLE_PERMISSIONS", "Permission", "Role", "can"]


class Role(StrEnum):
    """Who a user is to the service."""

    CLINICIAN = "clinician"
    RESEARCHER = "researcher"
    ADMIN = "admin"
    AUDITOR = "auditor"


class Permission(StrEnum):
    """One kind of action a route performs."""

    STUDY_READ = "study_read"
    STUDY_WRITE = "study_write"
    STUDY_DELETE = "study_delete"
    ANALYZE = "analyze"
    TEXT = "text"
    ASSISTANT = "assistant"
    MODELS_READ = "models_read"
    MODELS_ADMIN = "models_admin"
    USERS_ADMIN = "users_admin"
    AUDIT_READ = "audit_read"
    METRICS_READ = "metrics_read"
    PHI_READ = "phi_read"
    PACS_ADMIN = "pacs_admin"


_CLINICAL = frozenset(
    {
        Permission.STUDY_READ,
        Permission.STUDY_WRITE,
        Permission.STUDY_DELETE,
        Permission.ANALYZE,
        Permission.TEXT,
        Permission.ASSISTANT,
        Permission.MODELS_READ,
        Permission.PHI_READ,
    }
)

#: Clinicians work with their patients' studies; researchers do the same on (de-identified)
#: data but cannot delete and never see identifying header values (PHI_READ: names, IDs,
#: dates in the tag browser); admins run the service and may do everything (PACS_ADMIN, the
#: /v1/pacs routes, is theirs alone); auditors read the audit trail, metrics and the model
#: registry, and never see images or results.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.CLINICIAN: _CLINICAL,
    Role.RESEARCHER: _CLINICAL - {Permission.STUDY_DELETE, Permission.PHI_READ},
    Role.ADMIN: frozenset(Permission),
    Role.AUDITOR: frozenset(
        {Permission.AUDIT_READ, Permission.METRICS_READ, Permission.MODELS_READ}
    ),
}


def can(role: Role | str, permission: Permission) -> bool:
    """Whether ``role`` grants ``permission`` (an unknown role grants nothing)."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False
