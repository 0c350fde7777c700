"""`python -m arnn.generate`: text from a trained next-token model, its state carried from step to step."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from arnn.errors import UserError
from arnn.generate import generate
from arnn.runs.checkpoint import load_model
from arnn.runs.train import train
from tests.helpers.runs import ROOT


@pytest.fixture
def text_checkpoint(make_cfg, tmp_path):
    """A 16-unit A-RNN trained for 2 epochs of 3 batches on a 12 000-character text: its best checkpoint."""
    text = tmp_path / "tiny.txt"
    text.write_text("".join(np.random.default_rng(0).choice(list("abc de\n"), size=12_000)))
    budget = ["trainer.max_epochs=2", "trainer.limit_train_batches=3"]
    train(make_cfg("data=text", f"data.path={text}", "data.context_length=20", "model.hidden_size=16", *budget))
    (best,) = (tmp_path / "checkpoints").glob("epoch_*.ckpt")
    return best


@pytest.mark.e2e
def test_near_zero_temperature_follows_the_most_likely_character_of_the_whole_sequence_each_step(text_checkpoint):
    generated = generate([f"ckpt_path={text_checkpoint}", "prompt=ab c", "length=12", "temperature=1e-6"])
    module = load_model(text_checkpoint)
    vocabulary = sorted(set("abc de\n"))
    tokens = torch.tensor([[vocabulary.index(c) for c in "ab c"]])
    with torch.no_grad():
        for _ in range(12):  # the whole sequence again at every step: no state carried
            tokens = torch.cat([tokens, module(tokens)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert generated == "".join(vocabulary[t] for t in tokens[0].tolist())


@pytest.mark.e2e
def test_sampling_is_seeded_and_stays_in_the_vocabulary(text_checkpoint):
    first, again, other = (
        generate([f"ckpt_path={text_checkpoint}", "prompt=a", "length=40", f"seed={seed}"]) for seed in (1, 1, 2)
    )
    assert first == again != other and len(first) == 41 and set(first) <= set("abc de\n")


@pytest.mark.e2e
def test_generate_mistakes_name_the_fix(text_checkpoint, make_cfg, tmp_path):
    with pytest.raises(UserError, match=r"never saw: 'xz'; leave them out"):
        generate([f"ckpt_path={text_checkpoint}", "prompt=axz"])
    with pytest.raises(UserError, match=r"temperature must be > 0"):
        generate([f"ckpt_path={text_checkpoint}", "temperature=0"])
    with pytest.raises(UserError, match=r"length must be a whole number of characters ≥ 1, got 0"):
        generate([f"ckpt_path={text_checkpoint}", "length=0"])
    other_text = tmp_path / "other.txt"
    other_text.write_text("xyz " * 3000)
    with pytest.raises(UserError, match=r"has 4 characters, the model was trained on 7; set data.path"):
        generate([f"ckpt_path={text_checkpoint}", f"data.path={other_text}"])


@pytest.mark.e2e
def test_generate_on_a_model_of_another_task_is_one_line(make_cfg, tmp_path):
    train(make_cfg("model.hidden_size=8", "trainer.max_epochs=1", "trainer.limit_train_batches=1"))
    (checkpoint,) = (tmp_path / "checkpoints").glob("epoch_*.ckpt")
    run = subprocess.run(
        [sys.executable, "-m", "arnn.generate", f"ckpt_path={checkpoint}"], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 1
    assert (
        run.stderr == f"error: {checkpoint} holds a SequenceClassifier; generate needs a next-token model (data=text)\n"
    )
