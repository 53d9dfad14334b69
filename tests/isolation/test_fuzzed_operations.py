"""Generated operations, with both tenants' ids as arguments, never cross from one tenant to the other.

Every root field and mutation of the live schema is generated with arguments naming rows of
both tenants and sent with the acting tenant's credential (mostly ADMIN, so every mutation
may run). No response may hold the other tenant's ids, tracking numbers, cursors, names,
emails or phones, none may be a server error, and the other tenant's rows, checksummed as
the owner, must end as they began. `TENANTQL_FUZZ_EXAMPLES` sets the count (300 by default).
"""

from __future__ import annotations

from typing import Any

import graphql
import pytest

from auth.tenant import Role
from tests.isolation.fuzz import IsolationFuzz, fuzz_tenants, graphql_sender
from tests.isolation.strategies import ID_ARGUMENTS, ID_INPUT_FIELDS, PROFILE, id_fields_of, root_fields

OTHERS_OWN_VIEW = """
query {
  viewer { tenant { id slug name } }
  customers(first: 3) { edges { cursor node { id name email phone } } }
  drivers(first: 3) { edges { node { id name phone vehicle { id plate } } } }
  shipments(first: 3) { edges { node { id trackingNumber origin events(last: 1) { id location note } } } }
  users { id email name }
  apiKeys { id prefix }
}
"""


async def test_every_id_argument_of_the_schema_is_drawn_from_both_tenants(services: Any) -> None:
    arguments, inputs = id_fields_of(graphql.build_schema(services.schema.as_str()))
    assert arguments == set(ID_ARGUMENTS)
    assert inputs == set(ID_INPUT_FIELDS)


async def test_the_check_finds_the_other_tenants_data_in_its_own_responses(client, services, owner_engine, make_tenant):
    """The control: what the other tenant reads about itself fails the check made for the actor."""
    tenants = await fuzz_tenants(make_tenant, owner_engine)
    fuzz = IsolationFuzz(tenants, owner_engine, services.schema.as_str(), graphql_sender(client, tenants.other))

    response = await fuzz.send(OTHERS_OWN_VIEW, Role.ADMIN)

    assert response.status_code == 200 and "errors" not in response.json(), response.text
    found = [secret for secret in tenants.secrets if secret in response.text]
    assert tenants.other.slug in found and any(number in found for number in tenants.other.tracking_numbers)
    with pytest.raises(AssertionError, match="the response holds the other tenant's"):
        fuzz.check(OTHERS_OWN_VIEW, Role.ADMIN, response)


async def test_generated_operations_never_show_or_change_the_other_tenants_rows(
    client, services, owner_engine, make_tenant
):
    tenants = await fuzz_tenants(make_tenant, owner_engine)
    sdl = services.schema.as_str()
    fuzz = IsolationFuzz(tenants, owner_engine, sdl, graphql_sender(client, tenants.actor))

    tally = await fuzz.run(PROFILE.max_examples)

    print(f"isolation fuzz: {tally}")
    assert tally.examples >= PROFILE.max_examples
    assert tally.executed > tally.examples / 2, tally  # cost, depth and role refusals stay a minority
    assert tally.naming_other >= 0.3 * tally.examples, tally
    assert set(root_fields(graphql.build_schema(sdl))) <= set(tally.roots), tally.roots
