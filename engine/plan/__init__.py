"""Plans: diff (``diff.build_plan``) → ``model.Plan`` (a frozen value, one canonical JSON) → renderers
(``render.render_text`` / ``render.render_markdown``); saved plans (``model.save_plan`` / ``load_plan``)."""
