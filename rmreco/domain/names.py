"""This module owns the names that several parts of rmreco must spell alike: the registry's
aliases and the users' roles. Registered model names are not here: each comes from its spec
(``name:`` in the YAML files of the models folder)."""

from __future__ import annotations

from enum import StrEnum

#: The registry alias of the version in production, and of the latest version evaluated and
#: not promoted. Stages are deprecated in MLflow; rmreco moves aliases only.
CHAMPION = "champion"
CHALLENGER = "challenger"


class UserRole(StrEnum):
    """Roles of the service's users."""

    BRM = "brm"
    CRM = "crm"
    PRM = "prm"
    DATA_SCIENTIST = "data_scientist"
    ADMIN = "admin"


USER_ROLES: tuple[str, ...] = tuple(UserRole)
#: Roles that own a portfolio: a user of these roles is tied to one relationship manager
#: (business, corporate and personal RMs, the roles of ``relationship_managers``).
RM_ROLES: tuple[str, ...] = (UserRole.BRM, UserRole.CRM, UserRole.PRM)
