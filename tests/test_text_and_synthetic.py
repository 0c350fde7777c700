"""Character text and the synthetic long-memory probes: tokens, windows, splits, targets, the next-token task, and
end-to-end runs through Hydra."""

import hashlib
import http.server
import math
import threading
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from arnn.cells.torch_rnn import TorchRecurrentEncoder
from arnn.data.synthetic import AddingDataModule, CopyDataModule
from arnn.data.text import CharacterTextDataModule
from arnn.errors import ConfigError, DataNotFoundError
from arnn.lit.next_token import NextTokenModel
from arnn.runs.train import train
from tests.helpers.data import REAL_DATA, missing_data_reason

SHAKESPEARE = REAL_DATA / "tinyshakespeare" / "input.txt"
requires_shakespeare = pytest.mark.skipif(
    not SHAKESPEARE.is_file(), reason=missing_data_reason("tiny-shakespeare", "tinyshakespeare/input.txt")
)
TINY_SYNTHETIC = {"train_size": 24, "val_size": 8, "test_size": 8, "batch_size": 8}


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    """2540 characters of verse with capitals, punctuation and newlines."""
    path = tmp_path / "verse.txt"
    stanza = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
    path.write_text("".join(f"{index}: {stanza}" for index in range(30)), encoding="utf-8")
    return path


def test_text_tokens_round_trip_through_a_sorted_character_vocabulary(text_file):
    data = CharacterTextDataModule(str(text_file))
    text = text_file.read_text(encoding="utf-8")
    assert data.vocabulary == sorted(set(text))
    assert data.input_size == data.vocab_size == len(set(text)) and data.task_kwargs == {"vocab_size": data.vocab_size}
    tokens = data.encode(text)
    assert tokens.dtype == torch.long and data.decode(tokens) == text


def test_text_windows_have_context_length_and_targets_are_the_inputs_shifted_by_one(text_file):
    data = CharacterTextDataModule(str(text_file), context_length=16, stride=5, batch_size=4)
    data.setup()
    train_tokens = data.split_tokens()["train"]
    assert len(data.splits["train"]) == (len(train_tokens) - 17) // 5 + 1
    inputs, targets = next(iter(data.train_dataloader()))
    assert inputs.shape == targets.shape == (4, 16)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    window, shifted = data.splits["train"][3]
    assert torch.equal(window, train_tokens[15:31]) and torch.equal(shifted, train_tokens[16:32])


def test_text_splits_are_contiguous_disjoint_blocks_in_order(text_file):
    data = CharacterTextDataModule(str(text_file), context_length=16, val_fraction=0.1, test_fraction=0.05)
    parts = data.split_tokens()
    total, n_val, n_test = len(data.text), int(len(data.text) * 0.1), int(len(data.text) * 0.05)
    assert [len(part) for part in parts.values()] == [total - n_val - n_test, n_val, n_test]
    assert torch.equal(torch.cat(list(parts.values())), data.encode(data.text))
    data.setup()
    # Evaluation windows never overlap: each validation character is a target once.
    assert len(data.splits["val"]) == (len(parts["val"]) - 1) // 16


def test_missing_text_file_raises_data_not_found_naming_the_path_and_the_key(tmp_path):
    missing = tmp_path / "nowhere" / "input.txt"
    with pytest.raises(DataNotFoundError, match="data.path") as error:
        CharacterTextDataModule(str(missing))
    assert str(missing) in str(error.value) and "\n" not in str(error.value)


def test_text_too_short_for_the_context_length_raises_config_error(text_file):
    data = CharacterTextDataModule(str(text_file), context_length=400)
    with pytest.raises(ConfigError, match="context_length"):
        data.setup()


@pytest.mark.parametrize(
    "make", [partial(AddingDataModule, seq_len=12), partial(CopyDataModule, delay=7)], ids=["adding", "copy"]
)
def test_synthetic_data_is_the_same_for_a_seed_and_differs_across_seeds(make):
    first, again, other = (make(seed=seed, **TINY_SYNTHETIC) for seed in (0, 0, 1))
    for split in ("train", "val", "test"):
        for a, b, c in zip(first.draw(split), again.draw(split), other.draw(split), strict=True):
            assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(first.draw("train")[0][:8], first.draw("val")[0])


