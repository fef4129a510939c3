"""The README's configuration table documents exactly what the commands accept."""

from __future__ import annotations

from pathlib import Path

from planner_core.commands.replay import REPLAY_ENV_FIELDS, REPLAY_FLAGS
from planner_core.commands.size import SIZE_ENV_FIELDS, SIZE_FLAGS
from planner_core.config import DYNAMO_ENV_VARS, ENV_PREFIX, FLAGS, PlannerConfig

README = Path(__file__).resolve().parents[1] / "README.md"
COMMANDS = {"size": (SIZE_FLAGS, SIZE_ENV_FIELDS), "replay": (REPLAY_FLAGS, REPLAY_ENV_FIELDS)}


def _default(field: str) -> str:
    value = PlannerConfig.model_fields[field].default
    value = getattr(value, "value", value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def config_table() -> str:
    """The table as the code defines it: one row per setting some command reads."""
    rows = ["| setting | flag | environment | default | `size` | `replay` |", "|---|---|---|---|---|---|"]
    unused = []
    flag_of = {f.field: f for f in FLAGS}
    for field in PlannerConfig.model_fields:
        cells = []
        for flags, env_fields in COMMANDS.values():
            how = [name for name, used in (("flag", field in flags), ("env", field in env_fields)) if used]
            cells.append(" + ".join(how) or "-")
        if cells == ["-"] * len(COMMANDS):
            unused.append(field)
            continue
        flag = flag_of.get(field)
        has_flag = flag is not None and any(field in flags for flags, _ in COMMANDS.values())
        names = ", ".join(f"`{n}`" for n in (flag.flag, *flag.aliases)) if flag is not None and has_flag else "-"
        env = [ENV_PREFIX + field.upper(), *(var for var, f in DYNAMO_ENV_VARS.items() if f == field)]
        rows.append(
            f"| `{field}` | {names} | {', '.join(f'`{v}`' for v in env)} "
            f"| {_default(field)} | {' | '.join(cells)} |"
        )
    rows.append("")
    rows.append(
        "Not read by `size` or `replay` (they configure the live planner's cluster and metrics): "
        + ", ".join(f"`{f}`" for f in unused)
        + "."
    )
    return "\n".join(rows)


def test_readme_configuration_table_matches_the_commands():
    text = README.read_text()
    assert config_table() in text, "regenerate the README table:\n\n" + config_table()


def test_every_flag_in_the_table_is_accepted_by_the_commands_it_names(capsys):
    from planner_core.cli import build_parser

    parser = build_parser()
    for command, (flags, _) in COMMANDS.items():
        for flag in FLAGS:
            if flag.field in flags:
                sub = parser._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
                assert flag.flag in sub._option_string_actions, (command, flag.flag)
