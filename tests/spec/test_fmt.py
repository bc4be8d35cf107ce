"""fmt: canonical, idempotent, and never changes what a spec means."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.spec.fmt import format_text
from engine.spec.loader import compose_documents, uses_template

REPO = Path(__file__).resolve().parents[2]


def _plain_specs() -> list[Path]:
    out = []
    for f in sorted((REPO / "tests" / "spec" / "fixtures").rglob("*.yaml")) + sorted((REPO / "integrations").glob("*.yaml")):
        try:
            text = f.read_text("utf-8")
        except UnicodeDecodeError:
            continue
        if not uses_template(text) and not compose_documents(text, "x")[1]:
            out.append(f)
    return out


@pytest.mark.parametrize("path", _plain_specs(), ids=lambda p: str(p.relative_to(REPO)))
def test_fmt_is_idempotent_and_keeps_meaning(path: Path) -> None:
    text = path.read_text("utf-8")
    once = format_text(text)
    assert format_text(once) == once
    assert list(yaml.safe_load_all(once)) == list(yaml.safe_load_all(text))


def test_canonical_order_and_indentation() -> None:
    text = (
        "spec:\n"
        "  modules:\n"
        "  - fields:\n"
        "    - direction: right-to-left\n"
        "      right: Customer_Type\n"
        "      left: cf.cf_customer_type\n"
        "    on_delete: {right: unlink, left: delete}\n"
        "    right: Contacts\n"
        "    left: contacts\n"
        "    name: contacts\n"
        "  right: {connection: bigin, app: bigin}\n"
        "  left: {connection: desk, app: zoho_desk}\n"
        "metadata: {description: x, name: a}\n"
        "kind: Integration\n"
        "apiVersion: syncform/v1\n"
    )
    assert format_text(text) == (
        "apiVersion: syncform/v1\n"
        "kind: Integration\n"
        "metadata: {name: a, description: x}\n"
        "spec:\n"
        "  left: {app: zoho_desk, connection: desk}\n"
        "  right: {app: bigin, connection: bigin}\n"
        "  modules:\n"
        "    - name: contacts\n"
        "      left: contacts\n"
        "      right: Contacts\n"
        "      on_delete: {left: delete, right: unlink}\n"
        "      fields:\n"
        "        - left: cf.cf_customer_type\n"
        "          right: Customer_Type\n"
        "          direction: right-to-left\n"
    )
