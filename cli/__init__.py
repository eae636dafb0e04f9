"""Thin Typer command-line apps (installed as ``csmoe_cli``): ``csmoe-data`` and ``csmoe``.

Commands parse options and call typed library functions; no logic lives in command bodies.
"""
