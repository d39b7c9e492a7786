"""What pyproject.toml cannot say: the top-level ``lessons/`` folder ships inside the package.

The lessons stay at the top of the repository (where Binder, Colab and readers find them)
and are installed as ``ftkit/lessons/`` (``package_dir`` maps the one folder onto the
other), so that ``ftkit lessons`` finds them after a regular ``pip install``. Everything
else is in pyproject.toml.
"""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["ftkit*"]) + ["ftkit.lessons"], package_dir={"ftkit.lessons": "lessons"})
