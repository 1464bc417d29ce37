"""Many RMs recording feedback at once through ``rmreco serve --workers 2``, on SQLite and
PostgreSQL: 50 concurrent clients x 40 posts make exactly 2,000 rows, with a tenth of the posts
retried under their ``Idempotency-Key`` (as a client does that did not hear the answer) and
every retry answered with the first answer, never stored twice (a 503 of a busy database is sent
again with its key, as a client does). Then, across both workers: ten posts with one key at
once make one row, and contradicting outcomes posted at once leave one final outcome."""

from __future__ import annotations

import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from served_bank import serve_workers
from sqlalchemy import create_engine, func, insert, select

from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db import repository, schema
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.serving.security import issue_key

pytestmark = [pytest.mark.slow, pytest.mark.serial]

BIN = Path(sys.executable).parent
CLIENTS = 50
POSTS = 40
OUTCOMES = ("accepted", "declined", "not_interested", "offered")


def _book(db_url: str, tiny_bank: Path, home: Path) -> tuple[list[str], list[str]]:
    """The tiny bank, one brm user per concurrent client, and CLIENTS x POSTS recommendations
    of RM01's client C001; returns the keys and the recommendation ids."""
    upgrade(db_url)
    engine = create_engine_for(db_url)
    try:
        ingest_folder(tiny_bank, engine, settings=Settings(home=home, database_url=db_url))
        keys = []
        with transaction(session_factory(engine)) as session:
            for i in range(CLIENTS):
                issued = issue_key()
                repository.add_user(
                    session,
                    name=f"brm{i}",
                    role="brm",
                    rm_id="RM01",
                    key_prefix=issued.prefix,
                    key_hash=issued.hash,
                )
                keys.append(issued.key)
        # one recommendation per post, and two for the simultaneous posts at the end
        ids = [str(uuid.uuid4()) for _ in range(CLIENTS * POSTS + 2)]
        with engine.begin() as c:
            c.execute(
                insert(schema.Recommendation),
                [
                    {
                        "id": rec,
                        "created_at": schema.utcnow(),
                        "user_id": 1,
                        "client_id": "C001",
                        "kind": "cross_sell",
                        "product_code": "TERM_LOAN",
                        "rank": 1,
                        "model_versions": {},
                        "output": {},
                    }
                    for rec in ids
                ],
            )
    finally:
        engine.dispose()
    return keys, ids


def _post_until_answered(
    http: httpx.Client, rec: str, body: dict[str, str], key: dict[str, str]
) -> httpx.Response:
    """Post as a well-behaved client does: a 503 (the database busier than the lock timeout
    allows, as on a loaded machine) is sent again with the same key, as its Retry-After
    invites."""
    for _ in range(20):
        r = http.post(f"/v1/recommendations/{rec}/feedback", json=body, headers=key)
        if r.status_code != 503:
            return r
        assert r.headers["Retry-After"]
        time.sleep(0.2)
    raise AssertionError(f"still 503 after 20 tries: {r.text}")


def test_fifty_clients_posting_forty_feedbacks_through_two_workers_store_exactly_2000_rows(
    db_url: str, tiny_bank: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    keys, ids = _book(db_url, tiny_bank, home)
    settings = {"RMRECO_HOME": str(home), "RMRECO_DATABASE_URL": db_url}
    with serve_workers(tmp_path, settings) as base:

        def client(i: int) -> list[tuple[int, dict[str, object], bool]]:
            answers = []
            headers = {"Authorization": f"Bearer {keys[i]}"}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                for j in range(POSTS):
                    rec = ids[i * POSTS + j]
                    body = {"outcome": OUTCOMES[j % len(OUTCOMES)]}
                    key = {"Idempotency-Key": f"{i}-{j}"}
                    for attempt in range(2 if j % 10 == 0 else 1):
                        r = _post_until_answered(http, rec, body, key)
                        answers.append((r.status_code, r.json(), attempt > 0))
            return answers

        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            answers = [a for batch in pool.map(client, range(CLIENTS)) for a in batch]
            # ten posts with one key at once, and contradicting outcomes at once, across both
            # workers
            same_key, contested = ids[-2], ids[-1]

            def post(rec: str, outcome: str, key: str | None, who: int) -> httpx.Response:
                auth = {"Authorization": f"Bearer {keys[who]}"}
                with httpx.Client(base_url=base, headers=auth, timeout=60) as http:
                    sent = {} if key is None else {"Idempotency-Key": key}
                    return _post_until_answered(http, rec, {"outcome": outcome}, sent)

            keyed = list(pool.map(lambda _: post(same_key, "offered", "once", 0), range(10)))
            outcomes = ["accepted", "declined", "not_interested"] * 7
            raced = list(
                pool.map(lambda n: post(contested, outcomes[n], None, n), range(len(outcomes)))
            )
    assert len(answers) == CLIENTS * POSTS + CLIENTS * POSTS // 10
    assert {status for status, _, _ in answers} == {201}, [a for a in answers if a[0] != 201][:3]
    engine = create_engine(create_engine_for(db_url).url)
    try:
        with engine.connect() as c:
            rows = c.execute(select(func.count()).select_from(schema.Feedback)).scalar_one()
            per_rec = c.execute(
                select(func.count(func.distinct(schema.Feedback.recommendation_id)))
            ).scalar_one()
    finally:
        engine.dispose()
    assert rows == CLIENTS * POSTS + 2 == 2002
    assert per_rec == 2002
    assert {r.status_code for r in keyed} == {201}, [r.text for r in keyed]
    assert len({r.json()["feedback_id"] for r in keyed}) == 1
    assert sorted(r.status_code for r in raced).count(201) == 1
    assert {r.status_code for r in raced} <= {200, 201, 409}, [r.text for r in raced]
    # every retry was answered with the first answer's feedback id
    first = {}
    for _, body, is_retry in answers:
        rec = body["recommendation_id"]
        if is_retry:
            assert body == first[rec]
        else:
            first[rec] = body
