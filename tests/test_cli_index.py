"""`llm2vec index` / `llm2vec search` end to end (in-process Typer runner, embedded Qdrant, tiny model)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("qdrant_client")

from typer.testing import CliRunner  # noqa: E402

from llm2vec_plugins.cli.main import app  # noqa: E402
from llm2vec_plugins.integrations.qdrant import connect  # noqa: E402
from tests.test_cli_errors import flat  # noqa: E402

runner = CliRunner()


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "a.txt").write_text(" ".join(f"Line {i} of the first document." for i in range(30)))
    (root / "b.md").write_text("The invoice is in the billing tab.")
    (root / "c.jsonl").write_text(json.dumps({"text": "Reset your password in settings.", "lang": "en"}) + "\n")
    return root


def _index(tiny_llama_dir, store, *args):
    return runner.invoke(app, ["index", *map(str, args), "--collection", "docs", "--qdrant-path", str(store),
                               "--model", str(tiny_llama_dir), "--chunk-tokens", "32", "--chunk-overlap", "4"])


def _count(store, collection="docs"):
    client = connect(path=store)
    try:
        return client.count(collection).count
    finally:
        client.close()


def test_index_then_search_json_finds_the_exact_chunk(tiny_llama_dir, tmp_path, corpus):
    store = tmp_path / "store"
    result = _index(tiny_llama_dir, store, corpus)
    assert result.exit_code == 0, result.output
    assert "3 documents" in result.output and "0 skipped" in result.output
    result = runner.invoke(app, ["search", "The invoice is in the billing tab.", "--collection", "docs",
                                 "--qdrant-path", str(store), "--model", str(tiny_llama_dir), "-k", "2",
                                 "--instruction", "", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 2
    assert hits[0]["text"] == "The invoice is in the billing tab."
    assert hits[0]["metadata"]["source"] == str((corpus / "b.md").resolve())


def test_search_prints_ranked_hits_with_the_default_query_instruction(tiny_llama_dir, tmp_path, corpus):
    store = tmp_path / "store"
    assert _index(tiny_llama_dir, store, corpus).exit_code == 0
    result = runner.invoke(app, ["search", "where is my invoice", "--collection", "docs", "--qdrant-path",
                                 str(store), "--model", str(tiny_llama_dir), "-k", "3"])
    assert result.exit_code == 0, result.output
    assert [line.split(".")[0].strip() for line in result.stdout.splitlines()[::2]] == ["1", "2", "3"]


def test_rerunning_the_same_index_command_keeps_the_same_points(tiny_llama_dir, tmp_path, corpus):
    store = tmp_path / "store"
    assert _index(tiny_llama_dir, store, corpus).exit_code == 0
    count = _count(store)
    again = _index(tiny_llama_dir, store, corpus)
    assert again.exit_code == 0
    assert f"0 encoded and stored, {count} unchanged" in again.output
    assert _count(store) == count


def test_prune_removes_deleted_files_from_the_collection(tiny_llama_dir, tmp_path, corpus):
    store = tmp_path / "store"
    assert _index(tiny_llama_dir, store, corpus).exit_code == 0
    before = _count(store)
    (corpus / "a.txt").unlink()
    result = _index(tiny_llama_dir, store, corpus, "--prune")
    assert result.exit_code == 0, result.output
    assert "pruned" in result.output
    assert _count(store) == 2 < before  # b.md and c.jsonl: one chunk each


def test_skipped_files_are_listed_and_make_the_exit_status_non_zero(tiny_llama_dir, tmp_path, corpus):
    (corpus / "blob.txt").write_bytes(b"\x00\xff\x00")
    (corpus / "empty.txt").write_text("")
    store = tmp_path / "store"
    result = _index(tiny_llama_dir, store, corpus)
    assert result.exit_code == 1
    assert "blob.txt: binary file" in result.output and "empty.txt: empty file" in result.output
    assert "3 documents" in result.output and "2 skipped" in result.output
    allowed = runner.invoke(app, ["index", str(corpus), "--collection", "docs", "--qdrant-path", str(store),
                                  "--model", str(tiny_llama_dir), "--chunk-tokens", "32", "--chunk-overlap", "4",
                                  "--allow-skipped"])
    assert allowed.exit_code == 0


def test_collection_with_another_vector_size_is_refused_with_exit_2(tiny_llama_dir, tmp_path, corpus):
    from qdrant_client import models

    store = tmp_path / "store"
    client = connect(path=store)
    client.create_collection("docs", vectors_config=models.VectorParams(size=3, distance=models.Distance.COSINE))
    client.close()
    result = _index(tiny_llama_dir, store, corpus)
    assert result.exit_code == 2
    assert "vector size 3" in result.output and "nothing was written" in result.output
    assert _count(store) == 0


def test_search_on_a_missing_collection_says_so(tiny_llama_dir, tmp_path):
    connect(path=tmp_path / "s").close()  # an existing store without that collection
    result = runner.invoke(app, ["search", "q", "--collection", "nope", "--qdrant-path", str(tmp_path / "s"),
                                 "--model", str(tiny_llama_dir)])
    assert result.exit_code == 2 and "collection 'nope' does not exist" in result.output


def test_unknown_payload_layout_is_a_usage_error(tiny_llama_dir, tmp_path, corpus):
    result = runner.invoke(app, ["index", str(corpus), "--collection", "docs", "--qdrant-path",
                                 str(tmp_path / "s"), "--model", str(tiny_llama_dir), "--payload-layout", "haystack"])
    assert result.exit_code == 2 and "'haystack' is not one of 'llm2vec', 'langchain', 'llamaindex'" in flat(result.output)
