"""SNAS_HOME has one rule: unset or empty means ~/.snas, for the store and the experiments."""

from __future__ import annotations

from pathlib import Path

import pytest

from snas.paths import default_storage_path, snas_home
from snas.store import default_store_url


@pytest.mark.parametrize("value", [None, ""])
def test_unset_or_empty_home_is_the_users_snas_folder(monkeypatch, tmp_path, value):
    monkeypatch.setenv("HOME", str(tmp_path))
    if value is None:
        monkeypatch.delenv("SNAS_HOME", raising=False)
    else:
        monkeypatch.setenv("SNAS_HOME", value)
    home = tmp_path / ".snas"
    assert snas_home() == home
    assert default_storage_path() == home / "experiments"
    assert default_store_url() == f"sqlite:///{home / 'results.db'}"


def test_home_is_read_when_asked_not_at_import(monkeypatch, tmp_path):
    monkeypatch.setenv("SNAS_HOME", str(tmp_path / "a"))
    assert default_storage_path() == tmp_path / "a" / "experiments"
    monkeypatch.setenv("SNAS_HOME", str(tmp_path / "b"))
    assert Path(default_store_url().removeprefix("sqlite:///")).parent == tmp_path / "b"
