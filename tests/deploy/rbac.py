"""Compatibility re-export: the RBAC authorizer now lives in lab/apiserver/rbac.py (the lab enforces it).

Kept for tests outside tests/deploy that still import it from here.
"""

from lab.apiserver.rbac import RbacAuthorizer, rule_allows, service_account_groups, service_account_user

__all__ = ["RbacAuthorizer", "rule_allows", "service_account_groups", "service_account_user"]
