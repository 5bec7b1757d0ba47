"""Team mode on real services: a project whose metadata is in PostgreSQL (Debian's postgresql 15, started on
loopback for this module) and whose image bytes are in S3 (moto's server on loopback). The oracle is the same
work on a plain SQLite project: counts, health findings, a version's export and the project's export must be
the same to the byte. Then the things only a shared server has: gc reading S3's LastModified, writers from two
processes taking turns, and one clear line when the server, the driver or the bucket is not there."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3  # with moto[server] and s3fs in the test extras
import psycopg  # team mode's driver (visionloop[team])
import pytest
from typer.testing import CliRunner
from vl_services import free_port, stop_group

from visionloop.cli.main import app
from visionloop.store import Store

BUCKET = "visionloop-team"
RECIPE = {"schema": 1, "seed": 7, "split": {"mode": "random", "ratios": {"train": 0.7, "valid": 0.2, "test": 0.1}},
          "preprocess": {"resize": {"width": 256, "height": 256, "mode": "fit"}},
          "augment": {"multiplier": 2, "flip": {"horizontal": True}}}


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _wait(what: str, ready, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds  # a slow shared machine; not a timing assertion
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not answer in {seconds:g} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on loopback (trust auth, user vl); yields new_database() → a SQLAlchemy URL."""
    initdb, server = _pg_bin("initdb"), _pg_bin("postgres")
    if not initdb or not server:
        pytest.fail("PostgreSQL is missing: apt-get install -y postgresql (.ci/run does)")
    # not under pytest's temp folder: root's is closed to other users, and postgres refuses to run as root
    base = Path(tempfile.mkdtemp(prefix="visionloop-postgres-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # as the Debian package's user
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    data, log = base / "data", base / "server.log"
    made = subprocess.run([*run_as, initdb, "-D", str(data), "-U", "vl", "--auth=trust", "-E", "UTF8",
                           "--no-sync"], capture_output=True, text=True)
    if made.returncode:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed ({made.returncode}): {made.stderr[-2000:]}")
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([*run_as, server, "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                                 "-k", str(base), "-c", "fsync=off"], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    admin = f"host=127.0.0.1 port={port} user=vl dbname=postgres"

    def ready() -> bool:
        try:
            psycopg.connect(admin, connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    numbers = iter(range(1, 1000))

    def new_database() -> str:
        name = f"project{next(numbers)}"
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://vl@127.0.0.1:{port}/{name}"

    try:
        _wait("postgres", ready, proc, log)
        yield new_database
    finally:
        stop_group(proc)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on loopback, with the environment s3fs and boto3 read; yields a boto3 client."""
    base = tmp_path_factory.mktemp("moto")
    port, log = free_port(), base / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    client = boto3.client("s3")

    def ready() -> bool:
        try:
            client.list_buckets()
            return True
        except Exception:  # noqa: BLE001 - botocore's connection errors while the server starts
            return False

    try:
        _wait("moto_server", ready, proc, log)
        client.create_bucket(Bucket=BUCKET)
        yield client
    finally:
        stop_group(proc)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
    return sorted(o["Key"][len(prefix) + 1:] for p in pages for o in p.get("Contents", []))


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_raccoon_project_on_postgres_and_s3_is_the_sqlite_one(postgres, s3, raccoon, tmp_path):
    from visionloop.health import check
    from visionloop.ingest import export_dataset, import_dataset
    from visionloop.versions import create_version, export_version

    team = Store.init(tmp_path / "team", db_url=postgres(), blob_url=f"s3://{BUCKET}/raccoon")
    solo = Store.init(tmp_path / "solo")
    with team, solo:
        assert team.engine.dialect.name == "postgresql" and team.blobs.location("ab" * 32).startswith("s3://")
        for store in (team, solo):
            imp = import_dataset(store, raccoon)
            assert (imp.counts["images_added"], imp.counts["annotations_added"]) == (200, 217)
        stats = team.stats().to_json()
        assert stats == solo.stats().to_json()
        assert (stats["images"], stats["annotations"], stats["blobs"]) == (200, 217, 196)
        # the image bytes are in the bucket, each under its own sha256, and nowhere on disk
        stored = _keys(s3, "raccoon")
        wanted = sorted({hashlib.sha256(p.read_bytes()).hexdigest() for p in (raccoon / "images").glob("*.jpg")})
        assert [k.replace("/", "") for k in stored] == wanted and len(wanted) == 196
        assert not (tmp_path / "team" / "blobs").exists()

        found = {f.check: f.count for f in check(team, workers=1).findings}
        assert found == {f.check: f.count for f in check(solo, workers=1).findings}
        assert found["exact_duplicates"] == 4  # 200 photos, 196 distinct files

        made = {}
        for store, name in ((team, "team"), (solo, "solo")):
            made[name] = create_version(store, RECIPE, workers=0)
            export_version(store, made[name].name, tmp_path / f"{name}-version", format="coco")
            export_dataset(store, tmp_path / f"{name}-voc", format="voc")
        assert made["team"].counts == made["solo"].counts
        version = _tree(tmp_path / "team-version")
        assert version == _tree(tmp_path / "solo-version") and len(version) > 200
        assert _tree(tmp_path / "team-voc") == _tree(tmp_path / "solo-voc")


def test_gc_on_s3_keeps_young_blobs_and_removes_old_unreferenced_ones(postgres, s3, voc_subset, tmp_path):
    from visionloop.ingest import import_dataset, undo_batch
    from visionloop.store.gc import collect

    with Store.init(tmp_path / "p", db_url=postgres(), blob_url=f"s3://{BUCKET}/gc") as store:
        import_dataset(store, voc_subset(tmp_path / "a", [1, 2, 3]))
        kept = _keys(s3, "gc")
        undo_batch(store, import_dataset(store, voc_subset(tmp_path / "b", [4, 5])).batch_id)
        sizes = sum((tmp_path / "b" / "images" / f"raccoon-{n}.jpg").stat().st_size for n in (4, 5))
        assert len(_keys(s3, "gc")) == 5
        # S3 lists LastModified, not mtime: the two blobs are seconds old, and a young blob may be an import's
        young = collect(store)
        assert (young.files_removed, young.kept_recent, young.rows_removed) == (0, 2, 2)
        assert len(_keys(s3, "gc")) == 5
        dry = collect(store, dry_run=True, min_age=0)
        assert dry.files_removed == 2 and len(_keys(s3, "gc")) == 5
        done = collect(store, min_age=0)
        assert (done.files_removed, done.bytes_removed, done.rows_removed) == (2, sizes, 0)
        assert _keys(s3, "gc") == kept and store.stats().images == 3


def test_writers_on_postgres_take_turns_and_a_long_wait_is_one_line(postgres, s3, tmp_path, monkeypatch):
    from sqlalchemy import text

    from visionloop.store.locking import ProjectLocked

    url = postgres()
    with Store.init(tmp_path / "p", db_url=url, blob_url=f"s3://{BUCKET}/locks") as first:
        other = Store.open(tmp_path / "p")
        try:
            monkeypatch.setenv("VISIONLOOP_LOCK_TIMEOUT", "1")
            with first.engine.begin() as conn:
                conn.execute(text("DELETE FROM blob WHERE 1 = 0"))  # holds the project's write lock until commit
                t0 = time.monotonic()
                with pytest.raises(ProjectLocked) as e, other.engine.begin() as c2:
                    c2.execute(text("DELETE FROM blob WHERE 1 = 0"))
                waited = time.monotonic() - t0
                assert "the project database postgresql+psycopg://vl@127.0.0.1" in str(e.value)
                assert f"was held by pid {conn.execute(text('SELECT pg_backend_pid()')).scalar()} on " in str(e.value)
                assert waited >= 0.9  # it waited for the lock (no upper bound asserted: a shared machine)
                # readers do not wait
                with other.engine.connect() as c3:
                    assert c3.execute(text("SELECT count(*) FROM image")).scalar() == 0
            # the first committed: the second writes
            with other.engine.begin() as c2:
                c2.execute(text("DELETE FROM blob WHERE 1 = 0"))
        finally:
            other.close()


def test_a_server_driver_or_bucket_that_is_not_there_is_one_line(postgres, s3, tmp_path):
    runner = CliRunner()
    port = free_port()  # nothing listens there
    cases = [
        (["--database", f"postgresql+psycopg://vl@127.0.0.1:{port}/none"],
         "cannot reach the database postgresql+psycopg://vl@127.0.0.1:"),
        (["--database", "postgresql+nosuchdriver://vl@127.0.0.1/none"], "not a database URL"),
        (["--database", postgres(), "--blobs", "nosuchfs://bucket/x"], "cannot open the blob store nosuchfs://"),
    ]
    for i, (args, message) in enumerate(cases):
        r = runner.invoke(app, ["init", str(tmp_path / f"p{i}"), *args])
        assert r.exit_code != 0 and isinstance(r.exception, Exception)
        assert message in str(r.exception), (args, r.exception)
    ok = runner.invoke(app, ["init", str(tmp_path / "ok"), "--database", postgres().replace("vl@", "vl:secret@"),
                             "--blobs", f"s3://{BUCKET}/ok"])
    assert ok.exit_code == 0, ok.output
    assert "secret" not in ok.output and "blobs s3://visionloop-team/ok" in " ".join(ok.output.split())


def test_the_demo_runs_the_whole_loop_on_postgres_and_s3(postgres, s3, tmp_path):
    import json

    from visionloop.store import models

    url = postgres()
    r = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path / "d"), "--images", "16", "--train-seconds", "0",
                                 "--database", url, "--blobs", f"s3://{BUCKET}/demo", "--json"])
    assert r.exit_code == 0, r.output
    steps = json.loads(r.output)
    assert [s["step"] for s in steps] == ["render", "init", "import", "re-import", "stats", "health", "export coco",
                                          "export yolo", "export voc", "convert", "version", "gallery", "train",
                                          "export", "evaluate", "predict", "serve", "select"]
    assert (steps[1]["database"], steps[1]["blobs"]) == (url, f"s3://{BUCKET}/demo")
    assert steps[2]["images_added"] == 16 and steps[3]["images_unchanged"] == 16
    assert steps[6]["reimport"]["annotations_added"] == steps[2]["annotations_added"]
    assert steps[12]["model"]["status"] == "ready" and steps[17]["candidates"] == 16
    # the server, a process of its own, read the model from the bucket and answered as the local predictor did
    local = [(d["class"], round(d["score"], 3)) for d in steps[15]["predictions"][2]["detections"]]
    served = [(p["class"], round(p["confidence"], 3)) for p in steps[16]["response"]["images"][0]["predictions"]]
    assert served == local
    with Store.open(tmp_path / "d" / "project") as store:
        onnx = [e for m in models.list_all(store) for e in m.exports if e.format == "onnx"]
        in_bucket = set(_keys(s3, "demo"))
        assert onnx and all(f"{e.sha256[:2]}/{e.sha256[2:]}" in in_bucket for e in onnx)
    again = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path / "e"), "--images", "16", "--database", url])
    assert again.exit_code != 0 and "the demo needs an empty database" in str(again.exception)