def test_adding_target_is_the_sum_of_the_two_marked_values_one_marker_in_each_half():
    data = AddingDataModule(seq_len=11, **TINY_SYNTHETIC)
    inputs, target = data.draw("train")
    assert inputs.shape == (24, 11, 2) and target.shape == (24, 1) and data.task_kwargs == {"output_size": 1}
    values, markers = inputs[..., 0], inputs[..., 1]
    assert ((values >= 0) & (values < 1)).all() and set(markers.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(markers[:, :5].sum(1), torch.ones(24)) and torch.equal(markers[:, 5:].sum(1), torch.ones(24))
    torch.testing.assert_close(target[:, 0], (values * markers).sum(1))


def test_copy_targets_reproduce_the_symbols_after_the_delimiter():
    data = CopyDataModule(delay=6, num_symbols=8, copy_length=10, **TINY_SYNTHETIC)
    tokens, target = data.draw("train")
    assert tokens.shape == target.shape == (24, 26) and tokens.dtype == target.dtype == torch.long
    assert data.input_size == data.vocab_size == 10 and data.task_kwargs == {"vocab_size": 10}
    symbols = tokens[:, :10]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    # Delimiter (9) after delay − 1 blanks; blanks (0) everywhere else.
    assert (tokens[:, 15] == 9).all() and (tokens[:, 10:15] == 0).all() and (tokens[:, 16:] == 0).all()
    assert torch.equal(target[:, -10:], symbols) and (target[:, :-10] == 0).all()


def test_next_token_model_skips_ignore_index_targets_and_its_perplexity_is_exp_of_the_mean_loss():
    torch.manual_seed(0)
    vocab, ignore = 5, -1
    model = NextTokenModel(TorchRecurrentEncoder(vocab, 8), vocab, partial(torch.optim.Adam), ignore_index=ignore)
    tokens, target = torch.randint(0, vocab, (6, 9)), torch.randint(0, vocab, (6, 9))
    target[:, :4] = ignore
    logits = model(tokens).detach()
    assert logits.shape == (6, 9, vocab)
    scored_logits, scored_target = logits[:, 4:].reshape(-1, vocab), target[:, 4:].reshape(-1)
    expected_loss = F.cross_entropy(scored_logits, scored_target)
    expected_acc = (scored_logits.argmax(-1) == scored_target).float().mean()

    quiet = {"enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}
    trainer = pl.Trainer(accelerator="cpu", logger=False, **quiet)
    (metrics,) = trainer.test(model, DataLoader(TensorDataset(tokens, target), batch_size=6), verbose=False)
    assert metrics["test/loss"] == pytest.approx(expected_loss.item(), rel=1e-5)
    assert metrics["test/acc"] == pytest.approx(expected_acc.item())
    assert metrics["test/ppl"] == pytest.approx(math.exp(metrics["test/loss"]), rel=1e-5)


def _tiny_run(data: str) -> list[str]:
    """Overrides for a run of seconds."""
    if data == "text":
        return ["data.context_length=16", "data.batch_size=4"]
    sizes = [f"data.{key}={value}" for key, value in TINY_SYNTHETIC.items()]
    return [*sizes, "data.seq_len=12"] if data == "adding" else [*sizes, "data.delay=6", "data.copy_length=3"]


@pytest.mark.e2e
@pytest.mark.parametrize("model", ["arnn", "lstm"])
@pytest.mark.parametrize("data", ["text", "adding", "copy"])
def test_each_probe_trains_end_to_end_with_its_own_task(make_cfg, text_file, data, model):
    cfg = make_cfg(f"data={data}", f"model={model}", "model.hidden_size=8", *_tiny_run(data))
    if data == "text":
        cfg.data.update(path=str(text_file))
    metrics = train(cfg)
    if data == "adding":
        assert cfg.task._target_.endswith("SequenceRegressor") and math.isfinite(metrics["test/r2"])
        return
    assert cfg.task._target_.endswith("NextTokenModel")
    assert 0 <= metrics["test/acc"] <= 1 and "val/acc_best" in metrics
    assert math.isfinite(metrics["test/ppl"]) and metrics["test/ppl"] >= 1


@pytest.mark.shared_data
@requires_shakespeare
def test_real_tiny_shakespeare_has_65_characters():
    data = CharacterTextDataModule(str(SHAKESPEARE))
    assert data.vocab_size == 65 and len(data.text) == 1115394


@pytest.fixture
def text_server(tmp_path):
    """A local HTTP server serving tmp_path/served/: the real download code, no network."""
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_fetches_a_missing_text_and_keeps_it_once_its_md5_matches(text_server, tmp_path):
    served, url = text_server
    (served / "input.txt").write_text("to be or not to be\n" * 50)
    md5 = hashlib.md5((served / "input.txt").read_bytes()).hexdigest()
    target = tmp_path / "data" / "tinyshakespeare" / "input.txt"
    data = CharacterTextDataModule(str(target), download=True, url=f"{url}/input.txt", md5=md5, context_length=8)
    assert target.read_text() == (served / "input.txt").read_text() and data.vocabulary == sorted(set("to be orn\n"))


@pytest.mark.parametrize("failure", ["wrong_md5", "server_gone"])
def test_a_failed_download_names_its_source_and_leaves_nothing_behind(text_server, tmp_path, failure):
    served, url = text_server
    (served / "input.txt").write_text("some text\n")
    if failure == "server_gone":
        url = "http://127.0.0.1:9"  # nothing listens there
    target = tmp_path / "data" / "input.txt"
    with pytest.raises(DataNotFoundError) as error:
        CharacterTextDataModule(str(target), download=True, url=f"{url}/input.txt", md5="0" * 32)
    message = str(error.value)
    assert f"downloading it from {url}/input.txt failed" in message and "\n" not in message
    assert ("its MD5 is not 00000000" in message) == (failure == "wrong_md5")
    assert list((tmp_path / "data").iterdir()) == []


def test_without_download_a_missing_text_names_where_it_would_come_from(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"set data.download=true to fetch it from http://example.org/t.txt"):
        CharacterTextDataModule(str(tmp_path / "t.txt"), download=False, url="http://example.org/t.txt")
