"""A registry that was never written to is not created to learn that it holds no champion."""

from __future__ import annotations

from pathlib import Path

from rmreco.config import Settings
from rmreco.training.run import load_champions
from rmreco.training.tracking import store_exists


def test_only_a_missing_sqlite_file_is_a_store_that_holds_nothing(tmp_path: Path) -> None:
    there = tmp_path / "mlflow.db"
    there.write_bytes(b"")
    assert store_exists(f"sqlite:///{there}")
    assert not store_exists(f"sqlite:///{tmp_path / 'none.db'}")
    assert not store_exists(f"sqlite:///{tmp_path / 'none.db'}?timeout=5")
    assert store_exists("http://127.0.0.1:5000")
    assert store_exists("postgresql://u@h/db")


def test_champions_of_a_fresh_home_are_none_and_the_store_is_not_created(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    uri = settings.resolved_tracking_uri
    assert load_champions(["any-model"], settings=settings, tracking_uri=uri) == {}
    assert not store_exists(uri)
