"""Package discovery: library packages are found, `cli/` is mapped to `csmoe_cli`."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(
            include=["csmoe_common", "csmoe_data", "csmoe_data.*", "csmoe_model", "csmoe_model.*"]
        ),
        "csmoe_cli",
    ],
)
