"""The demo workflow on a models folder without specs (nothing to train): a bank generated once,
migrated and loaded, snapshots refreshed, demo users tied to RMs of their segments (a PRM to
personal clients), and keys that keep working from one run to the next (a second `make demo`
must not lock out the users of the first, still serving), new only where the old one no longer
works."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from rmreco.config import Settings
from rmreco.db import repository as repo
from rmreco.db import schema
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.demo import KEYS_FILE, prepare_demo
from rmreco.modeling.spec import load_cross_sell_spec
from rmreco.serving.security import key_matches, key_prefix

pytestmark = pytest.mark.slow  # an MLflow store and two loads of a bank


def test_demo_loads_a_bank_and_keeps_the_demo_users_keys_working(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    settings = Settings(
        home=tmp_path / "home",
        models_dir=models,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    steps: list[str] = []
    first = prepare_demo(settings, clients=300, base_url="http://127.0.0.1:9", on_step=steps.append)

    assert first.bank == tmp_path / "home" / "demo-bank"
    assert (first.bank / "clients.parquet").is_file()
    assert any(s.startswith("generating") for s in steps)
    assert first.models == ()
    assert first.clients_with_features > 0
    assert first.readiness_url == "http://127.0.0.1:9/readyz"
    assert {(u.name, u.role) for u in first.users} == {
        ("demo-admin", "admin"),
        ("demo-brm", "brm"),
        ("demo-crm", "crm"),
        ("demo-prm", "prm"),
    }
    assert first.user("demo-admin").rm_id is None
    assert all(user.is_new_key for user in first.users)
    assert first.keys_file == tmp_path / "home" / KEYS_FILE
    assert stat.S_IMODE(first.keys_file.stat().st_mode) == 0o600, "only its owner reads the keys"

    steps.clear()
    second = prepare_demo(settings, clients=300, on_step=steps.append)
    assert not any(s.startswith("generating") for s in steps), "the bank is generated once"

    engine = create_engine_for(settings.resolved_database_url)
    try:
        with transaction(session_factory(engine)) as session:
            for name, segment in (
                ("demo-brm", "sme"),
                ("demo-crm", "corporate"),
                ("demo-prm", "personal"),
            ):
                user = second.user(name)
                assert user.rm_id is not None
                served = session.scalars(
                    select(schema.Client.segment).where(schema.Client.rm_id == user.rm_id)
                ).all()
                assert served, name
                assert set(served) == {segment}, f"{name}'s portfolio holds {set(served)}"
            for sample_id, name in (
                (second.sample_client, "demo-brm"),
                (second.sample_corporate_client, "demo-crm"),
                (second.sample_personal_client, "demo-prm"),
            ):
                assert sample_id is not None
                sample = session.get(schema.Client, sample_id)
                assert sample is not None
                assert sample.rm_id == second.user(name).rm_id
            for user in second.users:
                assert user.key == first.user(user.name).key, "the first run's key keeps working"
                assert not user.is_new_key
                prefix = key_prefix(user.key)
                assert prefix is not None
                stored = repo.user_by_key_prefix(session, prefix)
                assert stored is not None
                assert stored.name == user.name
                assert not stored.is_revoked
                assert key_matches(user.key, stored.api_key_hash)
            # a key that no longer opens its user is replaced, the others are kept
            assert repo.revoke_user(session, "demo-crm", datetime.now(UTC))

        third = prepare_demo(settings, clients=300)
        crm = third.user("demo-crm")
        assert crm.is_new_key
        assert crm.key != second.user("demo-crm").key
        assert {u.name for u in third.users if not u.is_new_key} == {
            "demo-admin",
            "demo-brm",
            "demo-prm",
        }
        with transaction(session_factory(engine)) as session:
            stored = repo.user_by_key_prefix(session, key_prefix(crm.key) or "")
            assert stored is not None
            assert not stored.is_revoked
            assert key_matches(crm.key, stored.api_key_hash)

        # without the file, the keys cannot be shown again: every user gets a new one
        assert third.keys_file is not None
        third.keys_file.unlink()
        fourth = prepare_demo(settings, clients=300)
        assert all(u.is_new_key and u.key != third.user(u.name).key for u in fourth.users)
        with transaction(session_factory(engine)) as session:
            for user in third.users:
                assert repo.user_by_key_prefix(session, key_prefix(user.key) or "") is None
    finally:
        engine.dispose()


def test_a_demo_bank_without_personal_clients_skips_the_personal_model(tmp_path: Path) -> None:
    """A demo bank generated before banks had personal clients is reused as it is: the personal
    cross-sell spec is not trained (the summary says why) and the demo PRM has no portfolio."""
    from rmreco.synthetic import generate_bank

    models = tmp_path / "models"
    models.mkdir()
    spec = Path(__file__).resolve().parents[2] / "models" / "personal_cross_sell.yaml"
    (models / spec.name).write_text(spec.read_text())
    home = tmp_path / "home"
    generate_bank(home / "demo-bank", n_clients=200, n_months=24, seed=1)  # no persons
    settings = Settings(
        home=home, models_dir=models, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    steps: list[str] = []
    summary = prepare_demo(settings, on_step=steps.append)

    assert not any(s.startswith("generating") for s in steps)
    (outcome,) = summary.models
    assert outcome.name == load_cross_sell_spec(spec).name
    assert not outcome.was_trained
    assert "no personal client" in outcome.skipped
    assert summary.user("demo-prm").rm_id is None
    assert summary.sample_personal_client is None
    assert summary.user("demo-brm").rm_id is not None
