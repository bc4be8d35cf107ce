"""Specs: loading (Jinja2 + YAML with line marks), validation (JSON Schema + semantic checks), model."""
