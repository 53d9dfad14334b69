"""Which verified payloads are a platform admin: `role: platform_admin`, no tenant, a one-word subject."""

from __future__ import annotations

import uuid

import pytest

from auth.errors import AuthError
from auth.platform import platform_admin_of

TENANT = str(uuid.uuid4())


def test_a_platform_admin_payload_names_its_operator_for_the_audit_log():
    admin = platform_admin_of({"sub": "alice@ops", "role": "platform_admin", "exp": 1})
    assert admin.actor == "platform:admin:alice@ops"


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"sub": str(uuid.uuid4()), "tenant_id": TENANT, "role": "admin"}, 403),  # a tenant's token: real, not enough
        ({"sub": "alice", "tenant_id": TENANT, "role": "platform_admin"}, 401),
        ({"sub": "alice", "role": "PLATFORM_ADMIN"}, 401),
        ({"sub": "alice", "role": "admin"}, 401),
        ({"role": "platform_admin"}, 401),
        ({"sub": "alice smith", "role": "platform_admin"}, 401),
        ({"sub": "x" * 129, "role": "platform_admin"}, 401),
        ({"sub": 7, "role": "platform_admin"}, 401),
    ],
)
def test_anything_else_is_refused(payload, status):
    with pytest.raises(AuthError) as refused:
        platform_admin_of(payload)
    assert refused.value.status == status
    assert refused.value.code == ("FORBIDDEN" if status == 403 else "UNAUTHENTICATED")
