"""Packaging glue that pyproject.toml cannot express: the top-level ``checkpoints/`` folder
ships inside the wheel as the data package ``zoo.checkpoints``, so `zoo.load` of a bundled
model works offline after a plain ``pip install``."""

from setuptools import find_packages, setup


setup(
    packages=[*find_packages(include=["zoo", "zoo.*"]), "zoo.checkpoints"],
    package_dir={"zoo.checkpoints": "checkpoints"},
    # here, not in pyproject.toml: a [tool.setuptools.package-data] table there replaces this argument whole
    package_data={"zoo": ["_onednn/*.cc", "_onednn/*.h"], "zoo.checkpoints": ["**/*"]},
)
