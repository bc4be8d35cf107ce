"""The one generator of N-integration repositories, shared by ``python -m tests.bench --scenario plan``,
``scripts/bench_plan.py`` and ``scripts/bench_validate.py`` (so the three time the same specs).

    write_repo(root, count) -> Path   # root/integrations/: connections.yaml + one file per integration

Integration ``region-NNNN`` syncs Bigin ↔ Zoho CRM: contacts (two match keys, six fields) and
companies (three fields), between its own pair of sandbox connections (two integrations between the
same pair would be a loop, which validation rejects). With ``shared_left=True`` integrations 2t and
2t+1 share the Bigin connection ``bigin{t}`` (a star, not a loop: the loop check has a graph to walk)
and every second one runs right-to-left. Connections are ``sandbox: {seed: 0}``: applying the
repository creates empty sandboxes.
"""

from __future__ import annotations

from pathlib import Path

INTEGRATION = """\
# Integration {i}: sales of region {i}
apiVersion: syncform/v1
kind: Integration
metadata:
  name: region-{i:04d}
  description: Sales of region {i}
spec:
  left: {{app: bigin, connection: bigin{left}}}
  right: {{app: zoho_crm, connection: crm{i}}}
  modules:
    - name: contacts
      left: Contacts
      right: Contacts
      direction: {direction}
      match: [{{left: Email, right: Email}}, {{left: Mobile, right: Mobile}}]
      fields:
        - {{left: First_Name, right: First_Name}}
        - {{left: Last_Name, right: Last_Name}}
        - {{left: Email, right: Email}}
        - {{left: Phone, right: Phone}}
        - {{left: Mobile, right: Mobile}}
        - {{left: Title, right: Title}}
    - name: companies
      left: Accounts
      right: Accounts
      direction: {direction}
      match: [{{left: Account_Name, right: Account_Name}}]
      fields:
        - {{left: Account_Name, right: Account_Name}}
        - {{left: Phone, right: Phone}}
        - {{left: Website, right: Website}}
"""

CONNECTION = """\
---
apiVersion: syncform/v1
kind: Connection
metadata: {{name: {name}}}
spec: {{app: {app}, sandbox: {{seed: 0}}}}
"""

# a one-line edit of one integration that plans exactly one change (scripts/bench_plan.py)
EDIT_FROM = "        - {left: Title, right: Title}\n"
EDIT_TO = "        - {left: Title, right: Title, direction: left-to-right}\n"


def integration_file(root: Path, i: int) -> Path:
    return root / "integrations" / f"region-{i:04d}.yaml"


def write_repo(root: Path, count: int, *, shared_left: bool = False) -> Path:
    """Write ``count`` integrations (and their connections) under ``root/integrations``; returns it."""
    specs = root / "integrations"
    specs.mkdir(parents=True, exist_ok=True)
    lefts = range((count + 1) // 2) if shared_left else range(count)
    conns = [CONNECTION.format(name=f"bigin{c}", app="bigin") for c in lefts]
    conns += [CONNECTION.format(name=f"crm{i}", app="zoho_crm") for i in range(count)]
    (specs / "connections.yaml").write_text("".join(conns).lstrip("-\n"))
    for i in range(count):
        direction = "right-to-left" if shared_left and i % 2 else "two-way"
        integration_file(root, i).write_text(
            INTEGRATION.format(i=i, left=i // 2 if shared_left else i, direction=direction))
    return specs
