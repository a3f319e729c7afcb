"""The session's SQLite registry with challenger versions of the lightgbm model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests import challengers


@dataclass(frozen=True)
class Versions:
    """The challenger versions registered once for the session."""

    weaker: str
    gone: str
    raising: str


@pytest.fixture(scope="session")
def versions(sqlite_registry: str) -> Iterator[Versions]:
    """Register the three challengers; the alias is set per test and removed after it."""
    found = Versions(
        challengers.train_challenger(sqlite_registry),
        challengers.register_without_artifacts(sqlite_registry),
        challengers.register_raising(sqlite_registry),
    )
    challengers.set_challenger(sqlite_registry, None)
    return found


@pytest.fixture
def challenge(sqlite_registry: str, versions: Versions) -> Iterator[Versions]:
    """The alias is the test's to set; it is removed afterwards, whatever happened."""
    yield versions
    challengers.set_challenger(sqlite_registry, None)


@pytest.fixture(scope="session")
def good(sqlite_registry: str, versions: Versions) -> str:
    """A challenger close to the champion (its recipe, a few more trees), trained once when a
    test asks for it: its canary holds."""
    version = challengers.train_challenger(sqlite_registry, challengers.GOOD)
    challengers.set_challenger(sqlite_registry, None)
    return version
