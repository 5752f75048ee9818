"""The fetch-adapters init container's constant program, run with a stand-in huggingface_hub.

The stand-in records each snapshot_download call and writes adapter_config.json into local_dir,
or fails for repositories whose name contains "unreachable", as the real one does when the Hub
cannot be reached.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from slm_operator.render.vllm import FETCH_ADAPTERS_SCRIPT

STAND_IN = """\
import json, os
def snapshot_download(repo_id, revision=None, local_dir=None):
    with open(os.environ["CALLS"], "a") as log:
        log.write(json.dumps([repo_id, revision, local_dir]) + "\\n")
    if "unreachable" in repo_id:
        raise OSError("cannot reach the Hub")
    os.makedirs(local_dir, exist_ok=True)
    with open(os.path.join(local_dir, "adapter_config.json"), "w") as f:
        f.write("{}")
    return local_dir
"""


def run(
    tmp_path: Path, adapters: list[dict[str, str | None]], policy: str
) -> tuple[int, str, list[list[str]]]:
    package = tmp_path / "stand-in" / "huggingface_hub"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(STAND_IN)
    calls = tmp_path / "calls.jsonl"
    calls.unlink(missing_ok=True)
    env = {
        "PYTHONPATH": str(package.parent),
        "CALLS": str(calls),
        "ADAPTERS": json.dumps(adapters),
        "ADAPTERS_DIR": str(tmp_path / "adapters"),
        "PULL_POLICY": policy,
    }
    done = subprocess.run(
        [sys.executable, "-c", FETCH_ADAPTERS_SCRIPT],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    logged = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return done.returncode, done.stdout + done.stderr, logged


SQL = {"name": "sql", "repo": "acme/sql-lora", "revision": "0123abc"}
CHAT = {"name": "chat", "repo": "acme/chat-lora", "revision": None}


def test_downloads_each_adapter_at_its_revision_into_its_own_directory(tmp_path: Path) -> None:
    code, output, calls = run(tmp_path, [SQL, CHAT], "always")
    assert code == 0, output
    assert calls == [
        ["acme/sql-lora", "0123abc", str(tmp_path / "adapters" / "sql")],
        ["acme/chat-lora", None, str(tmp_path / "adapters" / "chat")],
    ]
    assert (tmp_path / "adapters" / "chat" / "adapter_config.json").is_file()


def test_if_missing_uses_the_cache_and_downloads_only_what_is_missing(tmp_path: Path) -> None:
    run(tmp_path, [SQL], "always")
    code, output, calls = run(tmp_path, [SQL, CHAT], "if-missing")
    assert code == 0, output
    assert calls == [["acme/chat-lora", None, str(tmp_path / "adapters" / "chat")]]
    assert "adapter sql: using the cached copy" in output


def test_an_unreachable_hub_falls_back_to_the_cached_copy(tmp_path: Path) -> None:
    cached = {"name": "sql", "repo": "acme/unreachable-sql", "revision": None}
    (tmp_path / "adapters" / "sql").mkdir(parents=True)
    (tmp_path / "adapters" / "sql" / "adapter_config.json").write_text("{}")
    code, output, _ = run(tmp_path, [cached], "always")
    assert code == 0, output
    assert "download failed (cannot reach the Hub); using the cached copy" in output


def test_an_adapter_that_cannot_be_fetched_fails_the_container(tmp_path: Path) -> None:
    missing = {"name": "sql", "repo": "acme/unreachable-sql", "revision": "v1"}
    code, output, _ = run(tmp_path, [missing], "always")
    assert code == 1
    assert "adapter sql: cannot download acme/unreachable-sql: cannot reach the Hub" in output
