"""API keys: hashed storage, scopes, rate limits, revocation, auth required off loopback, the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from visionloop.cli.main import app as cli
from visionloop.core.errors import VisionLoopError
from visionloop.serve import Settings, create_app
from visionloop.serve.service import check_auth
from visionloop.store import Store, keys
from visionloop.store.schema import ApiKeyRow

from .conftest import Server, png

runner = CliRunner()


@pytest.fixture(scope="module")
def keyed(project, tmp_path_factory):
    """A copy of the project with keys: predict, upload, admin, and predict limited to 3 per minute."""
    root = tmp_path_factory.mktemp("keyed") / "project"
    shutil.copytree(project, root)
    with Store.open(root) as store:
        tokens = {name: keys.create(store, scopes=scopes, name=name, rate_limit=limit)[1]
                  for name, scopes, limit in [("predict", ["predict"], None), ("upload", ["upload"], None),
                                              ("admin", ["admin"], None), ("limited", ["predict"], 3),
                                              ("revoked", ["predict"], None)]}
    return root, tokens


@pytest.fixture(scope="module")
def auth_server(keyed):
    root, tokens = keyed
    with Server(root, Settings(auth=True, key_cache_s=0, refresh_s=0)) as s:
        yield s, tokens


def _post(url: str, token: str | None = None, *, bearer: bool = False, path: str = "/v1/models/det-a/predict"):
    headers = {"content-type": "image/png"}
    if token is not None:
        headers.update({"Authorization": f"Bearer {token}"} if bearer else {"X-API-Key": token})
    return httpx.post(url + path, content=png(), headers=headers, timeout=30)


def test_tokens_are_stored_hashed(keyed):
    root, tokens = keyed
    with Store.open(root) as store, store.session() as s:
        rows = {r.name: r for r in s.scalars(select(ApiKeyRow))}
    tok = tokens["predict"]
    assert rows["predict"].hash == hashlib.sha256(tok.encode()).hexdigest()
    assert tok.startswith(f"vl_{rows['predict'].prefix}_") and len(tok) > 40
    dump = json.dumps([[getattr(r, c) for c in ("prefix", "hash", "name")] for r in rows.values()])
    assert not any(t in dump for t in tokens.values())
    assert rows["limited"].rate_limit == 3 and rows["admin"].scopes == ["admin"]


def test_missing_unknown_and_malformed_keys_are_401(auth_server):
    s, tokens = auth_server
    r = _post(s.url)
    assert r.status_code == 401 and r.json()["message"] == "missing API key"
    assert r.headers["www-authenticate"] == "ApiKey"
    for bad in ("nope", tokens["predict"][:-1] + "x", "vl_00000000_" + "a" * 43):
        r = _post(s.url, bad)
        assert r.status_code == 401 and r.json()["message"] == "unknown or revoked API key"
    assert httpx.get(s.url + "/v1/models").status_code == 401


def test_scopes(auth_server):
    s, tokens = auth_server
    assert _post(s.url, tokens["predict"]).status_code == 200
    assert _post(s.url, tokens["predict"], bearer=True).status_code == 200
    assert _post(s.url, tokens["admin"]).status_code == 200  # admin implies predict
    r = _post(s.url, tokens["upload"])
    prefix = tokens["upload"].split("_")[1]
    assert r.status_code == 403 and r.json()["message"] == \
        f"key {prefix} lacks the 'predict' scope (it has upload)"
    r = httpx.post(s.url + "/v1/models/det-a/promote", headers={"X-API-Key": tokens["predict"]}, json={})
    assert r.status_code == 403 and "lacks the 'admin' scope" in r.json()["message"]
    assert httpx.get(s.url + "/v1/models", headers={"X-API-Key": tokens["predict"]}).status_code == 200
    for probe in ("/healthz", "/readyz", "/metrics"):  # probes and scraping need no key
        assert httpx.get(s.url + probe).status_code == 200


def test_rate_limit(auth_server):
    s, tokens = auth_server
    codes = [_post(s.url, tokens["limited"]).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = _post(s.url, tokens["limited"])
    prefix = tokens["limited"].split("_")[1]
    assert r.json()["message"] == f"rate limit of key {prefix} reached: 3 requests per minute"
    assert 1 <= int(r.headers["retry-after"]) <= 20
    assert _post(s.url, tokens["predict"]).status_code == 200  # per key: the others are not limited


def test_revoked_key_is_refused(auth_server, keyed):
    s, tokens = auth_server
    assert _post(s.url, tokens["revoked"]).status_code == 200
    root, _ = keyed
    with Store.open(root) as store:
        info = keys.revoke(store, tokens["revoked"].split("_")[1])
    assert info.revoked_at is not None
    r = _post(s.url, tokens["revoked"])
    assert r.status_code == 401 and r.json()["message"] == "unknown or revoked API key"


def test_off_loopback_needs_keys(project, tmp_path):
    empty = tmp_path / "p"
    shutil.copytree(project, empty)
    with Store.open(empty) as store:
        with pytest.raises(VisionLoopError) as e:
            check_auth(store, Settings(host="0.0.0.0"))
        assert str(e.value) == ("serving on 0.0.0.0 (not loopback) requires API keys, and this project has none "
                                "— create one with `visionloop keys create --scope predict`")
        with pytest.raises(VisionLoopError, match="serving with --auth requires API keys"):
            check_auth(store, Settings(auth=True))
        check_auth(store, Settings(host="127.0.0.1"))
        check_auth(store, Settings(host="::1"))
        assert Settings(host="0.0.0.0").auth_required() and Settings(host="192.168.1.5").auth_required()
        assert not Settings(host="localhost").auth_required() and not Settings(host="127.0.0.2").auth_required()
    app = create_app(empty, Settings(host="0.0.0.0", refresh_s=0))

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(VisionLoopError, match="requires API keys"):  # the app itself refuses to start too
        asyncio.run(start())


def test_bound_to_all_interfaces_auth_is_on(keyed):
    root, tokens = keyed
    with Server(root, Settings(host="0.0.0.0", refresh_s=0), bind="0.0.0.0") as s:
        assert _post(s.url).status_code == 401
        assert _post(s.url, tokens["predict"]).status_code == 200


def test_keys_cli(project, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(project, root)
    r = runner.invoke(cli, ["keys", "create", "--scope", "predict", "--scope", "upload", "--name", "app",
                            "--rate-limit", "60", "-p", str(root), "--json"])
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    assert made["scopes"] == ["predict", "upload"] and made["rate_limit"] == 60 and made["token"].startswith("vl_")
    listed = json.loads(runner.invoke(cli, ["keys", "list", "-p", str(root), "--json"]).stdout)
    assert [(k["prefix"], k["active"]) for k in listed] == [(made["prefix"], True)] and "token" not in listed[0]
    with Store.open(root) as store:
        assert keys.find(store, made["token"]).prefix == made["prefix"]
    r = runner.invoke(cli, ["keys", "revoke", made["prefix"], "-p", str(root)])
    assert r.exit_code == 0 and r.stdout.strip() == f"key {made['prefix']} revoked"
    with Store.open(root) as store:
        assert keys.find(store, made["token"]) is None
    r = runner.invoke(cli, ["keys", "create", "--scope", "everything", "-p", str(root)])
    assert isinstance(r.exception, VisionLoopError) and str(r.exception) == \
        "unknown scope 'everything' — scopes: predict, upload, admin"
