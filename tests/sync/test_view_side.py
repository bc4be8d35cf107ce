"""A module's ``filter: {view}`` selects records on one side only: the CRM list view of seeds 003/004."""

from __future__ import annotations

from engine.spec.model import Integration, IntegrationSide
from engine.sync.engine import view_side


def _integration(left: str, right: str) -> Integration:
    return Integration(name="x", left=IntegrationSide(left, "l"), right=IntegrationSide(right, "r"), modules=())


def test_the_view_belongs_to_the_crm_side_of_bigin_and_crm():
    assert view_side(_integration("bigin", "zoho_crm")) == "right"
    assert view_side(_integration("zoho_crm", "bigin")) == "left"


def test_the_view_belongs_to_crm_or_bigin_whichever_is_there():
    assert view_side(_integration("zoho_desk", "zoho_crm")) == "right"
    assert view_side(_integration("zoho_desk", "bigin")) == "right"
    assert view_side(_integration("zoho_bookings", "zoho_desk")) is None
