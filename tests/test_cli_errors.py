"""The CLI under bad input, through the real `llm2vec` commands: exit 2 and one clear line for a user's
mistake, found before the model loads; nothing written or deleted that should not be."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

from typer.testing import CliRunner  # noqa: E402

from llm2vec_plugins.cli.main import app  # noqa: E402
from llm2vec_plugins.integrations.qdrant import connect  # noqa: E402

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def flat(output: str) -> str:
    """The output without the line breaks and frame of rich's error box (which wraps at 80 columns)."""
    return " ".join(" ".join(line.strip(" │╭╮╰╯─") for line in output.splitlines()).split())


def _assert_user_error(result, *fragments):
    """Exit 2, the problem named, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in flat(result.output), result.output


def _points_by_source(store):
    client = connect(path=store)
    try:
        points, _ = client.scroll("docs", limit=1000, with_payload=True)
    finally:
        client.close()
    sources = {}
    for point in points:
        source = point.payload["source"]
        sources[source] = sources.get(source, 0) + 1
    return sources


def _index(model, store, folder, *extra):
    return _run("index", folder, "--collection", "docs", "--qdrant-path", store, "--model", model,
                "--chunk-tokens", 32, "--chunk-overlap", 4, *extra)


@pytest.mark.parametrize("link_target", ["/mnt/not-mounted/b.txt", "b.txt"], ids=["dangling", "loop"])
def test_prune_keeps_the_points_of_a_file_behind_a_broken_symlink(tiny_llama_dir, tmp_path, link_target):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.txt").write_text("The invoice is in the billing tab.")
    (folder / "b.txt").write_text("Reset your password in the settings page.")
    store = tmp_path / "store"
    assert _index(tiny_llama_dir, store, folder).exit_code == 0
    b_source = str((folder / "b.txt").resolve())
    before = _points_by_source(store)
    (folder / "b.txt").unlink()
    os.symlink(link_target, folder / "b.txt")
    result = _index(tiny_llama_dir, store, folder, "--prune")
    assert result.exit_code == 1  # a skipped input
    assert "b.txt: symbolic link to" in result.output and "1 skipped" in result.output
    assert "not pruned" in result.output
    assert _points_by_source(store).get(b_source) == before[b_source]


def test_encode_into_a_missing_folder_fails_before_the_model_loads(tmp_path):
    (tmp_path / "in.txt").write_text("a cat\n")
    # The model does not exist either: the output is checked first, so no work is ever lost at the end.
    result = _run("encode", tmp_path / "in.txt", "-o", tmp_path / "nodir" / "sub" / "e.npy", "--model", "/nonexistent")
    _assert_user_error(result, "nodir/sub does not exist")
    assert not (tmp_path / "nodir").exists()


def test_encode_writes_exactly_the_named_file(tiny_llama_dir, tmp_path):
    (tmp_path / "in.txt").write_text("a cat\n   \nthe end\n")
    result = _run("encode", tmp_path / "in.txt", "-o", tmp_path / "out.bin", "--model", tiny_llama_dir)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out.bin.npy").exists() and f"to {tmp_path / 'out.bin'}" in result.output
    # Whitespace-only lines are texts: row i is line i.
    assert np.load(tmp_path / "out.bin").shape[0] == 3


def test_encode_refuses_an_empty_line_with_its_number(tmp_path):
    (tmp_path / "in.txt").write_text("a cat\n\nthe end\n")
    _assert_user_error(_run("encode", tmp_path / "in.txt", "-o", tmp_path / "e.npy"), "line 2 is empty")
    assert not (tmp_path / "e.npy").exists()


def test_a_missing_model_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "in.txt").write_text("a cat\n")
    result = _run("encode", tmp_path / "in.txt", "-o", tmp_path / "e.npy", "--model", "/nonexistent")
    _assert_user_error(result, "cannot use model '/nonexistent'", "does not exist")
    assert len(result.output.strip().splitlines()) == 1


def test_a_non_decoder_model_is_refused(tmp_path, tiny_tokenizer_dir):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path / "bert")
    (tmp_path / "in.txt").write_text("a cat\n")
    result = _run("encode", tmp_path / "in.txt", "-o", tmp_path / "e.npy", "--model", tmp_path / "bert")
    _assert_user_error(result, "'bert' model, not a decoder-only")


def test_debug_keeps_the_traceback(tmp_path):
    (tmp_path / "in.txt").write_text("a cat\n")
    result = _run("--debug", "encode", tmp_path / "in.txt", "-o", tmp_path / "e.npy", "--model", "/nonexistent")
    os.environ.pop("LLM2VEC_DEBUG", None)
    assert result.exit_code == 1 and isinstance(result.exception, FileNotFoundError)


@pytest.mark.parametrize("args,fragment", [
    (["encode", "IN", "-o", "OUT", "--pooling-mode", "foo"], "'foo' is not one of"),
    (["encode", "IN", "-o", "OUT", "--batch-size", "0"], "--batch-size"),
    (["encode", "IN", "-o", "OUT", "--dtype", "float8"], "'float8' is not one of"),
    (["search", "", "-c", "docs"], "the query is empty"),
    (["search", "   ", "-c", "docs"], "the query is empty"),
    (["eval", "--limit", "0"], "--limit"),
    (["index", "IN", "-c", "docs", "--chunk-tokens", "8", "--chunk-overlap", "8"], "must be smaller"),
])
def test_bad_options_are_refused_before_anything_loads(tmp_path, args, fragment):
    (tmp_path / "in.txt").write_text("a cat\n")
    args = [str(tmp_path / "in.txt") if a == "IN" else str(tmp_path / "e.npy") if a == "OUT" else a for a in args]
    # A model that does not exist: had anything loaded first, the error would be about the model.
    _assert_user_error(_run(*args, *(["--model", "/nonexistent"] if args[0] != "eval" else [])), fragment)
    assert not (tmp_path / "e.npy").exists()


def test_help_lists_the_choices():
    result = runner.invoke(app, ["encode", "--help"], env={"COLUMNS": "250"})  # no wrapping inside the list
    assert "<mean|weighted_mean|eos_token|last_token|bos_token>" in result.output


def test_search_of_a_store_that_does_not_exist_creates_nothing(tmp_path):
    result = _run("search", "q", "-c", "docs", "--qdrant-path", tmp_path / "nope")
    _assert_user_error(result, "no Qdrant store at")
    assert not (tmp_path / "nope").exists()


def test_a_csv_without_the_text_column_names_its_columns(tiny_llama_dir, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "t.csv").write_text("title,body\nhello,some text\n")
    result = _index(tiny_llama_dir, tmp_path / "store", folder)
    assert result.exit_code == 1
    assert "no 'text' column (columns: title, body)" in result.output
